"""Measurement-to-track association: chi-square gating and global nearest neighbour (GNN).

Batched over trials. The tracker hands in *candidate pairs* (a detection and a
track of the same trial) with their gating statistic and assignment cost; this
module decides which pairs are gated and which gated pairs are assigned, each
detection to at most one track and each track to at most one detection, trial
by trial.

Gating keeps a pair when its squared Mahalanobis distance
:math:`d^2 = y^T S^{-1} y` is below the chi-square quantile
:math:`\\gamma = \\chi^2_{m}(P_G)` of the gate probability :math:`P_G`
(Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to Tracking and
Navigation*, 2001, sec. 5.4.2 and eq. 5.4.2-11; Blackman & Popoli, *Design and
Analysis of Modern Tracking Systems*, 1999, sec. 6.3.1).

GNN picks, in each trial, the assignment of gated pairs with the largest number
of pairs and, among those, the least total cost, solved by the Hungarian /
Jonker-Volgenant algorithm of :func:`scipy.optimize.linear_sum_assignment`
(Blackman & Popoli 1999, sec. 6.5.1). The cost the tracker uses is
Blackman's generalised statistical distance :math:`d^2 + \\ln|S|` (= -2 log
Gaussian likelihood up to a constant), which keeps a wide tentative track from
taking a detection that a firm, narrow track explains
(Blackman & Popoli 1999, eq. 6.11).

The common case, a trial in which every gated track has one gated detection
and every gated detection one gated track, is decided without any loop (the
assignment is the gated pairs themselves); only trials with competing pairs go
through ``linear_sum_assignment``, one call per such trial.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from sim.errors import InputError

__all__ = ["gate_threshold", "gate", "gnn_assign"]


def gate_threshold(gate_probability: float, dim: int = 3) -> float:
    """Chi-square gate :math:`\\gamma` with :math:`P(\\chi^2_{dim} \\le \\gamma) = P_G`.

    Parameters
    ----------
    gate_probability : float
        Gate probability :math:`P_G` in (0, 1) (``tracker.gate_probability``).
    dim : int
        Measurement dimension (3 for range, azimuth, elevation).

    Returns
    -------
    float
        Threshold on the squared Mahalanobis distance (e.g. 18.9 for
        :math:`P_G = 0.9997`, ``dim = 3``).

    Raises
    ------
    InputError
        If ``gate_probability`` is not in (0, 1) or ``dim`` < 1.

    References
    ----------
    Bar-Shalom et al. 2001, eq. 5.4.2-11 (validation region), via :data:`scipy.stats.chi2`.
    """
    p = float(gate_probability)
    if not 0.0 < p < 1.0:
        raise InputError.single("tracker.gate_probability", gate_probability, "a probability in (0, 1)")
    if int(dim) < 1:
        raise InputError.single("dim", dim, "a measurement dimension >= 1")
    return float(chi2.ppf(p, int(dim)))


def gate(d2, ok, threshold):
    """Boolean gate of candidate pairs: ``ok & (d2 <= threshold)``.

    Parameters
    ----------
    d2 : array_like, shape (...)
        Squared Mahalanobis distances of the innovations.
    ok : array_like of bool, shape (...)
        False where the statistic is not valid (innovation covariance not
        positive definite, measurement not finite).
    threshold : float
        :func:`gate_threshold`.

    Returns
    -------
    ndarray of bool, shape (...)
    """
    d2 = np.asarray(d2, dtype=np.float64)
    return np.asarray(ok, dtype=bool) & (d2 <= threshold)


def gnn_assign(det, track, cost, trial):
    """Global-nearest-neighbour assignment of gated candidate pairs, per trial.

    Parameters
    ----------
    det : array_like of int, shape (p,)
        Detection key of each gated pair (unique per detection over the batch,
        e.g. its row in the group).
    track : array_like of int, shape (p,)
        Track key of each pair (unique per track over the batch, e.g.
        ``trial_row * max_tracks + slot``).
    cost : array_like of float, shape (p,)
        Assignment cost of each pair (finite), e.g. :math:`d^2 + \\ln|S|`.
    trial : array_like of int, shape (p,)
        Trial of each pair; detections and tracks of a pair share it, and
        trials never compete with each other.

    Returns
    -------
    ndarray of bool, shape (p,)
        True for the pairs assigned: in every trial each detection and each
        track appears in at most one assigned pair, the number of assigned
        pairs is the largest possible and, among such assignments, the total
        cost is least.

    Notes
    -----
    Pairs whose detection and track both appear in no other pair are assigned
    directly (vectorized fast path). Every trial holding a pair that competes
    (a detection gated by two tracks, or a track gating two detections) is
    solved with :func:`scipy.optimize.linear_sum_assignment` on its
    detections x tracks matrix, non-gated cells costing more than any set of
    gated cells (``big``), so the solution maximises the number of gated
    pairs first (Blackman & Popoli 1999, sec. 6.5.1).
    """
    det = np.asarray(det, dtype=np.int64)
    track = np.asarray(track, dtype=np.int64)
    cost = np.asarray(cost, dtype=np.float64)
    trial = np.asarray(trial, dtype=np.int64)
    p = det.size
    out = np.zeros(p, dtype=bool)
    if p == 0:
        return out
    # Counts of each key among the pairs, through dense ranks (keys may be large).
    det_inv = _dense(det)
    trk_inv = _dense(track)
    det_cnt = np.bincount(det_inv)
    trk_cnt = np.bincount(trk_inv)
    single = (det_cnt[det_inv] == 1) & (trk_cnt[trk_inv] == 1)
    if single.all():
        return ~out
    conflict_trials = np.unique(trial[~single])
    in_conflict = np.isin(trial, conflict_trials)
    out[~in_conflict] = True  # trials with no competing pair at all
    idx = np.nonzero(in_conflict)[0]
    # Trial-local row (detection) and column (track) numbers of every competing trial's pairs, vectorized.
    tc = np.searchsorted(conflict_trials, trial[idx])
    d_loc, n_d = _local_rank(tc, det[idx], conflict_trials.size)
    t_loc, n_t = _local_rank(tc, track[idx], conflict_trials.size)
    c = cost[idx]
    # A non-gated cell costs more than any difference of gated totals: maximum cardinality first.
    big = (float(c.max() - c.min()) + 1.0) * (int(min(n_d.max(), n_t.max())) + 1) + abs(float(c.max())) + 1.0
    C = np.full((conflict_trials.size, int(n_d.max()), int(n_t.max())), big)
    C[tc, d_loc, t_loc] = c
    pair_of = np.full(C.shape, -1, dtype=np.int64)
    pair_of[tc, d_loc, t_loc] = idx
    for i in range(conflict_trials.size):  # only trials with competing pairs; one solver call each
        rows, cols = linear_sum_assignment(C[i, : n_d[i], : n_t[i]])
        p_i = pair_of[i, rows, cols]
        out[p_i[p_i >= 0]] = True
    return out


def _dense(keys):
    """Dense rank 0..u-1 of integer keys (same key, same rank)."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    new = np.ones(k.size, dtype=bool)
    new[1:] = k[1:] != k[:-1]
    rank = np.empty(k.size, dtype=np.int64)
    rank[order] = np.cumsum(new) - 1
    return rank


def _local_rank(group, keys, n_groups):
    """Rank of each key among the distinct keys of its group, and the count of distinct keys per group."""
    order = np.lexsort((keys, group))
    g, k = group[order], keys[order]
    new_key = np.ones(k.size, dtype=bool)
    new_key[1:] = (k[1:] != k[:-1]) | (g[1:] != g[:-1])
    new_grp = np.ones(k.size, dtype=bool)
    new_grp[1:] = g[1:] != g[:-1]
    cum = np.cumsum(new_key) - 1  # global distinct-key number
    start = np.maximum.accumulate(np.where(new_grp, cum, 0))  # distinct-key number at the group start
    loc = np.empty(k.size, dtype=np.int64)
    loc[order] = cum - start
    count = np.zeros(n_groups, dtype=np.int64)
    np.maximum.at(count, g, cum - start + 1)
    return loc, count
