"""Compiled helpers of :mod:`fusion.metrics` (numba, ``cache=True``, no fastmath).

:func:`gospa_close_matchings` solves the GOSPA assignment of the steps
:func:`fusion.metrics.gospa_series` cannot write in closed form (a track within the
cut-off of two objects, or an object with two tracks near it) by enumerating the
matchings of the close pairs, instead of one :func:`scipy.optimize.linear_sum_assignment`
call per step from Python (about 26,000 steps per Hwasong-15 trial).
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_MATCHINGS = 100_000  # candidate matchings per step; beyond, the step goes to linear_sum_assignment
MAX_PAIRS = 7  # assigned close pairs summed in order; numpy's sum is pairwise from 8 terms


@njit(cache=True)
def gospa_close_matchings(d, pair, steps_i, steps_k, c, loc_raw, n_close, ok):
    """Optimal GOSPA matching (p = 2, alpha = 2) of the close pairs at the given (trial, step)s.

    With cut-off :math:`c`, a pair assigned at distance :math:`\\ge c` costs :math:`c^2`,
    the same as leaving both unassigned, so the optimal assignment of
    :func:`fusion.metrics.gospa` (Rahmathullah et al. 2017, eq. 2) is the matching of
    the close pairs (:math:`d < c`) that minimizes :math:`\\sum (d^2 - c^2)`; it is
    found here by enumerating, object by object, which close track (or none) it takes.
    Its localization term is summed as :func:`fusion.metrics.gospa` does (the pairs'
    :math:`d^2` in the order of the track index), so the bits are the same.

    Parameters
    ----------
    d : ndarray, shape (N, T, K, O)
        Track-object distances, m.
    pair : ndarray of bool, shape (N, T, K, O)
        Close pairs (confirmed track, object in flight, :math:`d < c`).
    steps_i, steps_k : ndarray of int64, shape (S,)
        The (trial, step)s to solve.
    c : float
        Cut-off, m.
    loc_raw : ndarray, shape (S,)
        Receives :math:`\\sum d^2` over the assigned close pairs, m^2.
    n_close : ndarray of int64, shape (S,)
        Receives the number of assigned close pairs.
    ok : ndarray of bool, shape (S,)
        False where the step has more than :data:`MAX_MATCHINGS` candidate matchings
        or more than :data:`MAX_PAIRS` assigned pairs (left to the caller).
    """
    K, O = pair.shape[2], pair.shape[3]
    c2 = c * c
    cand = np.empty((O, K + 1), np.int64)
    n_cand = np.empty(O, np.int64)
    pick = np.zeros(O, np.int64)
    best = np.empty(O, np.int64)
    used = np.zeros(K, np.bool_)
    for s in range(steps_i.size):
        i, k = steps_i[s], steps_k[s]
        total = 1.0
        for o in range(O):
            n_cand[o] = 1
            cand[o, 0] = -1  # the object left unassigned
            for t in range(K):
                if pair[i, k, t, o]:
                    cand[o, n_cand[o]] = t
                    n_cand[o] += 1
            total *= n_cand[o]
        ok[s] = total <= MAX_MATCHINGS
        if not ok[s]:
            continue
        for o in range(O):
            pick[o] = 0
        best_cost = np.inf
        while True:
            # a matching: each object its candidate pick[o]; skip if two objects take one track
            cost = 0.0
            valid = True
            for o in range(O):
                t = cand[o, pick[o]]
                if t >= 0:
                    if used[t]:
                        valid = False
                    used[t] = True
                    cost += d[i, k, t, o] * d[i, k, t, o] - c2
            for o in range(O):
                t = cand[o, pick[o]]
                if t >= 0:
                    used[t] = False
            if valid and cost < best_cost:
                best_cost = cost
                for o in range(O):
                    best[o] = cand[o, pick[o]]
            o = 0
            while o < O:
                pick[o] += 1
                if pick[o] < n_cand[o]:
                    break
                pick[o] = 0
                o += 1
            if o == O:
                break
        # the assigned pairs' d^2 summed in the order of the track index, as numpy sums them
        acc = 0.0
        n = 0
        for t in range(K):
            for o in range(O):
                if best[o] == t:
                    acc += d[i, k, t, o] * d[i, k, t, o]
                    n += 1
        loc_raw[s] = acc
        n_close[s] = n
        if n > MAX_PAIRS:
            ok[s] = False
