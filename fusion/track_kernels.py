"""Per-track filter kernels of the compiled tracker (numba): radar model, EKF, IMM and UKF predict/update.

A track's filter state is held in mode arrays, so one code path serves every
filter: ``xm`` (r, 6) mode-conditioned ECEF states (m, m/s), ``Pm`` (r, 6, 6)
covariances and ``mu`` (r,) mode probabilities, with ``r = 1`` for the EKF and
UKF (``mu = [1]``) and ``r = 2`` for the IMM (mode 0 thrusting, mode 1
ballistic with drag). Filter kinds: :data:`EKF`, :data:`UKF`, :data:`IMM`.

The equations are those of the batched reference kernels, written for one
track with the textbook names (x, P, F, Q, H, R, S, K, y):

* EKF predict :math:`P = F P F^T + Q` and Joseph-form update
  :math:`P^+ = (I-KH)P(I-KH)^T + KRK^T` (Bar-Shalom, Li & Kirubarajan 2001,
  eq. 5.2.3-18; :func:`fusion.kalman.predict`, :func:`fusion.kalman.update_with_gain`);
* iterated first update after one-point initiation (Bar-Shalom et al. 2001,
  eq. 10.5.2-5; :func:`fusion.tracker.iterated_linearization`);
* IMM mixing, mode-matched prediction, mode-probability update and
  combination (Bar-Shalom et al. 2001, sec. 11.6.6; :mod:`fusion.imm`);
* UKF with Merwe scaled sigma points (Wan & van der Merwe 2000; :mod:`fusion.ukf`);
* the PDA mixture of hypotheses (Blom & Bloem 2000; :func:`fusion.tracker._pda_merge`).

The tests compare them with filterpy and with the batched kernels
(tests/test_compiled_kernels.py).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fusion import kernel_cache  # noqa: F401  (first: drops stale cached machine code)

from fusion import motion_kernels as mk
from fusion.ukf import ALPHA, BETA, KAPPA

EKF = 0
UKF = 1
IMM = 2

_TWO_PI = 2.0 * np.pi
_LOG_2PI = math.log(2.0 * math.pi)
IEKF_ITERATIONS = 4  # as fusion.tracker.IEKF_ITERATIONS
MU_MIN = 1e-12  # floor of an IMM mode probability (fusion.tracker.IMM_MU_MIN)
MU_DORMANT = 1e-6  # thrust-mode probability below which the mode is dormant (fusion.tracker.IMM_MU_DORMANT)

# Merwe sigma-point weights for n = 6 (fusion.ukf.merwe_weights)
_N = 6
_LAMBDA = ALPHA**2 * (_N + KAPPA) - _N
_WM = np.full(2 * _N + 1, 0.5 / (_N + _LAMBDA))
_WC = np.full(2 * _N + 1, 0.5 / (_N + _LAMBDA))
_WM[0] = _LAMBDA / (_N + _LAMBDA)
_WC[0] = _LAMBDA / (_N + _LAMBDA) + (1.0 - ALPHA**2 + BETA)


# ------------------------------------------------------------------------------------------------
# Linear algebra of small symmetric matrices
# ------------------------------------------------------------------------------------------------


@njit(cache=True)
def symmetrize(P):
    """:math:`P \\leftarrow (P + P^T)/2` in place."""
    n = P.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            s = 0.5 * (P[i, j] + P[j, i])
            P[i, j] = s
            P[j, i] = s


@njit(cache=True)
def inv3_spd(S, S_inv):
    """Inverse of a symmetric 3x3 matrix by cofactors, with Sylvester's positive-definiteness test.

    Returns ``(ok, log det S)``; ``S_inv`` is the identity where not ok
    (:func:`fusion.kalman.inv_spd`, :func:`fusion.kalman.log_det_spd`).
    """
    a, b, c = S[0, 0], S[0, 1], S[0, 2]
    d, e, f = S[1, 1], S[1, 2], S[2, 2]
    A00 = d * f - e * e
    A01 = c * e - b * f
    A02 = b * e - c * d
    A11 = a * f - c * c
    A12 = b * c - a * e
    A22 = a * d - b * b
    det = a * A00 + b * A01 + c * A02
    ok = (a > 0.0) and (A22 > 0.0) and (det > 0.0) and math.isfinite(det)
    if not ok:
        S_inv[:, :] = np.eye(3)
        return False, math.nan
    inv_det = 1.0 / det
    S_inv[0, 0] = A00 * inv_det
    S_inv[0, 1] = S_inv[1, 0] = A01 * inv_det
    S_inv[0, 2] = S_inv[2, 0] = A02 * inv_det
    S_inv[1, 1] = A11 * inv_det
    S_inv[1, 2] = S_inv[2, 1] = A12 * inv_det
    S_inv[2, 2] = A22 * inv_det
    return True, math.log(det)


@njit(cache=True)
def cholesky_lower(A, L):
    """Lower Cholesky factor :math:`LL^T = A` (Cholesky-Banachiewicz, Golub & Van Loan 2013, alg. 4.2.1).

    Returns False (and ``L`` the identity) when ``A`` is not positive definite
    or not finite, as :func:`fusion.kalman.cholesky_spd`.
    """
    n = A.shape[0]
    L[:, :] = 0.0
    for i in range(n):
        for j in range(i + 1):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                if not (s > 0.0) or not math.isfinite(s):
                    L[:, :] = np.eye(n)
                    return False
                L[i, i] = math.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
    return True


# ------------------------------------------------------------------------------------------------
# Radar measurement model
# ------------------------------------------------------------------------------------------------


@njit(cache=True)
def wrap_angle(a):
    """Angle (rad) wrapped to (-pi, pi] (:func:`sensors.geometry.wrap_angle`)."""
    w = np.mod(a + np.pi, _TWO_PI) - np.pi
    return np.pi if w == -np.pi else w


@njit(cache=True)
def radar_hx(x, site, R_enu, hx):
    """AER measurement ``[range m, azimuth rad in [0, 2pi), elevation rad]`` of state ``x`` into ``hx`` (3,).

    ENU offset :math:`R_{enu}(r - r_{site})`, then range, azimuth clockwise from
    north, elevation (:func:`sensors.geometry.measure`).
    """
    d0, d1, d2 = x[0] - site[0], x[1] - site[1], x[2] - site[2]
    e = R_enu[0, 0] * d0 + R_enu[0, 1] * d1 + R_enu[0, 2] * d2
    n = R_enu[1, 0] * d0 + R_enu[1, 1] * d1 + R_enu[1, 2] * d2
    u = R_enu[2, 0] * d0 + R_enu[2, 1] * d1 + R_enu[2, 2] * d2
    horiz = math.hypot(e, n)
    hx[0] = math.sqrt(horiz * horiz + u * u)
    hx[1] = np.mod(math.atan2(e, n), _TWO_PI)
    hx[2] = math.atan2(u, horiz)


@njit(cache=True)
def radar_H(x, site, R_enu, H):
    """Jacobian ``H`` (3, 6) of :func:`radar_hx` (Bar-Shalom et al. 2001, sec. 10.4; :func:`sensors.geometry.measurement_jacobian`).

    :math:`\\partial\\rho/\\partial\\mathbf e = \\mathbf e/\\rho`,
    :math:`\\partial a/\\partial(e,n,u) = (n,-e,0)/s^2`,
    :math:`\\partial\\epsilon/\\partial(e,n,u) = (-ue,-un,s^2)/(\\rho^2 s)`, times :math:`R_{enu}`.
    Singular at the zenith (s = 0): all NaN there, so the pair is invalid and the track keeps its prior.
    """
    d0, d1, d2 = x[0] - site[0], x[1] - site[1], x[2] - site[2]
    e = R_enu[0, 0] * d0 + R_enu[0, 1] * d1 + R_enu[0, 2] * d2
    n = R_enu[1, 0] * d0 + R_enu[1, 1] * d1 + R_enu[1, 2] * d2
    u = R_enu[2, 0] * d0 + R_enu[2, 1] * d1 + R_enu[2, 2] * d2
    s2 = e * e + n * n
    if s2 == 0.0:  # exactly overhead: azimuth undefined; NaN makes the pair invalid (no update), as batched
        H[:, :] = np.nan
        return
    s = math.sqrt(s2)
    rho2 = s2 + u * u
    rho = math.sqrt(rho2)
    den = rho2 * s
    J = np.empty((3, 3))
    J[0, 0], J[0, 1], J[0, 2] = e / rho, n / rho, u / rho
    J[1, 0], J[1, 1], J[1, 2] = n / s2, -e / s2, 0.0
    J[2, 0], J[2, 1], J[2, 2] = -u * e / den, -u * n / den, s / rho2
    H[:, :] = 0.0
    H[:, 0:3] = J @ R_enu


@njit(cache=True)
def radar_residual(z, hx, y):
    """Innovation ``y = z - hx`` (3,) with azimuth wrapped to (-pi, pi] (:func:`sensors.geometry.measurement_residual`)."""
    y[0] = z[0] - hx[0]
    y[1] = wrap_angle(z[1] - hx[1])
    y[2] = z[2] - hx[2]


# ------------------------------------------------------------------------------------------------
# Initiation
# ------------------------------------------------------------------------------------------------


@njit(cache=True)
def initial_state(z, R, site, R_enu, max_speed, x0, P0):
    """One-point initiation: converted position and a speed-bounded velocity prior (:func:`fusion.tracker.initial_state`).

    :math:`r = r_{site} + R_{enu}^T\\rho(\\cos\\epsilon\\sin a, \\cos\\epsilon\\cos a, \\sin\\epsilon)`,
    :math:`P_{rr} = JRJ^T` (Bar-Shalom et al. 2001, sec. 10.4.3), velocity zero with
    :math:`(v_{max}^2/3) I` (Blackman & Popoli 1999, sec. 3.5).
    """
    rho, a, el = z[0], z[1], z[2]
    sa, ca, se, ce = math.sin(a), math.cos(a), math.sin(el), math.cos(el)
    enu = np.array([rho * ce * sa, rho * ce * ca, rho * se])
    J = np.empty((3, 3))
    J[0, 0], J[0, 1], J[0, 2] = ce * sa, rho * ce * ca, -rho * se * sa
    J[1, 0], J[1, 1], J[1, 2] = ce * ca, -rho * ce * sa, -rho * se * ca
    J[2, 0], J[2, 1], J[2, 2] = se, 0.0, rho * ce
    RT = np.ascontiguousarray(R_enu.T)
    r = site + RT @ enu
    Jx = RT @ J
    Pr = Jx @ R @ Jx.T
    x0[:] = 0.0
    P0[:, :] = 0.0
    for i in range(3):
        x0[i] = r[i]
        for j in range(3):
            P0[i, j] = 0.5 * (Pr[i, j] + Pr[j, i])
    v2 = max_speed * max_speed / 3.0
    for i in range(3, 6):
        P0[i, i] = v2


# ------------------------------------------------------------------------------------------------
# Prediction
# ------------------------------------------------------------------------------------------------


@njit(cache=True)
def ekf_predict(x, P, dt, q, x_out, P_out):
    """EKF prediction on the drag-ballistic model: :math:`x = f(x)`, :math:`P = FPF^T + Q`.

    :math:`Q` is the white-noise acceleration of PSD ``q`` plus the
    ballistic-coefficient noise (:func:`fusion.motion_kernels.add_drag_process_noise`);
    Bar-Shalom et al. 2001, eq. 5.2.3-5 and sec. 10.3.2.
    """
    F = np.empty((6, 6))
    x1 = np.empty(6)
    mk.drag_transition(x, dt, np.bool_(True), x1, F)
    Q = np.zeros((6, 6))
    mk.add_process_noise(dt, q, Q)
    mk.add_drag_process_noise(x, x1, dt, Q)
    P_out[:, :] = F @ P @ F.T + Q
    symmetrize(P_out)
    x_out[:] = x1


@njit(cache=True)
def imm_markov(dt, boost_dwell, ballistic_dwell):
    """Markov matrix (2, 2) over ``dt`` with exponential dwell in each mode (:meth:`fusion.tracker._IMM._M`)."""
    a = abs(dt)
    p_tb = -math.expm1(-a / boost_dwell)
    p_bt = -math.expm1(-a / ballistic_dwell)
    M = np.empty((2, 2))
    M[0, 0], M[0, 1] = 1.0 - p_tb, p_tb
    M[1, 0], M[1, 1] = p_bt, 1.0 - p_bt
    return M


@njit(cache=True)
def imm_mix(xm, Pm, mu, M, x0, P0, cbar):
    """IMM interaction: :math:`\\bar c_j = \\sum_i M_{ij}\\mu_i`, :math:`\\mu_{i|j} = M_{ij}\\mu_i/\\bar c_j`,
    mixed :math:`x^{0j}`, :math:`P^{0j}` (Bar-Shalom et al. 2001, eq. 11.6.6-6 to 11.6.6-11)."""
    r = xm.shape[0]
    for j in range(r):
        c = 0.0
        for i in range(r):
            c += mu[i] * M[i, j]
        cbar[j] = c
    for j in range(r):
        x0[j, :] = 0.0
        for i in range(r):
            x0[j, :] += (M[i, j] * mu[i] / cbar[j]) * xm[i]
        P0[j, :, :] = 0.0
        for i in range(r):
            w = M[i, j] * mu[i] / cbar[j]
            d = xm[i] - x0[j]
            for a in range(6):
                for b in range(6):
                    P0[j, a, b] += w * (Pm[i, a, b] + d[a] * d[b])
        symmetrize(P0[j])


@njit(cache=True)
def combine(xm, Pm, mu, x, P):
    """Moment-matched combination :math:`x = \\sum_j\\mu_j x^j`, :math:`P = \\sum_j\\mu_j(P^j + \\delta\\delta^T)`
    (Bar-Shalom et al. 2001, eq. 11.6.6-16, 11.6.6-17); the state itself for one mode."""
    r = xm.shape[0]
    if r == 1:
        x[:] = xm[0]
        P[:, :] = Pm[0]
        return
    x[:] = 0.0
    for j in range(r):
        x += mu[j] * xm[j]
    P[:, :] = 0.0
    for j in range(r):
        d = xm[j] - x
        for a in range(6):
            for b in range(6):
                P[a, b] += mu[j] * (Pm[j, a, b] + d[a] * d[b])
    symmetrize(P)


@njit(cache=True)
def ukf_sigma_points(x, P, sig):
    """Merwe scaled sigma points ``sig`` (13, 6) in filterpy's order; False if P is not positive definite."""
    L = np.empty((6, 6))
    ok = cholesky_lower((_N + _LAMBDA) * P, L)
    sig[0] = x
    for i in range(6):
        for k in range(6):
            sig[1 + i, k] = x[k] + L[k, i]
            sig[7 + i, k] = x[k] - L[k, i]
    return ok


@njit(cache=True)
def ukf_predict(x, P, dt, q, x_out, P_out):
    """Unscented prediction through the drag-ballistic propagator (:func:`fusion.ukf.ukf_predict`).

    :math:`\\bar x = \\sum W^m_i f(\\chi_i)`, :math:`P = \\sum W^c_i (f(\\chi_i)-\\bar x)(\\cdot)^T + Q`
    (Julier & Uhlmann 2004, eq. 12-13), Q as :func:`ekf_predict` with the
    drag noise between ``x`` and its propagated mean.
    """
    sig = np.empty((13, 6))
    ukf_sigma_points(x, P, sig)
    F = np.empty((6, 6))
    sf = np.empty((13, 6))
    tmp = np.empty(6)
    for i in range(13):
        mk.drag_transition(sig[i], dt, np.bool_(False), tmp, F)
        sf[i] = tmp
    x1 = np.empty(6)
    mk.drag_transition(x, dt, np.bool_(False), x1, F)
    Q = np.zeros((6, 6))
    mk.add_process_noise(dt, q, Q)
    mk.add_drag_process_noise(x, x1, dt, Q)
    m = np.zeros(6)
    for i in range(13):
        m += _WM[i] * sf[i]
    C = Q.copy()
    for i in range(13):
        d = sf[i] - m
        for a in range(6):
            for b in range(6):
                C[a, b] += _WC[i] * d[a] * d[b]
    symmetrize(C)
    x_out[:] = m
    P_out[:, :] = C


@njit(cache=True)
def predict_track(kind, xm, Pm, mu, dt, q, q_thrust, thrust_accel, v_floor, boost_dwell, ballistic_dwell):
    """Predict one track's filter state by ``dt`` seconds, in place.

    EKF/UKF: :func:`ekf_predict` / :func:`ukf_predict`. IMM: :func:`imm_mix`
    with :func:`imm_markov`, then mode 0 by the thrusting model
    (:func:`fusion.motion_kernels.thrust_transition`, PSD ``q_thrust``) and mode 1
    by the drag-ballistic EKF prediction; ``mu`` becomes :math:`\\bar c`.

    A thrust mode whose predicted probability :math:`\\bar c_0` is below
    :data:`MU_DORMANT` is dormant: it takes the ballistic mode's prediction
    instead of its own. Kept on its own, a ruled-out thrust mode of a coasting
    track runs on under 50 m/s^2 for as long as the coast lasts (1,000 km off
    after 200 s) and its tiny share, through the moment-matched combination
    and the mixing, inflated the ballistic track's covariance: measured on the
    Hwasong-15 scenario (US isolated, trial 0), the velocity sigma of a coasting
    RV track grew from 0.22 to 6.6 m/s in 1,200 s while its error stayed at
    0.07 m/s (NEES 0.1 against 6). Dormancy is mode-set pruning (Li & Jilkov,
    "Survey of maneuvering target tracking, Part V: multiple-model methods",
    IEEE Trans. AES 41(4), 2005, sec. VI); a body that has burnt out never
    thrusts again in this simulator's truth (no post-boost vehicle), and the
    mode probability itself is kept, so the IMM's bookkeeping is unchanged.
    """
    if kind == EKF:
        ekf_predict(xm[0].copy(), Pm[0].copy(), dt, q, xm[0], Pm[0])
    elif kind == UKF:
        ukf_predict(xm[0].copy(), Pm[0].copy(), dt, q, xm[0], Pm[0])
    else:
        M = imm_markov(dt, boost_dwell, ballistic_dwell)
        x0 = np.empty((2, 6))
        P0 = np.empty((2, 6, 6))
        cbar = np.empty(2)
        imm_mix(xm, Pm, mu, M, x0, P0, cbar)
        ekf_predict(x0[1], P0[1], dt, q, xm[1], Pm[1])
        if cbar[0] < MU_DORMANT:
            # dormant thrust mode: carried as a copy of the ballistic mode (see the docstring)
            xm[0] = xm[1]
            Pm[0] = Pm[1]
        else:
            F = np.empty((6, 6))
            x1 = np.empty(6)
            mk.thrust_transition(x0[0], dt, thrust_accel, v_floor, x1, F)
            Q = np.zeros((6, 6))
            mk.add_process_noise(dt, q_thrust, Q)
            Pm[0] = F @ P0[0] @ F.T + Q
            symmetrize(Pm[0])
            xm[0] = x1
        mu[:] = cbar


# ------------------------------------------------------------------------------------------------
# Update
# ------------------------------------------------------------------------------------------------


@njit(cache=True)
def iterated_linearization(x, P, z, R, site, R_enu, hx_eff, H):
    """Linearisation point of the iterated EKF update as an effective ``(hx, H)`` pair.

    Gauss-Newton :math:`x_{i+1} = x + K_i(z - h(x_i) - H_i(x - x_i))`
    (Bar-Shalom et al. 2001, eq. 10.5.2-5; :func:`fusion.tracker.iterated_linearization`),
    :data:`IEKF_ITERATIONS` steps; returns :math:`h(x_i) + H_i(x - x_i)` and :math:`H_i`.
    """
    xi = x.copy()
    hx = np.empty(3)
    y = np.empty(3)
    S_inv = np.empty((3, 3))
    for _ in range(IEKF_ITERATIONS):
        radar_hx(xi, site, R_enu, hx)
        radar_H(xi, site, R_enu, H)
        he = hx + H @ (x - xi)
        radar_residual(z, he, y)
        S = H @ P @ H.T + R
        symmetrize(S)
        ok, _ = inv3_spd(S, S_inv)
        if ok:
            xi = x + P @ H.T @ S_inv @ y
    radar_hx(xi, site, R_enu, hx)
    radar_H(xi, site, R_enu, H)
    hx_eff[:] = hx + H @ (x - xi)


@njit(cache=True)
def joseph_update(x, P, y, S_inv, H, R, x_out, P_out):
    """EKF update with gain :math:`K = PH^TS^{-1}`: :math:`x + Ky`, Joseph :math:`(I-KH)P(I-KH)^T + KRK^T`.

    Bar-Shalom et al. 2001, eq. 5.2.3-11, 5.2.3-12, 5.2.3-18 (:func:`fusion.kalman.update_with_gain`).
    """
    K = P @ H.T @ S_inv
    x_out[:] = x + K @ y
    I_KH = np.eye(6) - K @ H
    P_out[:, :] = I_KH @ P @ I_KH.T + K @ R @ K.T
    symmetrize(P_out)


@njit(cache=True)
def ekf_pair(x, P, z, R, site, R_enu, first, y, S, S_inv, H):
    """Innovation ``y``, ``S``, ``S^{-1}``, ``H`` of a track state and a detection; returns ``(ok, d2, log|S|)``.

    With ``first`` the linearisation is the iterated one (:func:`iterated_linearization`).
    """
    hx = np.empty(3)
    if first:
        iterated_linearization(x, P, z, R, site, R_enu, hx, H)
    else:
        radar_hx(x, site, R_enu, hx)
        radar_H(x, site, R_enu, H)
    radar_residual(z, hx, y)
    S[:, :] = H @ P @ H.T + R
    symmetrize(S)
    ok, ld = inv3_spd(S, S_inv)
    if not (math.isfinite(hx[0]) and math.isfinite(hx[1]) and math.isfinite(hx[2])):
        ok = False
    if not ok:
        return False, np.inf, math.nan
    d2 = y @ S_inv @ y
    return True, d2, ld


@njit(cache=True)
def ukf_pair(x, P, z, R, site, R_enu, x_out, P_out):
    """Unscented update of a track by a detection into ``x_out``, ``P_out``; returns ``(ok, d2, log|S|)``.

    :math:`S = \\sum W^c_i \\delta z_i\\delta z_i^T + R`, :math:`P_{xz} = \\sum W^c_i(\\chi_i - x)\\delta z_i^T`,
    :math:`K = P_{xz}S^{-1}`, :math:`x + Ky`, :math:`P - KSK^T`, azimuth mean circular
    (Wan & van der Merwe 2000, alg. 3.1; :func:`fusion.ukf.ukf_update`).
    """
    sig = np.empty((13, 6))
    ok_sig = ukf_sigma_points(x, P, sig)
    sz = np.empty((13, 3))
    hx = np.empty(3)
    for i in range(13):
        radar_hx(sig[i], site, R_enu, hx)
        sz[i] = hx
    zp = np.zeros(3)
    sn = 0.0
    cs = 0.0
    for i in range(13):
        zp[0] += _WM[i] * sz[i, 0]
        zp[2] += _WM[i] * sz[i, 2]
        sn += math.sin(sz[i, 1]) * _WM[i]
        cs += math.cos(sz[i, 1]) * _WM[i]
    zp[1] = np.mod(math.atan2(sn, cs), _TWO_PI)
    S = R.copy()
    Pxz = np.zeros((6, 3))
    dz = np.empty(3)
    for i in range(13):
        radar_residual(sz[i], zp, dz)
        for a in range(3):
            for b in range(3):
                S[a, b] += _WC[i] * dz[a] * dz[b]
        for a in range(6):
            for b in range(3):
                Pxz[a, b] += _WC[i] * (sig[i, a] - x[a]) * dz[b]
    symmetrize(S)
    S_inv = np.empty((3, 3))
    ok, ld = inv3_spd(S, S_inv)
    ok = ok and ok_sig and math.isfinite(zp[0]) and math.isfinite(zp[1]) and math.isfinite(zp[2])
    if not ok:
        x_out[:] = x
        P_out[:, :] = P
        return False, np.inf, math.nan
    y = np.empty(3)
    radar_residual(z, zp, y)
    K = Pxz @ S_inv
    x_out[:] = x + K @ y
    P_out[:, :] = P - K @ S @ K.T
    symmetrize(P_out)
    return True, y @ S_inv @ y, ld


@njit(cache=True)
def pair_stats(kind, xm, Pm, mu, z, R, site, R_enu):
    """Gate statistic of a (track, detection) pair: ``(ok, d2, cost, ld)``.

    ``cost`` is :math:`d^2 + \\ln|S|` (EKF, UKF) or :math:`-2\\ln\\sum_j\\mu_j\\mathcal N(y_j; 0, S_j)`
    (IMM); ``d2`` the (smallest mode's) squared Mahalanobis distance; ``ld`` the
    mode-probability-weighted :math:`\\ln|S|` (for the JPDA gate volume).
    As :meth:`fusion.tracker._EKF.pair_stats` and :meth:`fusion.tracker._IMM.pair_stats`.
    """
    y = np.empty(3)
    S = np.empty((3, 3))
    S_inv = np.empty((3, 3))
    H = np.empty((3, 6))
    if kind == EKF:
        ok, d2, ld = ekf_pair(xm[0], Pm[0], z, R, site, R_enu, np.bool_(False), y, S, S_inv, H)
        if not ok:
            return False, np.inf, np.inf, 0.0
        return True, d2, d2 + ld, ld
    if kind == UKF:
        xo = np.empty(6)
        Po = np.empty((6, 6))
        ok, d2, ld = ukf_pair(xm[0], Pm[0], z, R, site, R_enu, xo, Po)
        if not ok:
            return False, np.inf, np.inf, 0.0
        return True, d2, d2 + ld, ld
    r = xm.shape[0]
    top = -np.inf
    logl = np.empty(r)
    d2min = np.inf
    ldw = 0.0
    any_ok = False
    for j in range(r):
        ok, d2, ld = ekf_pair(xm[j], Pm[j], z, R, site, R_enu, np.bool_(False), y, S, S_inv, H)
        if ok:
            any_ok = True
            logl[j] = -0.5 * (d2 + ld + 3.0 * _LOG_2PI) + math.log(mu[j])
            ldw += mu[j] * ld
        else:
            logl[j] = -np.inf
        d2min = min(d2min, d2)
        top = max(top, logl[j])
    if not (any_ok and math.isfinite(top)):
        return False, d2min, np.inf, ldw
    s = 0.0
    for j in range(r):
        s += math.exp(logl[j] - top)
    return True, d2min, -2.0 * (top + math.log(s)), ldw


@njit(cache=True)
def update_track(kind, xm, Pm, mu, z, R, site, R_enu, first):
    """Update one track's filter state by a detection, in place (the pair was gated, so valid).

    EKF: Joseph update, the iterated linearisation on the ``first`` update after
    initiation. UKF: :func:`ukf_pair` (no iteration: the sigma points capture the
    curvature). IMM: mode-matched EKF updates, :math:`\\mu_j \\propto \\Lambda_j\\bar c_j`
    in the log domain, floored at :data:`MU_MIN` and renormalised
    (Bar-Shalom et al. 2001, eq. 11.6.6-12 to 11.6.6-15; :func:`fusion.imm.imm_update`).
    """
    y = np.empty(3)
    S = np.empty((3, 3))
    S_inv = np.empty((3, 3))
    H = np.empty((3, 6))
    if kind == UKF:
        ukf_pair(xm[0].copy(), Pm[0].copy(), z, R, site, R_enu, xm[0], Pm[0])
        return
    r = xm.shape[0]
    logw = np.empty(r)
    top = -np.inf
    for j in range(r):
        ok, d2, ld = ekf_pair(xm[j], Pm[j], z, R, site, R_enu, first, y, S, S_inv, H)
        if ok:
            joseph_update(xm[j].copy(), Pm[j].copy(), y, S_inv, H, R, xm[j], Pm[j])
            logw[j] = math.log(mu[j]) - 0.5 * (d2 + ld + 3.0 * _LOG_2PI)
        else:
            logw[j] = -np.inf
        top = max(top, logw[j])
    if kind == EKF or not math.isfinite(top):
        return
    s = 0.0
    for j in range(r):
        logw[j] = math.exp(logw[j] - top)
        s += logw[j]
    t = 0.0
    for j in range(r):
        mu[j] = max(logw[j] / s, MU_MIN)
        t += mu[j]
    for j in range(r):
        mu[j] /= t


@njit(cache=True)
def pda_merge(kind, x0, P0, mu0, beta0, xk, Pk, muk, beta, n, xm, Pm, mu):
    """Moment-matched mixture of a track's hypotheses (no detection, detection k), crossed with its modes.

    :math:`\\mu_i = \\sum_k\\beta_k\\mu^k_i`, :math:`\\hat x_i = \\sum_k\\beta_k\\mu^k_i\\hat x^k_i/\\mu_i`,
    :math:`P_i = \\sum_k\\beta_k\\mu^k_i(P^k_i + \\delta\\delta^T)/\\mu_i`
    (Bar-Shalom, Daum & Huang 2009, eq. 44-46; Blom & Bloem 2000, sec. II;
    :func:`fusion.tracker._pda_merge`). Hypothesis 0 is ``(x0, P0, mu0)`` with
    weight ``beta0``; ``n`` detection hypotheses ``xk[k], Pk[k], muk[k]`` with ``beta[k]``.
    """
    r = x0.shape[0]
    for i in range(r):
        w0 = beta0 * mu0[i]
        m = w0
        for k in range(n):
            m += beta[k] * muk[k, i]
        safe = max(m, 1e-300)
        x = w0 * x0[i]
        for k in range(n):
            x = x + (beta[k] * muk[k, i]) * xk[k, i]
        x = x / safe
        P = np.zeros((6, 6))
        d = x0[i] - x
        for a in range(6):
            for b in range(6):
                P[a, b] = w0 * (P0[i, a, b] + d[a] * d[b])
        for k in range(n):
            w = beta[k] * muk[k, i]
            d = xk[k, i] - x
            for a in range(6):
                for b in range(6):
                    P[a, b] += w * (Pk[k, i, a, b] + d[a] * d[b])
        P /= safe
        symmetrize(P)
        xm[i] = x
        Pm[i] = P
        mu[i] = m
    if kind == IMM:
        t = 0.0
        for i in range(r):
            mu[i] = max(mu[i], MU_MIN)
            t += mu[i]
        for i in range(r):
            mu[i] /= t
    else:
        mu[0] = 1.0
