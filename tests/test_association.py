"""Gating threshold and GNN assignment against scipy.stats and brute-force enumeration."""

import itertools

import numpy as np
import pytest
from scipy.stats import chi2

from fusion.association import gate, gate_threshold, gnn_assign
from sim.errors import InputError


def test_gate_threshold_matches_chi2_quantile():
    # Textbook values: chi2_3 quantiles 7.815 (0.95) and 11.345 (0.99) (Bar-Shalom et al. 2001, table 1.5.4-1).
    assert gate_threshold(0.95, 3) == pytest.approx(7.8147, abs=1e-4)
    assert gate_threshold(0.99, 3) == pytest.approx(11.3449, abs=1e-4)
    g = gate_threshold(0.9997, 3)
    assert chi2.cdf(g, 3) == pytest.approx(0.9997, abs=1e-12)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_gate_threshold_rejects_bad_probability(p):
    with pytest.raises(InputError, match="tracker.gate_probability"):
        gate_threshold(p)


def test_gate_mask():
    m = gate([1.0, 20.0, 3.0, np.inf], [True, True, False, True], 10.0)
    assert m.tolist() == [True, False, False, False]


def _brute(nd, nt, pairs):
    """Best assignment by enumeration: most pairs first, then least cost. pairs: {(d, t): cost}."""
    best = (0, 0.0, frozenset())
    keys = list(pairs)
    for r in range(min(nd, nt), 0, -1):
        found = None
        for combo in itertools.combinations(keys, r):
            ds = {k[0] for k in combo}
            ts = {k[1] for k in combo}
            if len(ds) < r or len(ts) < r:
                continue
            c = sum(pairs[k] for k in combo)
            if found is None or c < found[1] - 1e-12:
                found = (r, c, frozenset(combo))
        if found is not None:
            return found
    return best


def test_gnn_equals_brute_force_on_random_batches():
    rng = np.random.default_rng(7)
    for _ in range(40):
        trials = 6
        det, trk, cost, trial, truth_sets = [], [], [], [], []
        dbase = 0
        for b in range(trials):
            nd, nt = rng.integers(1, 5), rng.integers(1, 5)
            pairs = {}
            for d in range(nd):
                for j in range(nt):
                    if rng.random() < 0.5:
                        pairs[(d, j)] = float(rng.uniform(-5, 20))
            for (d, j), c in pairs.items():
                det.append(dbase + d), trk.append(b * 10 + j), cost.append(c), trial.append(b)
            n, c_best, best = _brute(nd, nt, pairs)
            truth_sets.append((b, dbase, n, c_best))
            dbase += nd
        det, trk, cost, trial = map(np.array, (det, trk, cost, trial))
        a = gnn_assign(det, trk, cost, trial)
        # one-to-one
        assert np.unique(det[a]).size == a.sum() and np.unique(trk[a]).size == a.sum()
        for b, _, n, c_best in truth_sets:
            sel = a & (trial == b)
            assert sel.sum() == n
            assert cost[sel].sum() == pytest.approx(c_best, abs=1e-9)


def test_gnn_fast_path_assigns_isolated_pairs_and_resolves_conflict():
    # trial 0: one pair; trial 1: two tracks competing for one detection -> the cheaper track wins.
    det = np.array([0, 1, 1, 2])
    trk = np.array([0, 10, 11, 12])
    cost = np.array([3.0, 5.0, 2.0, 1.0])
    trial = np.array([0, 1, 1, 1])
    a = gnn_assign(det, trk, cost, trial)
    assert a.tolist() == [True, False, True, True]
    assert gnn_assign(det[:1], trk[:1], cost[:1], trial[:1]).tolist() == [True]
    assert gnn_assign([], [], [], []).size == 0


def test_gnn_prefers_more_assignments_over_cheaper_single():
    # Track A gates d1 (0.1) and d2 (9); track B gates only d1 (15): GNN takes A-d2, B-d1.
    a = gnn_assign([1, 2, 1], [0, 0, 1], [0.1, 9.0, 15.0], [0, 0, 0])
    assert a.tolist() == [False, True, True]


# --------------------------------------------------------------------------- JPDA


def test_jpda_one_track_is_the_pdaf_closed_form():
    # One track, m gated detections: beta_k = w_k / (1 + sum w) (Bar-Shalom, Daum & Huang 2009, eq. 38-39,
    # with w_k = P_D N_k / (lambda (1 - P_D))); the cluster here has one track, so call the kernel directly.
    from fusion.association import jpda_probabilities

    w = np.array([0.5, 2.0, 7.0])
    beta, _ = jpda_probabilities(np.zeros(3, int), np.arange(3), np.zeros(3, int), np.log(w))
    np.testing.assert_allclose(beta, w / (1.0 + w.sum()), rtol=1e-12)


def test_jpda_two_tracks_two_detections_closed_form():
    # Seven joint events: none; one of four single pairs; the two full assignments (Fortmann et al. 1983, eq. 30).
    from fusion.association import jpda_probabilities

    w = {(0, 0): 3.0, (0, 1): 0.4, (1, 0): 0.7, (1, 1): 5.0}  # (detection, track): weight
    d = np.array([k[0] for k in w])
    t = np.array([k[1] for k in w])
    beta, _ = jpda_probabilities(np.zeros(4, int), d + 10, t + 20, np.log(list(w.values())),
                              coalescence_avoiding=False)
    norm = 1.0 + sum(w.values()) + w[0, 0] * w[1, 1] + w[0, 1] * w[1, 0]
    expect = {
        (0, 0): (w[0, 0] + w[0, 0] * w[1, 1]) / norm,
        (0, 1): (w[0, 1] + w[0, 1] * w[1, 0]) / norm,
        (1, 0): (w[1, 0] + w[0, 1] * w[1, 0]) / norm,
        (1, 1): (w[1, 1] + w[0, 0] * w[1, 1]) / norm,
    }
    np.testing.assert_allclose(beta, list(expect.values()), rtol=1e-12)


def test_jpda_matches_brute_force_over_clusters_of_several_shapes():
    from fusion.association import jpda_probabilities

    rng = np.random.default_rng(7)
    clusters, dets, tracks, logw, expect = [], [], [], [], []
    for c, (nt, nd) in enumerate([(2, 1), (2, 3), (3, 3), (2, 3), (4, 2)]):
        gated = [(k, j) for k in range(nd) for j in range(nt) if rng.random() < 0.8 or k == j]
        w = {p: float(np.exp(rng.normal(0.0, 2.0))) for p in gated}
        # brute force over every subset of gated pairs that is a matching
        num = {p: 0.0 for p in gated}
        den = 0.0
        for r in range(0, min(nt, nd) + 1):
            for combo in itertools.combinations(gated, r):
                if len({p[0] for p in combo}) < r or len({p[1] for p in combo}) < r:
                    continue
                prod = float(np.prod([w[p] for p in combo])) if combo else 1.0
                den += prod
                for p in combo:
                    num[p] += prod
        for p in gated:
            clusters.append(c)
            dets.append(100 * c + p[0])
            tracks.append(100 * c + 50 + p[1])
            logw.append(np.log(w[p]))
            expect.append(num[p] / den)
    beta, _ = jpda_probabilities(np.array(clusters), np.array(dets), np.array(tracks), np.array(logw),
                              coalescence_avoiding=False)
    np.testing.assert_allclose(beta, expect, rtol=1e-10)
    # a detection's probabilities over tracks, and a track's over detections, sum to at most one
    for key in (np.array(dets), np.array(tracks)):
        sums = np.bincount(np.unique(key, return_inverse=True)[1], weights=beta)
        assert np.all(sums <= 1.0 + 1e-12)


def test_jpda_star_keeps_the_best_of_permuted_events_closed_form():
    # JPDA* (Blom & Bloem 2000): of {1->A, 2->B} and {2->A, 1->B}, which give the same detections to the
    # same tracks, only the more probable stays; every other event differs in its sets and stays.
    from fusion.association import jpda_probabilities

    w = {(0, 0): 3.0, (0, 1): 0.4, (1, 0): 0.7, (1, 1): 5.0}
    d = np.array([k[0] for k in w])
    t = np.array([k[1] for k in w])
    beta, in_map = jpda_probabilities(np.zeros(4, int), d, t, np.log(list(w.values())))
    assert in_map.tolist() == [True, False, False, True]  # the most probable event: weight 15 against 5, 3, 1
    full = w[0, 0] * w[1, 1]  # > w[0, 1] * w[1, 0]
    norm = 1.0 + sum(w.values()) + full
    expect = [(w[0, 0] + full) / norm, w[0, 1] / norm, w[1, 0] / norm, (w[1, 1] + full) / norm]
    np.testing.assert_allclose(beta, expect, rtol=1e-12)
    # three tracks, three detections, every pair gated: the brute force with the rule applied
    rng = np.random.default_rng(3)
    W = np.exp(rng.normal(0.0, 1.5, size=(3, 3)))
    groups = {}
    for r in range(4):
        for dets in itertools.combinations(range(3), r):
            for trks in itertools.combinations(range(3), r):
                best = max(itertools.permutations(trks), key=lambda p: np.prod([W[k, j] for k, j in zip(dets, p)]))
                groups[(dets, trks)] = list(zip(dets, best))
    num = np.zeros((3, 3))
    den = 0.0
    for ev in groups.values():
        prod = float(np.prod([W[k, j] for k, j in ev])) if ev else 1.0
        den += prod
        for k, j in ev:
            num[k, j] += prod
    kk, jj = np.meshgrid(range(3), range(3), indexing="ij")
    beta, _ = jpda_probabilities(np.zeros(9, int), kk.ravel(), jj.ravel(), np.log(W.ravel()))
    np.testing.assert_allclose(beta, (num / den).ravel(), rtol=1e-10)


def test_jpda_clusters_need_two_eligible_tracks_sharing_a_detection():
    from fusion.association import jpda_clusters

    # pairs: (det, track). Tracks 1 and 2 share detection 11; track 3 is alone with two detections;
    # tracks 4 and 5 share detection 14 but track 5 is not eligible (tentative).
    det = np.array([10, 11, 11, 12, 13, 14, 14])
    trk = np.array([1, 1, 2, 2, 3, 4, 5])
    elig = np.array([True, True, True, True, True, True, False])
    cl = jpda_clusters(det, trk, elig)
    assert cl[0] == cl[1] == cl[2] == cl[3] >= 0
    assert cl[4] == -1 and cl[5] == -1 and cl[6] == -1
    # too large: seven tracks on one detection fall back to GNN
    cl = jpda_clusters(np.zeros(7, int), np.arange(7), np.ones(7, bool))
    assert np.all(cl == -1)


def test_jpda_clusters_of_many_shapes_in_one_call():
    # Shapes that an arithmetic key could confuse (2 x 9 and 3 x 1): each solved on its own.
    from fusion.association import jpda_probabilities

    c = np.r_[np.zeros(18, int), np.ones(3, int)]
    d = np.r_[np.repeat(np.arange(9), 2), np.full(3, 100)]
    t = np.r_[np.tile([0, 1], 9), [200, 201, 202]]
    beta, in_map = jpda_probabilities(c, d, t, np.zeros(21))
    for key in (t[c == 0], d[c == 0]):  # cluster 0: a track's and a detection's probabilities sum to <= 1
        sums = np.bincount(np.unique(key, return_inverse=True)[1], weights=beta[c == 0])
        assert np.all(sums <= 1.0 + 1e-12)
    np.testing.assert_allclose(beta[18:], 1.0 / 4.0)  # one detection, three equal tracks, or none
    assert in_map[:18].sum() == 2 and in_map[18:].sum() == 1
