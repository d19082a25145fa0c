"""Per-track motion kernels of the compiled tracker (numba): J2 gravity, drag, thrust, RK4 with Jacobians.

Every function here takes ONE state ``x`` of shape ``(6,)`` (ECEF m, m/s relative
to the rotating Earth) and works on scalars and small fixed arrays, so the
compiled tracker loop (:mod:`fusion.loop`) calls them per track without numpy
call overhead. They are the same models, the same substep rules and the same
Jacobian schemes as the batched reference kernels:

* ballistic (drag-free) motion: :func:`fusion.models.ballistic_transition`
  (RK4, substeps of at most :data:`fusion.models.MAX_STEP_S`, Magnus midpoint
  exponential for :math:`F`);
* thrusting motion: :func:`fusion.models.thrust_transition` (variational
  equation with the RK4 stages, floored thrust-direction Jacobian);
* drag: :func:`fusion.drag.drag_transition` (drag with the nominal ballistic
  coefficient inside the atmosphere, variational equation; drag-free model
  outside, by :func:`fusion.drag.in_atmosphere`; substeps by
  :func:`fusion.drag.substeps_needed`);
* process noise: :func:`fusion.models.process_noise` and
  :func:`fusion.drag.drag_process_noise`.

Since a state is propagated alone, its substep count is its own (the batched
kernels reach the same counts by grouping states by their own count, as
:func:`fusion.track_fusion.predict_reports` does).
Results agree with the batched kernels to rounding (tests/test_compiled_kernels.py).

References
----------
Vallado, *Fundamentals of Astrodynamics and Applications*, 4th ed., 2013, eq. 8-30 (J2);
Montenbruck & Gill, *Satellite Orbits*, 2000, sec. 7.1 (variational equations);
Iserles et al., "Lie-group methods", Acta Numerica 9, 2000, sec. 4 (Magnus midpoint);
Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to Tracking and Navigation*,
2001, eq. 6.2.2-12 and 6.3.2-4 (process noise).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fusion import kernel_cache  # noqa: F401  (first: drops stale cached machine code)

from fusion.drag import (
    BALLISTIC_COEFF_REL_SIGMA,
    DRAG_MAX_STEP_S,
    DRAG_NEGLIGIBLE,
    DRAG_STEP_HEIGHT,
    DRAG_STIFF,
    NOMINAL_BALLISTIC_COEFF,
)
from fusion.models import MAX_STEP_S
from sim import atmosphere as _atm
from sim.earth import EARTH_ROTATION_RATE, GM, J2, SEMI_MAJOR_AXIS
from sim.dynamics import _B as _SEMI_MINOR

_W = EARTH_ROTATION_RATE  # rad/s, WGS-84
_W2 = _W * _W
_K_J2 = 1.5 * J2 * GM * SEMI_MAJOR_AXIS**2  # m^5/s^2, as sim.gravity
_A = SEMI_MAJOR_AXIS
_KAPPA = 1.0 / NOMINAL_BALLISTIC_COEFF  # m^2/kg, nominal 1/beta (fusion.drag)
_DH = 50.0  # m, half-step of the central difference of d rho / dh (fusion.drag._DH)
_MIN_THRUST_SPEED = 1.0  # m/s, below this the thrust is radial (fusion.models._MIN_THRUST_SPEED)

# Density table of sim.atmosphere (cubic spline of ln rho), frozen into the compiled code.
_TAB_H = np.ascontiguousarray(_atm._H)
_TAB_C3 = np.ascontiguousarray(_atm._C3)
_TAB_C2 = np.ascontiguousarray(_atm._C2)
_TAB_C1 = np.ascontiguousarray(_atm._C1)
_TAB_C0 = np.ascontiguousarray(_atm._C0)
_TAB_N = int(_atm._N)
_INV_STEP = float(_atm._INV_STEP)
_CEILING = float(_atm.TABLE_CEILING)
_TOP = float(_atm.TOP_OF_ATMOSPHERE)
_SCALE_H = float(_atm._SCALE_HEIGHT)


@njit(cache=True)
def density(h):
    """Air density (kg/m^3) at height ``h`` (m): :func:`sim.atmosphere.density` for one height.

    ICAO 1993 table as a cubic spline of :math:`\\ln\\rho` (0-81 km), exponential
    above with the table-top scale height, zero above 120 km, sea level below 0.
    """
    if h > _TOP:
        return 0.0
    hc = min(max(h, 0.0), _CEILING)
    i = min(int(hc * _INV_STEP), _TAB_N - 2)
    w = hc - _TAB_H[i]
    ln_rho = ((_TAB_C3[i] * w + _TAB_C2[i]) * w + _TAB_C1[i]) * w + _TAB_C0[i]
    above = max(h - _CEILING, 0.0)
    return math.exp(ln_rho - above / _SCALE_H)


@njit(cache=True)
def height(x):
    """Height above the WGS-84 ellipsoid along the geocentric radius, m (:func:`sim.dynamics.height_fast`).

    :math:`h = |r| - ab/\\sqrt{b^2\\cos^2\\phi_c + a^2\\sin^2\\phi_c}`.
    """
    p2 = x[0] * x[0] + x[1] * x[1]
    z2 = x[2] * x[2]
    rn2 = p2 + z2
    R = _A * _SEMI_MINOR / math.sqrt((_SEMI_MINOR * _SEMI_MINOR * p2 + _A * _A * z2) / rn2)
    return math.sqrt(rn2) - R


@njit(cache=True)
def gravity_gradient(x, G):
    """J2 gravity gradient :math:`\\partial g/\\partial r` (1/s^2) at ``x[:3]`` into ``G`` (3, 3).

    Same regrouping as :func:`sim.gravity.gravity_j2_gradient_components`
    (differentiated from Vallado 2013, eq. 8-30).
    """
    px, py, pz = x[0], x[1], x[2]
    r2 = px * px + py * py + pz * pz
    inv_r2 = 1.0 / r2
    inv_r3 = math.sqrt(inv_r2) * inv_r2
    mu3 = GM * inv_r3
    k5 = inv_r3 * inv_r2 * _K_J2
    k7 = k5 * inv_r2
    zeta = pz * pz * inv_r2
    cxy = (1.0 - 7.0 * zeta) * (5.0 * k7) + 3.0 * mu3 * inv_r2
    dxy = (1.0 - 5.0 * zeta) * k5 + mu3
    cz = (3.0 - 7.0 * zeta) * (5.0 * k7) + 3.0 * mu3 * inv_r2
    zc = pz * cz
    G[0, 0] = px * cxy * px - dxy
    G[1, 1] = py * cxy * py - dxy
    G[0, 1] = G[1, 0] = px * cxy * py
    G[0, 2] = G[2, 0] = zc * px
    G[1, 2] = G[2, 1] = zc * py
    G[2, 2] = zc * pz - mu3 - (3.0 - 5.0 * zeta) * k5 + 10.0 * k7 * pz * pz


@njit(cache=True)
def ballistic_accel(x, a):
    """J2 gravity plus Coriolis and centrifugal acceleration (m/s^2) into ``a`` (3,).

    :math:`a_i = -x_i[\\mu/r^3 + k r^{-5}(c_i - 5z^2/r^2)] - 2\\omega\\times v - \\omega\\times(\\omega\\times r)`
    (Vallado 2013, eq. 8-30; :func:`sim.gravity.ballistic_acceleration`).
    """
    px, py, pz = x[0], x[1], x[2]
    r2 = px * px + py * py + pz * pz
    inv_r2 = 1.0 / r2
    inv_r3 = math.sqrt(inv_r2) * inv_r2
    s = 5.0 * pz * pz * inv_r2
    t = inv_r3 * inv_r2 * _K_J2
    point = GM * inv_r3
    cz = (3.0 - s) * t + point
    cxy = (1.0 - s) * t + point
    a[0] = -cxy * px + (2.0 * _W * x[4] + _W2 * px)
    a[1] = -cxy * py + (-2.0 * _W * x[3] + _W2 * py)
    a[2] = -cz * pz


@njit(cache=True)
def drag_accel_norm(x):
    """Magnitude of the nominal drag acceleration :math:`\\tfrac12\\kappa\\rho(h)|v|^2`, m/s^2 (:func:`fusion.drag.drag_acceleration`)."""
    v2 = x[3] * x[3] + x[4] * x[4] + x[5] * x[5]
    return 0.5 * _KAPPA * density(height(x)) * v2


@njit(cache=True)
def in_atmosphere(x, dt):
    """True where drag can matter during ``dt`` (:func:`fusion.drag.in_atmosphere`).

    At the lowest reachable height :math:`h - 1.2|v||\\Delta t|` the drag exceeds
    :data:`fusion.drag.DRAG_NEGLIGIBLE`.
    """
    v2 = x[3] * x[3] + x[4] * x[4] + x[5] * x[5]
    h_min = height(x) - 1.2 * math.sqrt(v2) * abs(dt)
    if not h_min < _TOP:
        return False
    return 0.5 * density(h_min) * v2 * _KAPPA > DRAG_NEGLIGIBLE


@njit(cache=True)
def drag_substeps(x, dt):
    """RK4 substeps of the drag model for one state (:func:`fusion.drag.substeps_needed`).

    Substep at most ``DRAG_MAX_STEP_S``, and ``DRAG_STEP_HEIGHT / |v|`` where the
    drag at the lowest reachable height exceeds ``DRAG_STIFF``.
    """
    speed = math.sqrt(x[3] * x[3] + x[4] * x[4] + x[5] * x[5])
    reach = 1.2 * speed * abs(dt)
    a_max = 0.5 * _KAPPA * density(height(x) - reach) * speed * speed
    step = DRAG_MAX_STEP_S
    if a_max > DRAG_STIFF:
        step = min(DRAG_MAX_STEP_S, DRAG_STEP_HEIGHT / max(speed, 1e-9))
    return max(1, int(math.ceil(abs(dt) / step)))


@njit(cache=True)
def _expm_substep(B, h, Fs):
    """Substep transition :math:`e^{Ah}` of the ballistic model, ``A = [[0, I], [B, D]]``, into ``Fs`` (6, 6).

    Block series (:func:`fusion.models._ballistic_expm_soa`):
    :math:`F_{rr} = I + \\tfrac{h^2}{2}B + \\tfrac{h^3}{6}DB + \\tfrac{h^4}{24}(B^2 + D^3B)`,
    :math:`F_{rv} = hI + \\tfrac{h^2}{2}D + \\tfrac{h^3}{6}(B + D^2) + \\tfrac{h^4}{24}(BD + DB + D^3)`,
    :math:`F_{vr} = hB + \\tfrac{h^2}{2}DB + \\tfrac{h^3}{6}(B^2 + D^2B)`,
    :math:`F_{vv} = I + hD + \\tfrac{h^2}{2}(B + D^2) + \\tfrac{h^3}{6}(BD + DB + D^3)`,
    with :math:`D` the Coriolis matrix (Iserles et al. 2000, sec. 4).
    """
    c = 2.0 * _W
    D = np.zeros((3, 3))
    D[0, 1] = c
    D[1, 0] = -c
    D2 = D @ D
    D3 = D2 @ D
    DB = D @ B
    BD = B @ D
    BB = B @ B
    D2B = D2 @ B
    D3B = D3 @ B
    h2 = h * h / 2.0
    h3 = h2 * h / 3.0
    h4 = h3 * h / 4.0
    for i in range(3):
        for j in range(3):
            e = 1.0 if i == j else 0.0
            Fs[i, j] = e + h2 * B[i, j] + h3 * DB[i, j] + h4 * (BB[i, j] + D3B[i, j])
            Fs[i, 3 + j] = h * e + h2 * D[i, j] + h3 * (B[i, j] + D2[i, j]) + h4 * (BD[i, j] + DB[i, j] + D3[i, j])
            Fs[3 + i, j] = h * B[i, j] + h2 * DB[i, j] + h3 * (BB[i, j] + D2B[i, j])
            Fs[3 + i, 3 + j] = e + h * D[i, j] + h2 * (B[i, j] + D2[i, j]) + h3 * (BD[i, j] + DB[i, j] + D3[i, j])


@njit(cache=True)
def ballistic_transition(x, dt, want_F, x_out, F):
    """Drag-free ballistic propagation by RK4 and its Magnus-midpoint transition (:func:`fusion.models.ballistic_transition`).

    Parameters
    ----------
    x : ndarray (6,)
    dt : float
        Step, s (``ceil(|dt| / MAX_STEP_S)`` substeps).
    want_F : bool
    x_out : ndarray (6,)
        Receives the propagated state.
    F : ndarray (6, 6)
        Receives :math:`\\partial x(t+\\Delta t)/\\partial x(t)` if ``want_F``.
    """
    n_sub = max(1, int(math.ceil(abs(dt) / MAX_STEP_S)))
    h = dt / n_sub
    s = x.copy()
    st = np.empty(6)
    k = np.empty((4, 6))
    a = np.empty(3)
    G = np.empty((3, 3))
    Fs = np.empty((6, 6))
    if want_F:
        F[:, :] = 0.0
        for i in range(6):
            F[i, i] = 1.0
    offs = (0.5 * h, 0.5 * h, h)
    for _ in range(n_sub):
        st[:] = s
        for j in range(4):
            ballistic_accel(st, a)
            for i in range(3):
                k[j, i] = st[3 + i]
                k[j, 3 + i] = a[i]
            if j == 1 and want_F:
                gravity_gradient(st, G)
                G[0, 0] += _W2  # centrifugal gradient
                G[1, 1] += _W2
                _expm_substep(G, h, Fs)
                F[:, :] = Fs @ F
            if j < 3:
                for i in range(6):
                    st[i] = s[i] + offs[j] * k[j, i]
        for i in range(6):
            s[i] = s[i] + (k[0, i] + 2.0 * k[1, i] + 2.0 * k[2, i] + k[3, i]) * (h / 6.0)
    x_out[:] = s


@njit(cache=True)
def _stage(st, Phi, mode, accel, v_floor, dx, dPhi, want_F):
    """One RK4 stage of the variational system :math:`\\dot x = f(x)`, :math:`\\dot\\Phi = A(x)\\Phi`.

    ``mode`` 1: thrusting (along-velocity ``accel``, direction Jacobian with
    :math:`|v|` floored at ``v_floor``, :func:`fusion.models.thrust_transition`);
    ``mode`` 2: nominal drag (:func:`fusion.drag._stage`).
    """
    a = np.empty(3)
    ballistic_accel(st, a)
    speed = math.sqrt(st[3] * st[3] + st[4] * st[4] + st[5] * st[5])
    T = np.zeros((3, 3))  # velocity Jacobian of the extra force
    Jr = np.zeros((3, 3))  # position Jacobian of the extra force
    if mode == 1:
        if speed > _MIN_THRUST_SPEED:
            u = st[3:6] / speed
            scale = accel / max(speed, v_floor)
        else:  # lift-off: radial thrust, no velocity dependence
            rn = math.sqrt(st[0] * st[0] + st[1] * st[1] + st[2] * st[2])
            u = st[0:3] / rn
            scale = 0.0
        for i in range(3):
            a[i] += accel * u[i]
            if want_F:
                for j in range(3):
                    T[i, j] = scale * ((1.0 if i == j else 0.0) - u[i] * u[j])
    elif mode == 2:
        h = height(st)
        rho = density(h)
        c = 0.5 * _KAPPA * rho
        for i in range(3):
            a[i] += -(c * speed) * st[3 + i]
        if want_F:
            safe = speed if speed > 0 else 1.0
            drho = (density(h + _DH) - density(h - _DH)) / (2.0 * _DH)
            rn = math.sqrt(st[0] * st[0] + st[1] * st[1] + st[2] * st[2])
            coef = -0.5 * _KAPPA * speed * drho
            for i in range(3):
                for j in range(3):
                    T[i, j] = -c * (speed * (1.0 if i == j else 0.0) + st[3 + i] * st[3 + j] / safe)
                    Jr[i, j] = coef * st[3 + i] * st[j] / rn
    for i in range(3):
        dx[i] = st[3 + i]
        dx[3 + i] = a[i]
    if not want_F:
        return
    G = np.empty((3, 3))
    gravity_gradient(st, G)
    G += Jr
    G[0, 0] += _W2
    G[1, 1] += _W2
    T[0, 1] += 2.0 * _W  # Coriolis: d(-2 w x v)/dv
    T[1, 0] -= 2.0 * _W
    dPhi[0:3, :] = Phi[3:6, :]
    dPhi[3:6, :] = G @ Phi[0:3, :] + T @ Phi[3:6, :]


@njit(cache=True)
def variational_rk4(x, dt, n_sub, mode, accel, v_floor, want_F, x_out, F):
    """RK4 of the state and of the variational equation with the same stages (Montenbruck & Gill 2000, sec. 7.1).

    Parameters
    ----------
    x : ndarray (6,)
    dt : float
        Step, s, in ``n_sub`` equal substeps.
    mode : int
        1 thrusting, 2 drag (see :func:`_stage`).
    accel, v_floor : float
        Thrust acceleration (m/s^2) and direction-Jacobian speed floor (m/s), mode 1.
    want_F : bool
    x_out : ndarray (6,), F : ndarray (6, 6)
        Outputs (``F`` only if ``want_F``).
    """
    h = dt / n_sub
    s = x.copy()
    Phi = np.eye(6)
    st = np.empty(6)
    Pt = np.empty((6, 6))
    K = np.empty((4, 6))
    KP = np.zeros((4, 6, 6))
    offs = (0.5 * h, 0.5 * h, h)
    for _ in range(n_sub):
        st[:] = s
        Pt[:, :] = Phi
        for j in range(4):
            _stage(st, Pt, mode, accel, v_floor, K[j], KP[j], want_F)
            if j < 3:
                for i in range(6):
                    st[i] = s[i] + offs[j] * K[j, i]
                if want_F:
                    Pt[:, :] = Phi + offs[j] * KP[j]
        for i in range(6):
            s[i] = s[i] + (K[0, i] + 2.0 * K[1, i] + 2.0 * K[2, i] + K[3, i]) * (h / 6.0)
        if want_F:
            Phi += (KP[0] + 2.0 * KP[1] + 2.0 * KP[2] + KP[3]) * (h / 6.0)
    x_out[:] = s
    if want_F:
        F[:, :] = Phi


@njit(cache=True)
def drag_transition(x, dt, want_F, x_out, F):
    """Propagation with gravity, frame terms and nominal drag; Jacobian (:func:`fusion.drag.drag_transition`).

    Inside the atmosphere (:func:`in_atmosphere`) the drag model by the
    variational RK4 in :func:`drag_substeps` substeps; outside, the drag-free
    :func:`ballistic_transition` (the same model there: the density is zero).
    """
    if in_atmosphere(x, dt):
        variational_rk4(x, dt, drag_substeps(x, dt), np.int64(2), 0.0, 0.0, want_F, x_out, F)
    else:
        ballistic_transition(x, dt, want_F, x_out, F)


@njit(cache=True)
def thrust_transition(x, dt, accel, v_floor, x_out, F):
    """Thrusting-model propagation and variational Jacobian (:func:`fusion.models.thrust_transition`).

    Ballistic dynamics plus :math:`a_T\\hat v`, ``ceil(|dt| / MAX_STEP_S)`` substeps.
    """
    n_sub = max(1, int(math.ceil(abs(dt) / MAX_STEP_S)))
    variational_rk4(x, dt, n_sub, np.int64(1), accel, v_floor, np.bool_(True), x_out, F)


@njit(cache=True)
def add_process_noise(dt, q, Q):
    """Add the white-noise-acceleration process noise to ``Q`` (6, 6) (:func:`fusion.models.process_noise`).

    :math:`Q \\mathrel{+}= q\\,[[|\\Delta t|^3/3\\,I, \\Delta t|\\Delta t|/2\\,I], [\\Delta t|\\Delta t|/2\\,I, |\\Delta t| I]]`
    (Bar-Shalom et al. 2001, eq. 6.2.2-12).
    """
    adt = abs(dt)
    pp = q * adt**3 / 3.0
    pv = q * dt * adt / 2.0
    vv = q * adt
    for i in range(3):
        Q[i, i] += pp
        Q[i, i + 3] += pv
        Q[i + 3, i] += pv
        Q[i + 3, i + 3] += vv


@njit(cache=True)
def add_drag_process_noise(x0, x1, dt, Q):
    """Add the unknown-ballistic-coefficient noise along the velocity to ``Q`` (:func:`fusion.drag.drag_process_noise`).

    :math:`\\sigma_a = \\sigma_{rel}\\max(|a_d(x_0)|, |a_d(x_1)|)`, piecewise-constant
    white acceleration along :math:`\\hat u = v_1/|v_1|` (Bar-Shalom et al. 2001, eq. 6.3.2-4).
    """
    sa = BALLISTIC_COEFF_REL_SIGMA * max(drag_accel_norm(x0), drag_accel_norm(x1))
    sa2 = sa * sa
    if sa2 == 0.0:
        return
    vn = max(math.sqrt(x1[3] * x1[3] + x1[4] * x1[4] + x1[5] * x1[5]), 1e-9)
    pp = sa2 * dt**4 / 4.0
    pv = sa2 * dt**3 / 2.0
    vv = sa2 * dt**2
    for i in range(3):
        for j in range(3):
            uu = (x1[3 + i] / vn) * (x1[3 + j] / vn)
            Q[i, j] += pp * uu
            Q[i, 3 + j] += pv * uu
            Q[3 + i, j] += pv * uu
            Q[3 + i, 3 + j] += vv * uu
