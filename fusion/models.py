"""Motion and measurement models for the trackers: ECEF ballistic and thrusting motion, AER radar.

State (every model, so that an IMM can mix them): ``x = [x, y, z, vx, vy, vz]`` in
ECEF (m, m/s, velocity relative to the rotating Earth), shape ``(..., 6)``.

Motion
------
Ballistic (midcourse and drag-free re-entry):

.. math::

    \\dot{\\mathbf r} = \\mathbf v,\\qquad
    \\dot{\\mathbf v} = \\mathbf g_{J2}(\\mathbf r) - 2\\boldsymbol\\omega\\times\\mathbf v
                       - \\boldsymbol\\omega\\times(\\boldsymbol\\omega\\times\\mathbf r)

(:func:`sim.gravity.ballistic_acceleration`). Thrusting (boost phase): the same
plus an along-velocity thrust acceleration of known magnitude ``accel``,

.. math::

    \\dot{\\mathbf v} = \\ldots + a_T\\,\\frac{\\mathbf v}{|\\mathbf v|},

a *nearly-constant-thrust* model: the magnitude is a filter parameter (a
typical boost acceleration, e.g. 20-40 m/s^2 for a liquid-fuel IRBM, an
estimate) and the mismatch with the real, growing thrust-to-mass ratio and
the pitch programme is absorbed by a large process noise (see :func:`process_noise`).
Below 1 m/s relative speed the thrust points radially up (lift-off).

The mean is propagated by classical fourth-order Runge-Kutta in substeps of at
most ``max_step_s`` (10 s by default); ``dt`` may be negative (retrodiction)
and may differ per element. The transition matrix :math:`F = \\partial
x(t+\\Delta t)/\\partial x(t)` is obtained by integrating the variational
equation :math:`\\dot\\Phi = A(x(t))\\,\\Phi`, :math:`\\Phi(0) = I`, with the same
RK4 stages as the mean, where

.. math::

    A = \\begin{bmatrix} 0 & I \\\\ G(\\mathbf r) + \\Omega_c & C + T(\\mathbf v)\\end{bmatrix},\\quad
    \\Omega_c = \\Omega_E^2\\,\\mathrm{diag}(1,1,0),\\quad
    C = \\begin{bmatrix} 0 & 2\\Omega_E & 0\\\\ -2\\Omega_E & 0 & 0\\\\ 0&0&0\\end{bmatrix},

:math:`G` the J2 gravity gradient (:func:`sim.gravity.gravity_j2_gradient`) and
:math:`T = a_T (I - \\hat v\\hat v^T)/|\\mathbf v|` the thrust term (zero for the
ballistic model). So :math:`F` is the exact Jacobian of the discrete RK4 map
up to :math:`O(h^5)` (Montenbruck & Gill, *Satellite Orbits*, 2000, sec. 7.1).
The thrusting model always uses this.

For the ballistic model the default is cheaper: :math:`A` is evaluated once per
substep at the RK4 midpoint state and :math:`F_{sub} = e^{A h}` (first-order
Magnus / exponential midpoint rule, Iserles et al., "Lie-group methods",
Acta Numerica 9, 2000, sec. 4; exponential by its 3rd-order series in closed
block form, as :math:`|A h| \\lesssim 10^{-3}`), substeps chained by product. Its error is
:math:`O(h^3\\,|\\dot A|) \\approx 10^{-9} h^3` s^-3 in the entries of
:math:`F` (the gravity gradient changes slowly along a trajectory), far below
what matters to a filter; the tests compare both with finite differences.

Measurement
-----------
AER radar measurement ``z = [range_m, azimuth_rad, elevation_rad]`` in the
sensor's ENU frame, wrapping :mod:`sensors.geometry`.
"""

from __future__ import annotations

import numpy as np

from sensors.geometry import measure, measurement_jacobian, measurement_residual
from sim.earth import EARTH_ROTATION_RATE
from sim.errors import InputError
from sim.gravity import (
    ballistic_acceleration,
    gravity_j2_components,
    gravity_j2_gradient,
    gravity_j2_gradient_components,
)

__all__ = [
    "MAX_STEP_S",
    "ballistic_derivative",
    "ballistic_transition",
    "ballistic_propagate",
    "thrust_transition",
    "thrust_propagate",
    "process_noise",
    "radar_hx",
    "radar_H",
    "radar_residual",
]

MAX_STEP_S = 10.0  # s, largest RK4 substep: keeps the J2 ballistic propagation error < 1 mm over 10 s
_MIN_THRUST_SPEED = 1.0  # m/s, below this the thrust direction is radial (lift-off)
_W = EARTH_ROTATION_RATE
_W2 = _W * _W


def _as_state(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] != 6:
        raise InputError.single("x", x.shape, "an ECEF state array of shape (..., 6)")
    return x


def _substeps(x, dt, max_step_s):
    """Per-element substep ``h`` of shape ``(..., 1)`` and the common number of substeps."""
    dt = np.asarray(dt, dtype=np.float64)
    if not np.all(np.isfinite(dt)):
        raise InputError.single("dt", dt, "finite time steps in seconds")
    if max_step_s <= 0:
        raise InputError.single("max_step_s", max_step_s, "a positive substep length in seconds")
    n_sub = max(1, int(np.ceil(np.max(np.abs(dt)) / max_step_s))) if dt.size else 1
    h = np.broadcast_to(dt / n_sub, x.shape[:-1])[..., None]
    return h, n_sub


def _thrust(r, v, accel, min_direction_speed=None):
    """Thrust acceleration ``(..., 3)`` and its velocity Jacobian ``(..., 3, 3)`` (see :func:`thrust_transition`)."""
    speed = np.sqrt(np.sum(v * v, axis=-1, keepdims=True))
    moving = speed > _MIN_THRUST_SPEED
    rn = np.sqrt(np.sum(r * r, axis=-1, keepdims=True))
    u = np.where(moving, v / np.where(moving, speed, 1.0), r / rn)
    a = accel[..., None] * u
    # d(a_T v/|v|)/dv = a_T (I - u u^T)/|v|; zero on the radial (lift-off) branch; |v| floored if asked
    lin_speed = speed if min_direction_speed is None else np.maximum(speed, min_direction_speed)
    scale = np.where(moving, accel[..., None] / np.where(moving, lin_speed, 1.0), 0.0)
    T = scale[..., None] * (np.eye(3) - u[..., :, None] * u[..., None, :])
    return a, T


def ballistic_derivative(x, accel=None):
    """Time derivative ``(..., 6)`` of the ECEF state: ``[v, g_J2 + frame (+ thrust)]``.

    Parameters
    ----------
    x : array_like, shape (..., 6)
        ECEF state (m, m/s).
    accel : array_like, shape (...), optional
        Along-velocity thrust acceleration in m/s^2 (thrusting model); None for ballistic.
    """
    x = _as_state(x)
    r, v = x[..., :3], x[..., 3:]
    a = ballistic_acceleration(r, v)
    if accel is not None:
        a = a + _thrust(r, v, np.broadcast_to(np.asarray(accel, dtype=np.float64), x.shape[:-1]))[0]
    return np.concatenate([v, a], axis=-1)


def _stage(x, Phi, accel, min_direction_speed=None):
    """Derivatives of state and (optionally) of the variational matrix at one RK4 stage."""
    r, v = x[..., :3], x[..., 3:]
    dx = np.empty(x.shape)
    dx[..., :3] = v
    a = ballistic_acceleration(r, v)
    T = None
    if accel is not None:
        aT, T = _thrust(r, v, accel, min_direction_speed)
        a += aT
    dx[..., 3:] = a
    if Phi is None:
        return dx, None
    G = gravity_j2_gradient(r)
    G[..., 0, 0] += _W2  # centrifugal gradient
    G[..., 1, 1] += _W2
    Phi_r, Phi_v = Phi[..., :3, :], Phi[..., 3:, :]
    dPhi = np.empty(Phi.shape)
    dPhi[..., :3, :] = Phi_v
    dv = G @ Phi_r
    # Coriolis: d(-2 w x v)/dv = [[0, 2w, 0], [-2w, 0, 0], [0, 0, 0]]
    dv[..., 0, :] += 2.0 * _W * Phi_v[..., 1, :]
    dv[..., 1, :] -= 2.0 * _W * Phi_v[..., 0, :]
    if T is not None:
        dv += T @ Phi_v
    dPhi[..., 3:, :] = dv
    return dx, dPhi


def _ballistic_expm(x_mid, h):
    """Substep transition :math:`e^{A h}` of the ballistic model, ``A`` at ``x_mid``, shape (..., 6, 6).

    With :math:`A = [[0, I], [B, D]]`, :math:`B` the gravity-plus-centrifugal
    gradient and :math:`D` the (constant) Coriolis matrix, the third-order series
    in blocks is

    .. math::

        F_{rr} = I + \\tfrac{h^2}{2}B + \\tfrac{h^3}{6}DB,\\quad
        F_{rv} = hI + \\tfrac{h^2}{2}D + \\tfrac{h^3}{6}(B + D^2),

        F_{vr} = hB + \\tfrac{h^2}{2}DB + \\tfrac{h^3}{6}(B^2 + D^2B),\\quad
        F_{vv} = I + hD + \\tfrac{h^2}{2}(B + D^2) + \\tfrac{h^3}{6}(BD + DB + D^3).

    plus the fourth-order terms of the position rows,
    :math:`\\tfrac{h^4}{24}(B^2 + D^2 B)` and :math:`\\tfrac{h^4}{24}(BD + DB + D^3)`.
    The omitted terms are below :math:`|B|^2 h^4/24 < 10^{-8}` for
    :math:`h \\le 10` s (:math:`|B| \\approx 2\\mu/r^3 < 3\\times10^{-6}` s^-2).
    """
    x_mid = np.asarray(x_mid, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    batch = x_mid.shape[:-1]
    r = np.moveaxis(x_mid[..., :3], -1, 0).reshape(3, -1)
    # h is (..., 1) as in _rk4 (one substep length per element)
    hs = np.broadcast_to(h[..., 0] if h.ndim else h, batch).reshape(-1)
    Fs = _ballistic_expm_soa(r[0], r[1], r[2], hs)
    return np.ascontiguousarray(np.moveaxis(Fs, -1, 0)).reshape(batch + (6, 6))


def _ballistic_expm_soa(px, py, pz, h, out=None):
    """:func:`_ballistic_expm` on component arrays: positions ``(M,)`` each, ``h`` scalar or ``(M,)``.

    Returns the substep transition stored component-wise, ``F[i, j]`` of shape
    ``(M,)``, i.e. an array ``(6, 6, M)``. The block series of
    :func:`_ballistic_expm` is written out per entry: :math:`B` is symmetric,
    :math:`DB` has rows :math:`(w B_{1\\cdot}, -w B_{0\\cdot}, 0)` and
    :math:`BD + DB` is antisymmetric with entries
    :math:`w(B_{00}+B_{11})`, :math:`wB_{12}`, :math:`-wB_{02}` (``w = 2 Omega_E``),
    so each entry is a few multiply-adds on contiguous ``(M,)`` arrays.
    """
    g = gravity_j2_gradient_components(px, py, pz)
    b00 = g[0] + _W2  # centrifugal gradient
    b11 = g[3] + _W2
    b01, b02, b12, b22 = g[1], g[2], g[4], g[5]
    B = ((b00, b01, b02), (b01, b11, b12), (b02, b12, b22))
    M = b00.shape[0]
    c = 2.0 * _W  # Coriolis D = [[0, c, 0], [-c, 0, 0], [0, 0, 0]], D^2 = -c^2 diag(1, 1, 0)
    F = np.empty((6, 6, M)) if out is None else out
    c2 = c * c
    h1 = h
    h2 = h1 * h1 / 2.0
    h3 = h2 * h1 / 3.0
    h4 = h3 * h1 / 4.0
    # BB = B B (symmetric)
    BB = [[None] * 3 for _ in range(3)]
    for i in range(3):
        for j in range(i, 3):
            t = B[i][0] * B[0][j]
            t += B[i][1] * B[1][j]
            t += B[i][2] * B[2][j]
            BB[i][j] = BB[j][i] = t
    # F_rr = I + h^2/2 B + h^3/6 DB + h^4/24 (BB + D^2 DB)
    a_rr = h3 * c - h4 * c2 * c  # coefficient of the other row of B through DB
    # F_vr = h B + h^2/2 DB + h^3/6 (BB + D^2 B)
    d_vr = h1 - h3 * c2  # h + h^3/6 D^2 on rows 0, 1
    e_vr = h2 * c
    for j in range(3):
        for i, (own, other, sgn) in enumerate(((0, 1, 1.0), (1, 0, -1.0))):
            out = F[i, j]
            np.multiply(B[own][j], h2, out=out)
            out += (sgn * a_rr) * B[other][j]
            out += h4 * BB[own][j]
            out = F[3 + i, j]
            np.multiply(B[own][j], d_vr, out=out)
            out += (sgn * e_vr) * B[other][j]
            out += h3 * BB[own][j]
        np.multiply(B[2][j], h2, out=F[2, j])
        F[2, j] += h4 * BB[2][j]
        np.multiply(B[2][j], h1, out=F[5, j])
        F[5, j] += h3 * BB[2][j]
    for i in range(3):
        F[i, i] += 1.0
    # F_rv = h I + h^2/2 D + h^3/6 (B + D^2) + h^4/24 (BD + DB + D^3),  D^3 = -c^2 D
    # F_vv = I + h D + h^2/2 (B + D^2) + h^3/6 (BD + DB + D^3)
    s01 = c * (b00 + b11)  # (BD + DB)[0, 1] = -(BD + DB)[1, 0]
    s12 = c * b12  # (BD + DB)[0, 2] = (BD + DB)[2, 1]
    s02 = c * b02  # -(BD + DB)[1, 2] = -(BD + DB)[2, 0]
    for blk, (hb, ha, diag, coriolis) in ((0, (h3, h4, (h1 - h3 * c2, h1 - h3 * c2, h1), h2 * c - h4 * c2 * c)),
                                         (3, (h2, h3, (1.0 - h2 * c2, 1.0 - h2 * c2, 1.0), h1 * c - h3 * c2 * c))):
        Fb = F[blk:blk + 3, 3:]
        for i in range(3):
            np.multiply(B[i][i], hb, out=Fb[i, i])
            Fb[i, i] += diag[i]
        np.multiply(b01, hb, out=Fb[0, 1])
        Fb[0, 1] += ha * s01
        Fb[0, 1] += coriolis
        np.multiply(b01, hb, out=Fb[1, 0])
        Fb[1, 0] -= ha * s01
        Fb[1, 0] -= coriolis
        np.multiply(b02, hb, out=Fb[0, 2])
        Fb[0, 2] += ha * s12
        np.multiply(b12, hb, out=Fb[2, 1])
        Fb[2, 1] += ha * s02
        np.multiply(b12, hb, out=Fb[1, 2])
        Fb[1, 2] -= ha * s02
        np.multiply(b02, hb, out=Fb[2, 0])
        Fb[2, 0] -= ha * s12
    return F


def _ballistic_derivative_soa(s):
    """Acceleration components of the ballistic model for a component-wise state ``s`` (6, M)."""
    ax, ay, az = gravity_j2_components(s[0], s[1], s[2])
    # frame terms (sim.gravity.frame_acceleration): -2 w x v - w x (w x r), w = (0, 0, W)
    ax += _W2 * s[0]
    ax += 2.0 * _W * s[4]
    ay += _W2 * s[1]
    ay -= 2.0 * _W * s[3]
    return ax, ay, az


def _ballistic_rk4_soa(x, h, n_sub, want_F, F_out=None):
    """RK4 of the ballistic model with the state stored component-wise; Magnus-midpoint ``F``.

    ``x`` is ``(M, 6)``, ``h`` a scalar or ``(M,)``. Same arithmetic as the
    generic path of :func:`_rk4` (stages, midpoint exponential), but each
    component is a contiguous ``(M,)`` array, so every line is one vectorised
    operation with no ``(M, 3)`` strided temporaries. Returns ``(x (M, 6),
    F_soa (6, 6, M) or None)``; ``F_out`` (6, 6, M) receives ``F`` when ``n_sub == 1``
    (a reused buffer avoids fresh multi-megabyte allocations, which glibc
    page-faults in again on every call).
    """
    s = np.ascontiguousarray(x.T)
    k = np.empty((4, 6) + s.shape[1:])
    hk = (0.5 * h, 0.5 * h, h)
    F = None
    for _ in range(n_sub):
        st = s
        for j in range(4):
            k[j, :3] = st[3:]
            k[j, 3], k[j, 4], k[j, 5] = _ballistic_derivative_soa(st)
            if j == 1 and want_F:
                # Magnus midpoint: Phi_sub = exp(A(x(t + h/2)) h), stage 2 approximates the midpoint state
                Fs = _ballistic_expm_soa(st[0], st[1], st[2], h, F_out if n_sub == 1 else None)
                if F is None:
                    F = Fs
                else:
                    F = np.einsum("ikm,kjm->ijm", Fs, F, optimize=True)
            if j < 3:
                st = s + hk[j] * k[j]
        acc = k[1] + k[2]
        acc *= 2.0
        acc += k[0]
        acc += k[3]
        acc *= h / 6.0
        s = s + acc
    return np.ascontiguousarray(s.T), F


def _rk4(x, dt, accel, want_F, max_step_s, jacobian="magnus", min_direction_speed=None):
    x = _as_state(x)
    h, n_sub = _substeps(x, dt, max_step_s)
    if accel is not None:
        accel = np.broadcast_to(np.asarray(accel, dtype=np.float64), x.shape[:-1])
    variational = want_F and (jacobian == "variational" or accel is not None)
    if accel is None and not variational and x.ndim >= 1:
        # ballistic mean (+ Magnus F): component-wise kernel, one substep length per element
        batch = x.shape[:-1]
        dt_arr = np.asarray(dt, dtype=np.float64)
        hs = float(dt_arr) / n_sub if dt_arr.ndim == 0 else h.reshape(-1)
        xs, Fs = _ballistic_rk4_soa(x.reshape(-1, 6), hs, n_sub, want_F)
        F = None if Fs is None else np.ascontiguousarray(np.moveaxis(Fs, -1, 0)).reshape(batch + (6, 6))
        return xs.reshape(batch + (6,)), F
    x = x.copy()
    Phi = np.broadcast_to(np.eye(6), x.shape[:-1] + (6, 6)).copy() if variational else None
    F = None
    h3 = h[..., None]  # (..., 1, 1) for the variational matrix
    for _ in range(n_sub):
        k1, K1 = _stage(x, Phi, accel, min_direction_speed)
        x2 = x + 0.5 * h * k1
        k2, K2 = _stage(x2, None if Phi is None else Phi + 0.5 * h3 * K1, accel, min_direction_speed)
        if want_F and not variational:
            # Magnus midpoint: Phi_sub = exp(A(x(t + h/2)) h), x2 approximates the midpoint state
            Fs = _ballistic_expm(x2, h)
            F = Fs if F is None else Fs @ F
        k3, K3 = _stage(x + 0.5 * h * k2, None if Phi is None else Phi + 0.5 * h3 * K2, accel, min_direction_speed)
        k4, K4 = _stage(x + h * k3, None if Phi is None else Phi + h3 * K3, accel, min_direction_speed)
        x += (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        if Phi is not None:
            Phi += (h3 / 6.0) * (K1 + 2.0 * K2 + 2.0 * K3 + K4)
    return x, (Phi if variational else F)


def ballistic_transition(x, dt, max_step_s=MAX_STEP_S, jacobian="magnus"):
    """Propagate ECEF states ballistically and return the transition Jacobian.

    Parameters
    ----------
    x : array_like, shape (..., 6)
        ECEF state (m, m/s relative to the Earth).
    dt : float or array_like, shape (...)
        Time step in seconds, scalar or per element; negative retrodicts.
    max_step_s : float
        Largest RK4 substep (s). All elements take the same number of substeps,
        ``ceil(max|dt| / max_step_s)``.
    jacobian : {"magnus", "variational"}
        How ``F`` is computed (see module notes): ``"magnus"`` (default, ~3x
        cheaper) evaluates the system matrix once per substep at the RK4
        midpoint state and takes its matrix exponential (series, closed form);
        ``"variational"`` integrates the variational equation with the RK4 stages.

    Returns
    -------
    x_pred : ndarray, shape (..., 6)
        State at ``t + dt`` (RK4 on J2 gravity + Coriolis + centrifugal).
    F : ndarray, shape (..., 6, 6)
        :math:`\\partial x_{pred}/\\partial x` (see ``jacobian``).

    Raises
    ------
    InputError
        If ``x`` is not ``(..., 6)`` or ``dt`` is not finite.
    """
    if jacobian not in ("magnus", "variational"):
        raise InputError.single("jacobian", jacobian, "'magnus' or 'variational'")
    return _rk4(x, dt, None, True, max_step_s, jacobian)


def ballistic_propagate(x, dt, max_step_s=MAX_STEP_S):
    """Propagate ECEF states ballistically (mean only, no Jacobian): ``(..., 6)`` -> ``(..., 6)``.

    ``dt`` is a scalar or per-element array ``(...)`` in seconds (negative
    retrodicts); see :func:`ballistic_transition`. Used by the metrics to
    predict the impact point.
    """
    return _rk4(x, dt, None, False, max_step_s)[0]


def thrust_transition(x, dt, accel, max_step_s=MAX_STEP_S, min_direction_speed=None):
    """Propagate with the thrusting (boost) model and return the transition Jacobian.

    Parameters
    ----------
    x : array_like, shape (..., 6)
        ECEF state (m, m/s).
    dt : float or array_like, shape (...)
        Time step (s); negative retrodicts.
    accel : float or array_like, shape (...)
        Thrust acceleration magnitude along the relative velocity (m/s^2).
    max_step_s : float
        Largest RK4 substep (s).
    min_direction_speed : float, optional
        Speed floor (m/s) of the thrust direction's linearization. The exact
        velocity Jacobian of :math:`a_T \\hat v` is :math:`a_T (I - \\hat v\\hat v^T)/|v|`;
        it is a fair linearization only when the velocity error is small against
        :math:`|v|`. A young track whose velocity is barely known can have a small
        :math:`|v|` estimate, and the exact term then multiplies its cross-velocity
        covariance by about :math:`(1 + a_T\\Delta t/|v|)^2` a step: its gates grow
        until random false alarms confirm it. With a floor the Jacobian uses
        :math:`\\max(|v|, v_{min})`; the mean is unchanged, and the direction error
        left out is for the process noise to cover. None (default): exact.

    Returns
    -------
    x_pred : ndarray, shape (..., 6)
    F : ndarray, shape (..., 6, 6)
        :math:`\\partial x_{pred}/\\partial x` by the variational equation (with
        the floored thrust-direction term if ``min_direction_speed`` is set).

    Notes
    -----
    Ballistic dynamics plus :math:`a_T\\,\\hat v`; use with a large process noise
    (:func:`process_noise`) to cover the unknown thrust profile and pitch
    programme. Shares the 6-state with the ballistic model so an IMM can mix them.
    """
    return _rk4(x, dt, accel, True, max_step_s, min_direction_speed=min_direction_speed)


def thrust_propagate(x, dt, accel, max_step_s=MAX_STEP_S):
    """Mean-only version of :func:`thrust_transition`, ``(..., 6)``."""
    return _rk4(x, dt, accel, False, max_step_s)[0]


def process_noise(dt, q):
    """Continuous white-noise-acceleration process noise for the 6-state, ``(..., 6, 6)``.

    Parameters
    ----------
    dt : float or array_like, shape (...)
        Time step (s); negative for retrodiction.
    q : float or array_like, shape (...)
        Power spectral density of the acceleration noise per axis, m^2/s^3.

    Returns
    -------
    ndarray, shape (..., 6, 6)
        .. math::

            Q = q\\begin{bmatrix}\\tfrac{|\\Delta t|^3}{3}I & \\tfrac{\\Delta t|\\Delta t|}{2}I\\\\
                                \\tfrac{\\Delta t|\\Delta t|}{2}I & |\\Delta t| I\\end{bmatrix}

        (Bar-Shalom et al. 2001, sec. 6.2.2, eq. 6.2.2-12, for
        :math:`\\Delta t > 0`; for a backward step the position-velocity term
        changes sign, as the noise integral runs backwards.)

    Raises
    ------
    InputError
        If ``q`` is negative or ``dt`` not finite.
    """
    dt = np.asarray(dt, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if np.any(q < 0) or not np.all(np.isfinite(q)):
        raise InputError.single("q", q, "a finite power spectral density >= 0 in m^2/s^3")
    if not np.all(np.isfinite(dt)):
        raise InputError.single("dt", dt, "finite time steps in seconds")
    adt = np.abs(dt)
    shape = np.broadcast_shapes(dt.shape, q.shape)
    Q = np.zeros(shape + (6, 6))
    pp = np.broadcast_to(q * adt**3 / 3.0, shape)
    pv = np.broadcast_to(q * dt * adt / 2.0, shape)
    vv = np.broadcast_to(q * adt, shape)
    for i in range(3):
        Q[..., i, i] = pp
        Q[..., i, i + 3] = pv
        Q[..., i + 3, i] = pv
        Q[..., i + 3, i + 3] = vv
    return Q


def radar_hx(x, site_ecef, R_enu, with_range_rate=False):
    """Predicted AER measurement ``(..., 3)`` [range m, azimuth rad in [0, 2pi), elevation rad].

    Wraps :func:`sensors.geometry.measure`; ``site_ecef`` ``(..., 3)`` and the
    ECEF-to-ENU rotation ``R_enu`` ``(..., 3, 3)`` broadcast against ``x`` ``(..., 6)``.
    ``with_range_rate`` appends the range rate (m/s).
    """
    return measure(x, site_ecef, R_enu, with_range_rate)


def radar_H(x, site_ecef, R_enu, with_range_rate=False):
    """Analytic Jacobian ``(..., 3, 6)`` (or ``(..., 4, 6)``) of :func:`radar_hx`.

    Wraps :func:`sensors.geometry.measurement_jacobian` (Bar-Shalom et al. 2001,
    sec. 10.4). The azimuth row is singular at the zenith (elevation 90 deg).
    """
    return measurement_jacobian(x, site_ecef, R_enu, with_range_rate)


def radar_residual(z, hx):
    """AER residual ``z - hx`` ``(..., m)`` with azimuth (index 1) wrapped to (-pi, pi].

    Wraps :func:`sensors.geometry.measurement_residual`; works on a copy, so
    ``z`` is not modified. Use as ``residual=`` in :func:`fusion.kalman.update`.
    """
    return measurement_residual(z, hx)
