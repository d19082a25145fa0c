"""Batch least-squares initiation (fusion.initiation).

Oracles: scipy.optimize.least_squares on the same residuals written with the
batched numpy models (fusion.drag.drag_propagate, fusion.models.radar_hx,
fusion.models.radar_residual); noise-free plots of a truth arc; the chi-square
distribution of the NEES and of the fit residual over 200 fixed seeds
(scipy.stats.chi2).
"""

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.stats import chi2

from fusion import initiation as ini
from fusion import motion_kernels as mk
from fusion import track_kernels as tk
from fusion.drag import drag_propagate
from fusion.models import radar_hx, radar_residual
from sim.earth import ecef_to_geodetic, enu_rotation, geodetic_to_ecef

# Hwasong-15-like lofted midcourse point, ~1,000 km from the Shariki TPY-2 (ENU velocity, m/s)
LAT, LON, ALT = 39.8, 131.5, 600e3
V_ENU = [1200.0, 300.0, 2500.0]
# TPY-2 at Shariki: 3-m range floor, ~1 mrad angles for a 0.01 m^2 RV at 13 dB (sensors/catalog.py);
# an Aegis-like ship in the Sea of Japan (10 m, 1 mrad)
RADARS = {
    "tpy2": (40.88, 140.35, 3.0, 1.0e-3),
    "aegis": (38.0, 134.0, 10.0, 1.0e-3),
    # the same TPY-2 seeing a small RV at low SNR, 1,540 km away (X_FAR): rho sigma_a^2 / sigma_r = 6,
    # far beyond the 0.4 up to which a Cartesian linearisation is consistent (Lerro & Bar-Shalom 1993)
    "tpy2_far": (40.88, 140.35, 3.0, 3.4e-3),
}
N_SEEDS = 200


def _state(lat_deg, lon_deg, alt_m, v_enu):
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    return np.concatenate([geodetic_to_ecef(lat, lon, alt_m), enu_rotation(lat, lon).T @ np.asarray(v_enu, float)])


X0 = _state(LAT, LON, ALT, V_ENU)  # truth at t = 0
X_FAR = _state(39.3, 124.0, 500e3, [1500.0, 200.0, 3000.0])  # ascent over the Yellow Sea, 1,540 km from Shariki


def _radar(name):
    lat, lon, s_r, s_a = RADARS[name]
    site = geodetic_to_ecef(np.radians(lat), np.radians(lon), 50.0)
    return site, enu_rotation(np.radians(lat), np.radians(lon)), np.diag([s_r**2, s_a**2, s_a**2])


def truth_at(t, x0=X0):
    """Truth state at ``t`` on the tracker's own drag-ballistic model."""
    x = np.empty(6)
    mk.drag_transition(x0, float(t), False, x, np.empty((6, 6)))
    return x


def plots(schedule, rng=None, x0=X0, truth=None):
    """Arrays ``tz, z, R, site, R_enu`` of the plots of ``schedule`` [(radar name, time s), ...].

    Noise-free when ``rng`` is None; ``truth(t)`` overrides the ballistic truth.
    """
    truth = truth or (lambda t: truth_at(t, x0))
    n = len(schedule)
    tz, z = np.empty(n), np.empty((n, 3))
    R, site, R_enu = np.empty((n, 3, 3)), np.empty((n, 3)), np.empty((n, 3, 3))
    hx = np.empty(3)
    for i, (name, t) in enumerate(schedule):
        site[i], R_enu[i], R[i] = _radar(name)
        tk.radar_hx(truth(t), site[i], R_enu[i], hx)
        z[i] = hx if rng is None else hx + rng.multivariate_normal(np.zeros(3), R[i])
        z[i, 1] %= 2 * np.pi
        tz[i] = t
    return tz, z, R, site, R_enu


# 3 plots at 1-s spacing from each radar, the second one interleaved
TWO_RADARS = [("tpy2", 0.0), ("tpy2", 1.0), ("tpy2", 2.0), ("aegis", 0.5), ("aegis", 1.5), ("aegis", 2.5)]
# the two radars see the object in the same instants (equal plot times)
SIMULTANEOUS = [("tpy2", 0.0), ("aegis", 0.0), ("tpy2", 1.0), ("aegis", 1.0), ("tpy2", 2.0), ("aegis", 2.0)]


def fit(tz, z, R, site, R_enu, q=0.0, t_ref=None):
    x, P = np.empty(6), np.empty((6, 6))
    t_ref = tz.max() if t_ref is None else t_ref
    code, c2 = ini.batch_fit(tz, z, R, site, R_enu, len(tz), t_ref, q, x, P)
    return code, c2, x, P


def nees(x, P, x_true):
    e = x - x_true
    return float(e @ np.linalg.solve(P, e))


def nees_band(dof, n=N_SEEDS, p=0.99):
    """Two-sided ``p`` band of the mean of ``n`` chi-square(dof) samples."""
    return chi2.ppf((1 - p) / 2, dof * n) / n, chi2.ppf((1 + p) / 2, dof * n) / n


def _scipy_residuals(tz, z, R, site, R_enu, t_ref, q, W_at=None):
    """Whitened residuals :math:`L_i^{-1}y_i`, :math:`L_iL_i^T = R_i + q|dt|^3/3 H_rH_r^T`, in numpy.

    The weights are those of the iterate itself, or frozen at the state ``W_at``.
    """
    from fusion.models import radar_H

    def res(x):
        out = []
        for i in range(len(tz)):
            dt = tz[i] - t_ref
            xi = drag_propagate(x[None], np.array([dt]))[0] if dt != 0 else x
            xw = xi if W_at is None else drag_propagate(W_at[None], np.array([dt]))[0]
            Hr = radar_H(xw, site[i], R_enu[i])[:, :3]
            S = R[i] + q * abs(dt) ** 3 / 3.0 * Hr @ Hr.T
            rho, el = z[i, 0], z[i, 2]  # curvature of the range: 1/2 tr(rho_xx C rho_xx C), C cross-range
            C = np.diag([(rho * np.cos(el)) ** 2 * R[i, 1, 1], rho**2 * R[i, 2, 2]])
            S[0, 0] += 0.5 * np.trace(C / rho @ C / rho)
            y = radar_residual(z[i], radar_hx(xi, site[i], R_enu[i]))
            out.append(np.linalg.solve(np.linalg.cholesky(S), y))
        return np.concatenate(out)

    return res


def test_noise_free_plots_recover_the_truth():
    for schedule in (TWO_RADARS, SIMULTANEOUS, TWO_RADARS[:3], TWO_RADARS[:2]):
        tz, z, R, site, R_enu = plots(schedule)
        code, c2, x, P = fit(tz, z, R, site, R_enu)
        assert code > 0
        e = x - truth_at(tz.max())
        assert np.all(np.abs(e[:3]) < 1e-6), e  # m
        assert np.all(np.abs(e[3:]) < 1e-6), e  # m/s
        assert c2 < 1e-12
        # an estimate at a time between the plots (backward and forward propagation at once)
        code, c2, x, P = fit(tz, z, R, site, R_enu, t_ref=1.2)
        assert code > 0
        assert np.all(np.abs(x - truth_at(1.2)) < 1e-6)


def test_equals_scipy_least_squares():
    """Same minimiser and covariance as scipy's trust-region least squares on the numpy residuals."""
    rng = np.random.default_rng(20261207)
    tz, z, R, site, R_enu = plots(TWO_RADARS, rng)
    t_ref = tz.max()
    code, c2, x, P = fit(tz, z, R, site, R_enu)
    assert code > 0
    sig = np.sqrt(np.diag(P))
    x_start = truth_at(t_ref) + np.array([2e3, -1e3, 1.5e3, 300.0, -200.0, 100.0])
    ref = least_squares(_scipy_residuals(tz, z, R, site, R_enu, t_ref, 0.0), x_start, x_scale=sig,
                        jac="3-point", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    assert ref.success
    np.testing.assert_allclose(x, ref.x, rtol=1e-6)
    np.testing.assert_allclose((x - ref.x) / sig, 0.0, atol=1e-5)  # converged to 1e-3 sigma steps, then quadratic
    np.testing.assert_allclose(c2, 2.0 * ref.cost, rtol=1e-6)
    P_ref = np.linalg.inv(ref.jac.T @ ref.jac)
    np.testing.assert_allclose(np.sqrt(np.diag(P)), np.sqrt(np.diag(P_ref)), rtol=1e-5)
    np.testing.assert_allclose(P / np.outer(sig, sig), P_ref / np.outer(sig, sig), rtol=0, atol=1e-5)


def test_with_process_noise_is_the_fixed_point_of_its_weights():
    """With q > 0 the weights depend on the state (through H): scipy with the weights frozen at the
    kernel's estimate must return that estimate (the fixed point of iteratively reweighted LS)."""
    rng = np.random.default_rng(7)
    tz, z, R, site, R_enu = plots(TWO_RADARS, rng)
    t_ref = tz.max()
    q = 900.0  # m^2/s^3: 30 m/s^2 over a 1-s span
    code, c2, x, P = fit(tz, z, R, site, R_enu, q=q)
    assert code > 0
    sig = np.sqrt(np.diag(P))
    ref = least_squares(_scipy_residuals(tz, z, R, site, R_enu, t_ref, q, W_at=x), x + 0.5 * sig, x_scale=sig,
                        jac="3-point", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    np.testing.assert_allclose((x - ref.x) / sig, 0.0, atol=1e-6)
    # and the noise term does enter: without it the estimate moves by a visible fraction of sigma
    _, _, x0, P0 = fit(tz, z, R, site, R_enu, q=0.0)
    assert np.max(np.abs(x0 - x) / sig) > 1e-3
    assert np.all(np.diag(P) > np.diag(P0))


def test_azimuth_wrap():
    """A radar due south of the arc: azimuths straddle 0 / 2 pi between plots; same fit as without the wrap."""
    lat, lon, _ = ecef_to_geodetic(truth_at(1.0)[:3])
    RADARS["south"] = (float(np.degrees(lat)) - 6.0, float(np.degrees(lon)), 10.0, 1.0e-3)
    try:
        schedule = [("south", 0.0), ("south", 1.0), ("south", 2.0)]
        tz, z, R, site, R_enu = plots(schedule)
        az = z[:, 1]
        assert az.max() > 6.0 and az.min() < 0.3  # wrapped between plots
        code, _, x, _ = fit(tz, z, R, site, R_enu)
        assert code > 0
        assert np.all(np.abs(x - truth_at(2.0)) < 1e-6)
        # the middle plot lies within noise of north: its azimuth falls on either side of 0 / 2 pi by seed
        sides = []
        for seed in range(20):
            tz, z, R, site, R_enu = plots(schedule, np.random.default_rng(seed))
            sides.append(z[1, 1] > np.pi)
            code, c2, x, P = fit(tz, z, R, site, R_enu)
            assert code > 0 and c2 < chi2.ppf(0.9999, 3), (seed, code, c2)
        assert 5 < sum(sides) < 15
    finally:
        del RADARS["south"]


def _monte_carlo(schedule, q=0.0, x0=X0, truth=None):
    """(NEES, fit chi2, code, error, P) of N_SEEDS fits; ``truth(seed)`` gives a per-seed truth function."""
    out = []
    for seed in range(N_SEEDS):
        rng = np.random.default_rng(seed)
        tr = truth(seed) if truth else (lambda t: truth_at(t, x0))
        tz, z, R, site, R_enu = plots(schedule, rng, truth=tr)
        code, c2, x, P = fit(tz, z, R, site, R_enu, q=q)
        assert code > 0
        x_true = tr(tz.max())
        out.append((nees(x, P, x_true), c2, code, x - x_true, P))
    return out


@pytest.mark.parametrize("schedule", [TWO_RADARS, SIMULTANEOUS], ids=["interleaved", "simultaneous"])
def test_consistent_from_the_first_output(schedule):
    """NEES mean of the batch estimate inside the 99 % chi-square band (6 dof x 200 seeds); the fit's
    residual chi-square mean inside its band (3n - 6 dof): the weights and the covariance are right."""
    mc = _monte_carlo(schedule)
    lo, hi = nees_band(6)
    m = np.mean([r[0] for r in mc])
    assert lo < m < hi, (lo, m, hi)
    dof = 3 * len(schedule) - 6
    lo, hi = nees_band(dof)
    m = np.mean([r[1] for r in mc])
    assert lo < m < hi, (lo, m, hi)


def one_plot_ekf(tz, z, R, site, R_enu, q, max_speed=7500.0):
    """Today's start: one-plot initiation on the earliest plot, then EKF predictions and updates in time
    order (iterated linearisation on the first update), as the compiled tracker does."""
    order = np.argsort(tz, kind="stable")
    x, P = np.empty(6), np.empty((6, 6))
    i0 = order[0]
    tk.initial_state(z[i0], R[i0], site[i0], R_enu[i0], max_speed, x, P)
    xm, Pm, mu = x[None].copy(), P[None].copy(), np.ones(1)
    t = tz[i0]
    for k, i in enumerate(order[1:]):
        tk.predict_track(tk.EKF, xm, Pm, mu, tz[i] - t, q, 0.0, 0.0, 0.0, 1.0, 1.0)
        t = tz[i]
        tk.update_track(tk.EKF, xm, Pm, mu, z[i], R[i], site[i], R_enu[i], k == 0)
    return xm[0], Pm[0]


FAR_SPARSE = [("tpy2_far", 0.0), ("tpy2_far", 5.0), ("tpy2_far", 10.0)]  # P_D about 0.2 on 1-s scans
FAR_DENSE = [("tpy2_far", 0.0), ("tpy2_far", 1.0), ("tpy2_far", 2.0)]


@pytest.mark.parametrize("schedule", [FAR_SPARSE, FAR_DENSE], ids=["sparse", "dense"])
def test_consistent_for_coarse_long_range_plots(schedule):
    """At 1,540 km with 3.4-mrad angles the range's curvature term (fusion.initiation.range_curvature_variance)
    keeps the NEES mean at or below the band (conservative by up to the number of plots; without the term the
    mean was 60-65, and full Gauss-Newton steps diverged in 92 of 200 dense-schedule seeds); every seed
    converges."""
    mc = _monte_carlo(schedule, x0=X_FAR)
    lo, hi = nees_band(6)
    m = np.mean([r[0] for r in mc])
    assert 4.5 < m < hi, (lo, m, hi)


def test_one_plot_ekf_start_is_not_consistent():
    """On the same sparse long-range plots, today's one-plot start (7.5-km/s velocity prior, iterated first
    update, EKF with the tracker's default q = 1 m^2/s^3) has a NEES mean two orders of magnitude above
    the band, while the batch estimate is inside or below it (previous test)."""
    lo, hi = nees_band(6)
    e = []
    for seed in range(N_SEEDS):
        tz, z, R, site, R_enu = plots(FAR_SPARSE, np.random.default_rng(seed), x0=X_FAR)
        x, P = one_plot_ekf(tz, z, R, site, R_enu, q=1.0)
        e.append(nees(x, P, truth_at(tz.max(), X_FAR)))
    assert np.mean(e) > 100 * hi, np.mean(e)


def white_noise_truth(seed, q, t_end, x0=X0, h=0.02):
    """Truth with a white-noise acceleration of PSD ``q`` (m^2/s^3): drag-ballistic steps of ``h`` s, each
    followed by a piecewise-constant acceleration kick of variance q/h; a function of the grid times."""
    rng = np.random.default_rng(10_000 + seed)
    states = {0: x0.copy()}
    x = x0.copy()
    for k in range(1, int(round(t_end / h)) + 1):
        x1 = np.empty(6)
        mk.drag_transition(x, h, False, x1, np.empty((6, 6)))
        a = rng.normal(0.0, np.sqrt(q / h), 3)
        x1[:3] += 0.5 * a * h * h
        x1[3:] += a * h
        states[k] = x = x1
    return lambda t: states[int(round(t / h))]


def test_process_noise_in_the_weights_with_white_noise_truth():
    """A truth driven by white-noise acceleration of PSD q: folding q into the plot weights brings the NEES
    mean from hundreds to near 6; it stays somewhat above 6 because the correlation of the unmodelled
    deviations between plots is ignored (optimistic, as the docstring of fusion.initiation.batch_fit says)."""
    q = 900.0
    truth = lambda seed: white_noise_truth(seed, q, 2.5)  # noqa: E731
    m = np.mean([r[0] for r in _monte_carlo(TWO_RADARS, q=q, truth=truth)])
    assert 6.0 < m < 8.0, m
    m0 = np.mean([r[0] for r in _monte_carlo(TWO_RADARS, q=0.0, truth=truth)])
    assert m0 > 100.0, m0


def test_constant_thrust_truth_with_matched_q_is_conservative():
    """A 30 m/s^2 thrust along the velocity over the 2.5-s span: q = a^2 T keeps the NEES mean below 6;
    q = 0 is far above the band."""
    a, T = 30.0, 2.5

    def truth(seed):
        def f(t):
            x = X0.copy()
            if t != 0.0:
                mk.thrust_transition(X0, t, a, 1000.0, x, np.empty((6, 6)))
            return x
        return f

    lo, hi = nees_band(6)
    m = np.mean([r[0] for r in _monte_carlo(TWO_RADARS, q=a * a * T, truth=truth)])
    assert 2.0 < m < lo, m
    m0 = np.mean([r[0] for r in _monte_carlo(TWO_RADARS, q=0.0, truth=truth)])
    assert m0 > 5 * hi, m0


def test_degenerate_inputs_fail():
    tz, z, R, site, R_enu = plots(TWO_RADARS)
    assert fit(tz[:1], z[:1], R[:1], site[:1], R_enu[:1])[0] == ini.DEGENERATE  # one plot
    # all plots at one time, one radar and two radars: velocity unobservable
    one_time = np.zeros(3)
    same = plots([("tpy2", 1.0)] * 3, np.random.default_rng(0))
    assert fit(one_time, *same[1:])[0] == ini.DEGENERATE
    both = plots([("tpy2", 1.0), ("aegis", 1.0)], np.random.default_rng(0))
    assert fit(np.zeros(2), *both[1:])[0] == ini.DEGENERATE
    # non-finite plot and a noise covariance that is not positive definite
    zb = z.copy()
    zb[2, 1] = np.nan
    assert fit(tz, zb, R, site, R_enu)[0] == ini.NON_FINITE
    Rb = R.copy()
    Rb[1] = 0.0
    assert fit(tz, z, Rb, site, R_enu)[0] == ini.NON_FINITE
    # the boolean entry point agrees, and leaves its verdict on the good case too
    x, P = np.empty(6), np.empty((6, 6))
    assert not ini.batch_initiate(tz, zb, R, site, R_enu, len(tz), tz.max(), 0.0, x, P)
    assert ini.batch_initiate(tz, z, R, site, R_enu, len(tz), tz.max(), 0.0, x, P)


def test_uses_only_the_first_n_rows():
    """Buffers longer than n (as the tracker's) do not change the result."""
    tz, z, R, site, R_enu = plots(TWO_RADARS, np.random.default_rng(11))
    code, c2, x, P = fit(tz[:4], z[:4], R[:4], site[:4], R_enu[:4], t_ref=1.5)
    xb, Pb = np.empty(6), np.empty((6, 6))
    code_b, c2_b = ini.batch_fit(tz, z, R, site, R_enu, 4, 1.5, 0.0, xb, Pb)
    assert code == code_b and c2 == c2_b
    np.testing.assert_array_equal(x, xb)
    np.testing.assert_array_equal(P, Pb)
