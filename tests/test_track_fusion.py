"""Track-to-track fusion kernels (fusion.track_fusion): CI weight, rules, gating, GNN, consistency."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import chi2, kstest

from fusion.models import process_noise
from fusion.track_fusion import (
    associate_gnn,
    association_d2,
    best_track,
    ci_weight,
    covariance_intersection,
    fuse_pair,
    gate_threshold,
    naive_fusion,
)
from sim.errors import InputError


def _random_spd(rng, k, n=6, scale=None):
    A = rng.standard_normal((k, n, n))
    P = A @ np.swapaxes(A, -1, -2) + 0.1 * np.eye(n)
    if scale is not None:  # mixed units, as in a [position m, velocity m/s] state
        P = scale[:, None] * P * scale[None, :]
    return P


def _P_ci(w, Pa, Pb):
    """Defining formula of the CI covariance (Julier & Uhlmann 1997, eq. 5)."""
    return np.linalg.inv(w * np.linalg.inv(Pa) + (1 - w) * np.linalg.inv(Pb))


@pytest.mark.parametrize("criterion", ["trace", "det"])
def test_ci_weight_matches_minimize_scalar(criterion):
    rng = np.random.default_rng(11)
    scale = np.array([300.0, 300.0, 300.0, 5.0, 5.0, 5.0])
    Pa = _random_spd(rng, 25, scale=scale)
    Pb = _random_spd(rng, 25, scale=scale)
    Pb[0] = 4.0 * Pa[0]  # nested ellipsoids: the optimum is an end point (w = 1)
    w = ci_weight(Pa, Pb, criterion)
    obj = (lambda M: np.trace(M)) if criterion == "trace" else (lambda M: np.linalg.slogdet(M)[1])
    for k in range(len(Pa)):
        ref = minimize_scalar(lambda v: obj(_P_ci(v, Pa[k], Pb[k])), bounds=(0.0, 1.0),
                              method="bounded", options={"xatol": 1e-10})
        f_ours = obj(_P_ci(w[k], Pa[k], Pb[k]))
        # ours is at least as good as scipy's (to rounding), and at the same weight where the optimum is sharp
        assert f_ours <= ref.fun + 1e-9 * abs(ref.fun)
        assert w[k] == pytest.approx(ref.x, abs=1e-4)
    assert w[0] == 1.0


def test_ci_state_and_covariance_match_defining_formula():
    rng = np.random.default_rng(3)
    Pa, Pb = _random_spd(rng, 10), _random_spd(rng, 10)
    xa, xb = rng.standard_normal((10, 6)) * 50, rng.standard_normal((10, 6)) * 50
    x, P, w = covariance_intersection(xa, Pa, xb, Pb)
    for k in range(10):
        Pk = _P_ci(w[k], Pa[k], Pb[k])
        xk = Pk @ (w[k] * np.linalg.solve(Pa[k], xa[k]) + (1 - w[k]) * np.linalg.solve(Pb[k], xb[k]))
        np.testing.assert_allclose(P[k], Pk, rtol=1e-9, atol=1e-9 * np.abs(Pk).max())
        np.testing.assert_allclose(x[k], xk, rtol=1e-8, atol=1e-8 * np.abs(xk).max())
    # CI never claims more than either input: P_CI <= ... and tr P_CI <= min trace
    assert np.all(np.trace(P, axis1=1, axis2=2) <= np.minimum(np.trace(Pa, axis1=1, axis2=2),
                                                              np.trace(Pb, axis1=1, axis2=2)) * (1 + 1e-12))


def test_naive_is_information_sum():
    rng = np.random.default_rng(5)
    Pa, Pb = _random_spd(rng, 8), _random_spd(rng, 8)
    xa, xb = rng.standard_normal((8, 6)), rng.standard_normal((8, 6))
    x, P = naive_fusion(xa, Pa, xb, Pb)
    Ia, Ib = np.linalg.inv(Pa), np.linalg.inv(Pb)
    P_ref = np.linalg.inv(Ia + Ib)
    x_ref = (P_ref @ (Ia @ xa[..., None] + Ib @ xb[..., None]))[..., 0]
    np.testing.assert_allclose(P, P_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(x, x_ref, rtol=1e-8, atol=1e-10)


def test_best_track_and_rule_dispatch():
    Pa = np.diag([4.0, 4, 4, 1, 1, 1])[None].repeat(2, 0)
    Pb = np.stack([np.eye(6), 9 * np.eye(6)])
    xa, xb = np.zeros((2, 6)), np.ones((2, 6))
    x, P = best_track(xa, Pa, xb, Pb)
    np.testing.assert_array_equal(x, [np.ones(6), np.zeros(6)])
    np.testing.assert_array_equal(P, [Pb[0], Pa[1]])
    x2, P2 = fuse_pair(xa, Pa, xb, Pb, "best-track")
    np.testing.assert_array_equal(x2, x)
    with pytest.raises(InputError, match="sharing.track_fusion"):
        fuse_pair(xa, Pa, xb, Pb, "average")
    with pytest.raises(InputError, match="gate_probability"):
        gate_threshold(1.0)


def test_association_statistic_is_chi_square_for_same_target():
    # two independent unbiased estimates of one state: d2 ~ chi2(6) (Bar-Shalom et al. 2011, 9.3.2)
    rng = np.random.default_rng(2024)
    M = 4000
    Pa = _random_spd(rng, 1)[0]
    Pb = _random_spd(rng, 1)[0]
    xa = rng.multivariate_normal(np.zeros(6), Pa, M)
    xb = rng.multivariate_normal(np.zeros(6), Pb, M)
    d2 = association_d2(xa, Pa, xb, Pb)
    assert kstest(d2, chi2(6).cdf).pvalue > 0.01
    g = gate_threshold(0.99)
    assert np.mean(d2 <= g) == pytest.approx(0.99, abs=0.006)
    # a non-finite state or covariance never associates
    assert association_d2(np.full(6, np.nan), Pa, xb[0], Pb) == np.inf
    assert association_d2(xa[0], -Pa, xb[0], Pb) == np.inf


def _brute_force(cells, a, b, d2, gamma):
    """Reference GNN: per cell, enumerate every one-to-one set of gated pairs (maximum size, then min cost)."""
    out = []
    for c in np.unique(cells):
        idx = [i for i in np.flatnonzero(cells == c) if d2[i] <= gamma]
        best = (0, 0.0, ())
        for r in range(len(idx), 0, -1):
            for combo in itertools.combinations(idx, r):
                if len({a[i] for i in combo}) < r or len({b[i] for i in combo}) < r:
                    continue
                key = (r, -sum(d2[i] for i in combo))
                if key > (best[0], -best[1]):
                    best = (r, sum(d2[i] for i in combo), combo)
            if best[0]:
                break
        out.extend(best[2])
    return sorted(out)


def test_gnn_matches_brute_force_and_beats_greedy():
    # classic crossing: greedy takes (0,0) at 1.0 and leaves (1,1) out of the gate; GNN takes (0,1)+(1,0)
    cells = np.array([0, 0, 0, 0])
    a = np.array([0, 0, 1, 1])
    b = np.array([0, 1, 0, 1])
    d2 = np.array([1.0, 2.0, 2.0, 50.0])
    sel = associate_gnn(cells, a, b, d2, gamma=20.0)
    assert sorted(zip(a[sel], b[sel])) == [(0, 1), (1, 0)]
    rng = np.random.default_rng(8)
    for _ in range(40):
        K = 30
        cells = rng.integers(0, 6, K)
        a = rng.integers(0, 3, K)
        b = rng.integers(0, 3, K)
        # unique (cell, a, b) triples, as candidate pairs are
        _, keep = np.unique(np.stack([cells, a, b]), axis=1, return_index=True)
        cells, a, b = cells[keep], a[keep], b[keep]
        d2 = rng.uniform(0, 30, cells.size)
        sel = associate_gnn(cells, a, b, d2, gamma=18.0)
        ref = _brute_force(cells, a, b, d2, 18.0)
        assert len(sel) == len(ref)
        assert d2[sel].sum() == pytest.approx(d2[ref].sum())


def _run_two_filters(rng, M, steps, q, sigma_a, sigma_b, common_process_noise):
    """Two linear Kalman filters (3-D constant velocity, position radars) on the same targets.

    ``sigma_a``, ``sigma_b`` are per-axis position noise sigmas (m), e.g. a radar
    accurate in range and poor across it, looking from another side than the other.

    Returns the final truth (M, 6) and the two estimates with their covariances. With
    ``common_process_noise`` both filters track the same truth, so their errors are
    correlated (Bar-Shalom, Willett & Tian 2011, sec. 9.3.3); otherwise each tracks its
    own independent realisation of the truth (the errors are then independent).
    """
    dt = 1.0
    F = np.eye(6)
    F[:3, 3:] = dt * np.eye(3)
    Q = process_noise(dt, q)
    H = np.hstack([np.eye(3), np.zeros((3, 3))])
    P0 = np.diag([200.0**2] * 3 + [20.0**2] * 3)
    truth_a = rng.multivariate_normal(np.zeros(6), P0, M)
    truth_b = truth_a.copy() if common_process_noise else rng.multivariate_normal(np.zeros(6), P0, M)
    Ps = [P0.copy(), P0.copy()]
    xs = [truth_a + rng.multivariate_normal(np.zeros(6), P0, M),
          truth_b + rng.multivariate_normal(np.zeros(6), P0, M)]
    truths = [truth_a, truth_b]
    for _ in range(steps):
        w = rng.multivariate_normal(np.zeros(6), Q, M)
        truths[0] = truths[0] @ F.T + w
        truths[1] = truths[0].copy() if common_process_noise else \
            truths[1] @ F.T + rng.multivariate_normal(np.zeros(6), Q, M)
        for i, sigma in enumerate((sigma_a, sigma_b)):
            R = np.diag(np.asarray(sigma, dtype=float) ** 2)
            x = xs[i] @ F.T
            P = F @ Ps[i] @ F.T + Q
            z = truths[i] @ H.T + rng.normal(0.0, 1.0, (M, 3)) * sigma
            S = H @ P @ H.T + R
            K = P @ H.T @ np.linalg.inv(S)
            xs[i] = x + (z - x @ H.T) @ K.T
            Ps[i] = (np.eye(6) - K @ H) @ P
    return truths, xs, Ps


def _anees(err, P):
    return float(np.mean(np.einsum("ki,kij,kj->k", err, np.linalg.inv(P), err, optimize=True)))


def test_naive_overconfident_on_correlated_tracks_ci_consistent():
    rng = np.random.default_rng(20231219)
    M, n = 2000, 6
    lo, hi = chi2.ppf([0.005, 0.995], n * M) / M  # 99 % two-sided ANEES interval (Bar-Shalom 2001, 5.4.2)
    truths, (xa, xb), (Pa, Pb) = _run_two_filters(rng, M, steps=30, q=20.0, sigma_a=(20.0, 150.0, 60.0), sigma_b=(150.0, 20.0, 60.0),
                                                  common_process_noise=True)
    truth = truths[0]
    # each filter alone is consistent
    for x, P in ((xa, Pa), (xb, Pb)):
        assert lo <= _anees(x - truth, np.broadcast_to(P, (M, n, n))) <= hi
    Pa_b, Pb_b = np.broadcast_to(Pa, (M, n, n)), np.broadcast_to(Pb, (M, n, n))
    x_nv, P_nv = naive_fusion(xa, Pa_b, xb, Pb_b)
    x_ci, P_ci, w = covariance_intersection(xa, Pa_b, xb, Pb_b)
    anees_naive = _anees(x_nv - truth, P_nv)
    anees_ci = _anees(x_ci - truth, P_ci)
    assert anees_naive > hi  # ignoring the common process noise: over-confident
    assert anees_ci <= hi  # CI bounds the true error for any correlation
    # complementary radars (each accurate across the other's poor axis): CI really fuses and
    # still improves on the better input by far
    assert 0.05 < w[0] < 0.95
    assert np.trace(P_ci[0]) < 0.5 * min(np.trace(Pa), np.trace(Pb))


def test_naive_consistent_when_errors_independent():
    rng = np.random.default_rng(77)
    M, n = 2000, 6
    lo, hi = chi2.ppf([0.005, 0.995], n * M) / M
    truths, (xa, xb), (Pa, Pb) = _run_two_filters(rng, M, steps=30, q=20.0, sigma_a=(20.0, 150.0, 60.0), sigma_b=(150.0, 20.0, 60.0),
                                                  common_process_noise=False)
    # independent estimates of the same quantity: shift b's estimate onto a's truth
    xb_on_a = xb - truths[1] + truths[0]
    x_nv, P_nv = naive_fusion(xa, np.broadcast_to(Pa, (M, n, n)), xb_on_a, np.broadcast_to(Pb, (M, n, n)))
    assert lo <= _anees(x_nv - truths[0], P_nv) <= hi


def test_position_pregate_exact_inside_gate():
    # the 3-D position bound only drops pairs that fail the 6-D gate anyway
    rng = np.random.default_rng(9)
    K = 3000
    scale = np.array([300.0, 300.0, 300.0, 5.0, 5.0, 5.0])
    Pa, Pb = _random_spd(rng, K, scale=scale), _random_spd(rng, K, scale=scale)
    d = rng.standard_normal((K, 6)) * scale * rng.uniform(0.2, 20.0, (K, 1))
    g = gate_threshold(0.9997)
    full = association_d2(d, Pa, np.zeros(6), Pb)
    fast = association_d2(d, Pa, np.zeros(6), Pb, gamma=g)
    inside = full <= g
    assert 0.2 < inside.mean() < 0.8
    np.testing.assert_allclose(fast[inside], full[inside], rtol=1e-10)
    assert np.all(fast[~inside] > g)
    assert np.isinf(fast).sum() > 0  # some pairs skipped the 6-D solve
    # against the textbook formula
    ref = np.einsum("ki,kij,kj->k", d, np.linalg.inv(Pa + Pb), d, optimize=True)
    np.testing.assert_allclose(full, ref, rtol=1e-8)
