"""Per-trial association kernels of the compiled tracker (numba): GNN assignment and JPDA* probabilities.

* :func:`linear_assignment`: minimum-cost complete assignment of a small
  rectangular cost matrix by shortest augmenting paths (Jonker & Volgenant,
  "A shortest augmenting path algorithm for dense and sparse linear assignment
  problems", Computing 38, 1987; the variant of Crouse, "On implementing 2D
  rectangular assignment algorithms", IEEE Trans. AES 52(4), 2016, which
  :func:`scipy.optimize.linear_sum_assignment` implements).
* :func:`gnn_assign`: global nearest neighbour over the gated pairs of one
  trial, maximum number of pairs first, then least total cost (Blackman &
  Popoli 1999, sec. 6.5.1; :func:`fusion.association.gnn_assign`).
* :func:`jpda_star`: marginal association probabilities of one cluster by
  enumeration of its joint events, keeping only the best event of each
  permutation group (JPDA*: Fortmann, Bar-Shalom & Scheffe 1983, eq. 30-34;
  Blom & Bloem 2000; :func:`fusion.association.jpda_probabilities`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fusion import kernel_cache  # noqa: F401  (first: drops stale cached machine code)


@njit(cache=True)
def linear_assignment(C):
    """Minimum-cost assignment of the rows of ``C`` (nr, nc), ``nr <= nc``, to distinct columns.

    Returns ``col4row`` (nr,) int64. Shortest augmenting path with dual
    variables (Crouse 2016, alg. 4), the algorithm of scipy's
    ``linear_sum_assignment``.
    """
    nr, nc = C.shape
    u = np.zeros(nr)
    v = np.zeros(nc)
    spc = np.empty(nc)
    path = np.full(nc, -1, dtype=np.int64)
    col4row = np.full(nr, -1, dtype=np.int64)
    row4col = np.full(nc, -1, dtype=np.int64)
    SR = np.zeros(nr, dtype=np.bool_)
    SC = np.zeros(nc, dtype=np.bool_)
    remaining = np.empty(nc, dtype=np.int64)
    for cur in range(nr):
        min_val = 0.0
        i = cur
        n_rem = nc
        for it in range(nc):
            remaining[it] = nc - it - 1
        SR[:] = False
        SC[:] = False
        spc[:] = np.inf
        sink = -1
        while sink == -1:
            index = -1
            lowest = np.inf
            SR[i] = True
            for it in range(n_rem):
                j = remaining[it]
                r = min_val + C[i, j] - u[i] - v[j]
                if r < spc[j]:
                    path[j] = i
                    spc[j] = r
                if spc[j] < lowest or (spc[j] == lowest and row4col[j] == -1):
                    lowest = spc[j]
                    index = it
            min_val = lowest
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            SC[j] = True
            n_rem -= 1
            remaining[index] = remaining[n_rem]
        u[cur] += min_val
        for i2 in range(nr):
            if SR[i2] and i2 != cur:
                u[i2] += min_val - spc[col4row[i2]]
        for j2 in range(nc):
            if SC[j2]:
                v[j2] -= min_val - spc[j2]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            tmp = col4row[i]
            col4row[i] = j
            j = tmp
            if i == cur:
                break
    return col4row


@njit(cache=True)
def gnn_assign(cand, cost):
    """Global-nearest-neighbour assignment of one trial's candidate pairs.

    Parameters
    ----------
    cand : ndarray of bool, shape (k, n)
        Gated pairs (detection k, track n) open to GNN.
    cost : ndarray, shape (k, n)
        Their cost :math:`d^2 + \\ln|S|` (or the IMM mixture's).

    Returns
    -------
    det_of_track : ndarray of int64, shape (n,)
        Detection assigned to each track, -1 none. Each detection and track in
        at most one pair; most pairs first, then least total cost: non-gated
        cells cost more than any difference of gated totals (Blackman & Popoli
        1999, sec. 6.5.1). Pairs without competitors are assigned directly.
    """
    k, n = cand.shape
    out = np.full(n, -1, dtype=np.int64)
    dcount = np.zeros(k, dtype=np.int64)
    tcount = np.zeros(n, dtype=np.int64)
    npairs = 0
    cmin = np.inf
    cmax = -np.inf
    for a in range(k):
        for j in range(n):
            if cand[a, j]:
                dcount[a] += 1
                tcount[j] += 1
                npairs += 1
                cmin = min(cmin, cost[a, j])
                cmax = max(cmax, cost[a, j])
    if npairs == 0:
        return out
    conflict = False
    for a in range(k):
        for j in range(n):
            if cand[a, j] and (dcount[a] > 1 or tcount[j] > 1):
                conflict = True
    if not conflict:
        for a in range(k):
            for j in range(n):
                if cand[a, j]:
                    out[j] = a
        return out
    rows = np.nonzero(dcount > 0)[0]
    cols = np.nonzero(tcount > 0)[0]
    nd, nt = rows.size, cols.size
    big = (cmax - cmin + 1.0) * (min(nd, nt) + 1) + abs(cmax) + 1.0
    C = np.full((nd, nt), big)
    for a in range(nd):
        for b in range(nt):
            if cand[rows[a], cols[b]]:
                C[a, b] = cost[rows[a], cols[b]]
    if nd <= nt:
        c4r = linear_assignment(C)
        for a in range(nd):
            b = c4r[a]
            if cand[rows[a], cols[b]]:
                out[cols[b]] = rows[a]
    else:
        c4r = linear_assignment(np.ascontiguousarray(C.T))
        for b in range(nt):
            a = c4r[b]
            if cand[rows[a], cols[b]]:
                out[cols[b]] = rows[a]
    return out


@njit(cache=True)
def joint_events(nt, nd):
    """Every feasible joint event of ``nt`` tracks and ``nd`` detections, ``(E, nt)`` int64.

    Entry ``[e, j]`` is the detection given to track ``j`` (``nd``: none); no
    detection to two tracks. Lexicographic order, track 0 most significant,
    "none" last (the order of :func:`fusion.association._joint_events`).
    """
    base = nd + 1
    total = base**nt
    buf = np.empty((total, nt), dtype=np.int64)
    E = 0
    a = np.empty(nt, dtype=np.int64)
    for code in range(total):
        c = code
        for j in range(nt - 1, -1, -1):
            a[j] = c % base
            c //= base
        ok = True
        for j in range(nt):
            if a[j] < nd:
                for i in range(j):
                    if a[i] == a[j]:
                        ok = False
        if ok:
            buf[E] = a
            E += 1
    return buf[:E].copy()


@njit(cache=True)
def jpda_star(log_w, gated):
    """JPDA* marginals of one cluster: ``(beta (nd, nt), beta0 (nt,), map_det (nt,))``.

    Parameters
    ----------
    log_w : ndarray, shape (nd, nt)
        :math:`\\log w_{kj}` of the gated pairs, :math:`w_{kj} = P_D\\mathcal N(y_{kj};0,S_{kj})/(\\lambda(1-P_DP_G))`.
    gated : ndarray of bool, shape (nd, nt)

    Returns
    -------
    beta : ndarray (nd, nt)
        :math:`\\beta_{kj} = \\sum_{\\theta\\ni(k,j)} p(\\theta)`, events weighed by
        :math:`\\prod w` (Fortmann et al. 1983, eq. 30-34), only the best event of
        each permutation group kept (Blom & Bloem 2000).
    beta0 : ndarray (nt,)
        :math:`\\mathrm{clip}(1 - \\sum_k\\beta_{kj}, 0, 1)`.
    map_det : ndarray of int64 (nt,)
        Detection of each track in the most probable event (first on ties), -1 none.
    """
    nd, nt = log_w.shape
    ev = joint_events(nt, nd)
    E = ev.shape[0]
    le = np.zeros(E)
    key = np.zeros(E, dtype=np.int64)
    for e in range(E):
        s = 0.0
        dm = 0
        tm = 0
        for j in range(nt):
            k = ev[e, j]
            if k < nd:
                if gated[k, j]:
                    s += log_w[k, j]
                else:
                    s = -np.inf
                dm |= 1 << k
                tm |= 1 << j
        le[e] = s
        key[e] = dm * (1 << (nt + 1)) + tm
    best = np.full((1 << (nd + nt + 1)) + 1, -np.inf)
    for e in range(E):
        if le[e] > best[key[e]]:
            best[key[e]] = le[e]
    top = -np.inf
    for e in range(E):
        if not le[e] >= best[key[e]]:
            le[e] = -np.inf
        top = max(top, le[e])
    pe = np.exp(le - top)
    pe /= pe.sum()
    beta = np.zeros((nd, nt))
    for e in range(E):
        for j in range(nt):
            k = ev[e, j]
            if k < nd:
                beta[k, j] += pe[e]
    e_map = np.argmax(pe)
    map_det = np.full(nt, -1, dtype=np.int64)
    for j in range(nt):
        if ev[e_map, j] < nd:
            map_det[j] = ev[e_map, j]
    beta0 = np.empty(nt)
    for j in range(nt):
        s = 0.0
        for k in range(nd):
            s += beta[k, j]
        beta0[j] = min(max(1.0 - s, 0.0), 1.0)
    return beta, beta0, map_det
