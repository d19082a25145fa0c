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
