"""Motion and measurement models: RK4 vs solve_ivp, Jacobians vs finite differences, noise vs filterpy."""

import numpy as np
import pytest
from filterpy.common import Q_continuous_white_noise
from scipy.integrate import solve_ivp

from fusion import models
from sensors.geometry import Site
from sim.errors import InputError
from sim.gravity import ballistic_acceleration


def _state(lat_deg=40.0, lon_deg=128.0, alt=400e3, v_east=3000.0, v_up=1000.0):
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    return np.concatenate([(6378137.0 + alt) * up, v_east * east + v_up * up])


def _reference(x0, T, accel=0.0):
    def rhs(t, y):
        a = ballistic_acceleration(y[:3], y[3:])
        v = y[3:]
        if accel:
            a = a + accel * v / np.linalg.norm(v)
        return np.concatenate([v, a])

    sol = solve_ivp(rhs, (0.0, T), x0, method="DOP853", rtol=1e-13, atol=1e-9)
    return sol.y[:, -1]


@pytest.mark.parametrize("T", [1.0, 10.0, 60.0, -30.0])
def test_ballistic_propagate_matches_solve_ivp(T):
    x0 = _state()
    err = models.ballistic_propagate(x0, T) - _reference(x0, T)
    # RK4 with <= 10 s substeps: millimetres in position, micrometres/s in velocity
    assert np.max(np.abs(err[:3])) < 5e-3 * max(1.0, abs(T) / 10.0)
    assert np.max(np.abs(err[3:])) < 5e-5 * max(1.0, abs(T) / 10.0)


def test_thrust_propagate_matches_solve_ivp():
    x0 = _state(alt=30e3, v_east=800.0, v_up=1500.0)
    ref = _reference(x0, 20.0, accel=30.0)
    err = models.thrust_propagate(x0, 20.0, 30.0) - ref
    assert np.max(np.abs(err[:3])) < 0.1 and np.max(np.abs(err[3:])) < 1e-2
    # fourth order: 10x smaller substeps, ~1e4 x smaller error
    fine = models.thrust_propagate(x0, 20.0, 30.0, max_step_s=1.0) - ref
    assert np.max(np.abs(fine[:3])) < 1e-3 * np.max(np.abs(err[:3]))


def test_retrodiction_inverts_prediction_and_per_element_dt():
    x0 = np.stack([_state(), _state(35.0, 130.0, 100e3, 1000.0, -500.0)])
    dt = np.array([25.0, -7.0])
    x1 = models.ballistic_propagate(x0, dt)
    back = models.ballistic_propagate(x1, -dt)
    np.testing.assert_allclose(back, x0, rtol=0, atol=1e-4)
    # per-element dt equals element-by-element calls (same substep count when dt is equal)
    np.testing.assert_allclose(x1[1], models.ballistic_propagate(x0[1], -7.0, max_step_s=7.0 / 3.0), atol=1e-8)
    # leading shape (trials, tracks, 6)
    x3 = np.broadcast_to(x0, (3, 2, 6))
    assert models.ballistic_propagate(x3, 5.0).shape == (3, 2, 6)


def _fd_jacobian(fun, x, eps):
    J = np.zeros((6, 6))
    for j in range(6):
        d = np.zeros(6)
        d[j] = eps[j]
        J[:, j] = (fun(x + d) - fun(x - d)) / (2.0 * eps[j])
    return J


@pytest.mark.parametrize("jacobian", ["magnus", "variational"])
@pytest.mark.parametrize("dt", [1.0, 10.0, 45.0, -20.0])
def test_ballistic_jacobian_matches_finite_differences(dt, jacobian):
    x = _state()
    _, F = models.ballistic_transition(x, dt, jacobian=jacobian)
    J = _fd_jacobian(lambda s: models.ballistic_propagate(s, dt), x, np.array([10.0] * 3 + [0.1] * 3))
    np.testing.assert_allclose(F, J, rtol=0, atol=1e-7 * max(1.0, abs(dt)))
    # the dynamics matter: F differs from the straight-line transition by the gravity gradient
    F_cv = np.eye(6)
    F_cv[:3, 3:] = dt * np.eye(3)
    assert np.max(np.abs(F - F_cv)) > 1e-7 * dt**2


def test_thrust_jacobian_matches_finite_differences():
    x = _state(alt=50e3, v_east=1000.0, v_up=2000.0)
    _, F = models.thrust_transition(x, 5.0, 35.0)
    J = _fd_jacobian(lambda s: models.thrust_propagate(s, 5.0, 35.0), x, np.array([10.0] * 3 + [0.1] * 3))
    np.testing.assert_allclose(F, J, rtol=0, atol=1e-7)
    _, F_b = models.ballistic_transition(x, 5.0)
    assert np.max(np.abs(F - F_b)) > 1e-3  # the thrust term turns velocity errors



def test_thrust_direction_floor_bounds_the_cross_velocity_gain():
    """min_direction_speed: same mean; F exact above the floor; below it the thrust term's cross gain is a dt/v_min.

    Over one short step the thrust direction turns a cross-track velocity error
    dv by a dt dv/|v| (the derivative of a v/|v|), so the cross-velocity element of
    F is 1 + a dt / |v| to first order, 1 + a dt / max(|v|, v_min) with the floor.
    """
    a, dt, v_min = 50.0, 0.5, 1000.0
    fast = _state(alt=50e3, v_east=1500.0, v_up=2000.0)  # 2.5 km/s: above the floor
    x_exact, F_exact = models.thrust_transition(fast, dt, a)
    x_floor, F_floor = models.thrust_transition(fast, dt, a, min_direction_speed=v_min)
    np.testing.assert_array_equal(x_floor, x_exact)
    np.testing.assert_array_equal(F_floor, F_exact)
    slow = _state(alt=20e3, v_east=0.0, v_up=200.0)  # 200 m/s, straight up
    x_exact, F_exact = models.thrust_transition(slow, dt, a)
    x_floor, F_floor = models.thrust_transition(slow, dt, a, min_direction_speed=v_min)
    np.testing.assert_array_equal(x_floor, x_exact)
    lon = np.radians(128.0)  # _state's default longitude: its local east axis is across the (vertical) velocity
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    gain = lambda F: east @ F[3:, 3:] @ east  # noqa: E731
    _, F_ballistic = models.ballistic_transition(slow, dt)
    g0 = gain(F_ballistic)  # gravity and frame terms alone
    assert gain(F_exact) - g0 == pytest.approx(a * dt / 200.0, rel=0.05)
    assert gain(F_floor) - g0 == pytest.approx(a * dt / v_min, rel=0.05)

def test_transition_batched_equals_single():
    xs = np.stack([_state(), _state(30.0, 135.0, 200e3, 2000.0, 0.0)])
    xp, F = models.ballistic_transition(xs, 8.0)
    for i in range(2):
        xi, Fi = models.ballistic_transition(xs[i], 8.0)
        np.testing.assert_allclose(xp[i], xi, rtol=1e-15)
        np.testing.assert_allclose(F[i], Fi, rtol=1e-13, atol=1e-16)


def test_process_noise_matches_filterpy_and_retrodiction_sign():
    for dt in (0.5, 5.0):
        ref = Q_continuous_white_noise(dim=2, dt=dt, spectral_density=3.0, block_size=3, order_by_dim=False)
        np.testing.assert_allclose(models.process_noise(dt, 3.0), ref, rtol=1e-15)
    Qb = models.process_noise(np.array([2.0, -2.0]), 1.0)
    assert Qb.shape == (2, 6, 6)
    np.testing.assert_allclose(Qb[1, :3, 3:], -Qb[0, :3, 3:])
    np.testing.assert_allclose(Qb[1, :3, :3], Qb[0, :3, :3])
    assert np.linalg.eigvalsh(Qb).min() > 0
    with pytest.raises(InputError):
        models.process_noise(1.0, -1.0)


def test_radar_jacobian_matches_finite_differences_and_residual_wraps():
    site = Site(np.radians(36.0), np.radians(129.0), 100.0)
    x = _state(38.0, 131.0, 250e3)
    H = models.radar_H(x, site.ecef, site.R_enu)
    J = np.zeros((3, 6))
    for j in range(3):
        d = np.zeros(6)
        d[j] = 1.0
        dz = models.radar_residual(models.radar_hx(x + d, site.ecef, site.R_enu), models.radar_hx(x - d, site.ecef, site.R_enu))
        J[:, j] = dz / 2.0
    np.testing.assert_allclose(H, J, rtol=1e-6, atol=1e-14)
    y = models.radar_residual(np.array([1e5, np.radians(1.0), 0.1]), np.array([1e5, np.radians(359.0), 0.1]))
    assert np.degrees(y[1]) == pytest.approx(2.0)
    y = models.radar_residual(np.array([1e5, np.radians(359.0), 0.1]), np.array([1e5, np.radians(1.0), 0.1]))
    assert np.degrees(y[1]) == pytest.approx(-2.0)
    assert models.radar_residual(np.array([0.0, np.pi, 0.0]), np.zeros(3))[1] == pytest.approx(np.pi)


def test_bad_state_shape_raises():
    with pytest.raises(InputError):
        models.ballistic_propagate(np.zeros(5), 1.0)
    with pytest.raises(InputError):
        models.ballistic_propagate(np.zeros(6) + 7e6, np.nan)


@pytest.mark.parametrize("h", [0.5, 5.0, 10.0, -10.0])
def test_closed_form_substep_exponential_matches_scipy_expm(h):
    from scipy.linalg import expm

    from sim.earth import EARTH_ROTATION_RATE as w
    from sim.gravity import gravity_j2_gradient

    x = _state(20.0, 140.0, 900e3)
    A = np.zeros((6, 6))
    A[:3, 3:] = np.eye(3)
    A[3:, :3] = gravity_j2_gradient(x[:3]) + np.diag([w * w, w * w, 0.0])
    A[3, 4], A[4, 3] = 2 * w, -2 * w
    np.testing.assert_allclose(models._ballistic_expm(x, np.array([h])), expm(A * h), rtol=0, atol=1e-8)
