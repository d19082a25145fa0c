"""Drag-aware ballistic motion model for the trackers (re-entry), on the common 6-state.

State ``x = [x, y, z, vx, vy, vz]`` in ECEF (m, m/s relative to the rotating
Earth), as in :mod:`fusion.models`, so an IMM can mix this model with the
thrusting one. The motion adds aerodynamic drag with a *nominal* ballistic
coefficient :math:`\\beta = m/(C_D A)` to the drag-free ballistic model of
:func:`fusion.models.ballistic_transition`:

.. math::

    \\dot{\\mathbf v} = \\mathbf g_{J2}(\\mathbf r) + \\text{frame terms}
        - \\frac{\\rho(h)\\,|\\mathbf v|}{2\\beta}\\,\\mathbf v,

with :math:`\\rho(h)` the standard atmosphere of :func:`sim.atmosphere.density`
at the height :func:`sim.dynamics.height_fast` (the air co-rotates with the
Earth, so the ECEF velocity is the air-relative velocity). This is the
re-entry model of Li & Jilkov, "Survey of maneuvering target tracking. Part II:
motion models of ballistic and space targets", IEEE Trans. AES 46(1), 2010,
sec. IV (drag with a known or nominal ballistic coefficient) and of Zarchan,
*Tactical and Strategic Missile Guidance*, 6th ed., 2012, ch. 8-9 (ballistic
target re-entry with :math:`\\beta` and exponential atmosphere).

The tracker does not know the object's :math:`\\beta`. Instead of a seventh
state :math:`1/\\beta` (Li & Jilkov 2010, sec. IV.B; Farina, Ristic & Benvenuti,
IEEE Trans. AES 38(3), 2002), the mismatch is carried by a process noise along
the velocity whose standard deviation is the drag acceleration times the
relative uncertainty of :math:`1/\\beta` (:func:`drag_process_noise`): zero in
vacuum, it grows with the drag exactly when the nominal model can be wrong.

Jacobian
--------
With :math:`\\kappa = 1/\\beta`, :math:`\\mathbf a_d = -\\tfrac12\\kappa\\rho|\\mathbf v|\\mathbf v`:

.. math::

    \\frac{\\partial\\mathbf a_d}{\\partial\\mathbf v} = -\\tfrac12\\kappa\\rho
        \\Big(|\\mathbf v| I + \\frac{\\mathbf v\\mathbf v^T}{|\\mathbf v|}\\Big),\\qquad
    \\frac{\\partial\\mathbf a_d}{\\partial\\mathbf r} = -\\tfrac12\\kappa|\\mathbf v|\\,
        \\frac{d\\rho}{dh}\\,\\mathbf v\\,\\hat{\\mathbf u}^T,

:math:`\\hat{\\mathbf u} = \\mathbf r/|\\mathbf r|` the geocentric up vector used
for :math:`\\partial h/\\partial\\mathbf r` (neglected: the 0.19-deg difference
between geocentric and geodetic vertical, a relative error below 0.4 % of this
term) and :math:`d\\rho/dh` by a central difference of the density table
(:data:`_DH`). The transition matrix integrates the variational equation
:math:`\\dot\\Phi = A\\Phi` with the same RK4 stages as the mean (Montenbruck &
Gill, *Satellite Orbits*, 2000, sec. 7.1); :math:`A` adds these two blocks to
the gravity, centrifugal and Coriolis terms of :mod:`fusion.models`.

Only elements that can be inside the atmosphere during the step
(:func:`in_atmosphere`) are integrated with drag; the others take the cheaper
drag-free :func:`fusion.models.ballistic_transition` (the density is exactly
zero above :data:`sim.atmosphere.TOP_OF_ATMOSPHERE`, so both are the same model).
"""

from __future__ import annotations

import numpy as np

from fusion.models import MAX_STEP_S, ballistic_propagate, ballistic_transition
from sim.atmosphere import TOP_OF_ATMOSPHERE, density
from sim.dynamics import height_fast
from sim.earth import EARTH_ROTATION_RATE
from sim.errors import InputError
from sim.gravity import (
    ballistic_acceleration,
    gravity_j2_components,
    gravity_j2_gradient,
    gravity_j2_gradient_components,
)

__all__ = [
    "NOMINAL_BALLISTIC_COEFF",
    "BALLISTIC_COEFF_REL_SIGMA",
    "DRAG_MAX_STEP_S",
    "DRAG_STEP_HEIGHT",
    "DRAG_NEGLIGIBLE",
    "DRAG_STIFF",
    "drag_acceleration",
    "drag_derivative",
    "drag_transition",
    "drag_propagate",
    "drag_process_noise",
    "in_atmosphere",
    "substeps_needed",
]

# Nominal RV ballistic coefficient the tracker assumes, kg/m^2 (estimate): heavy ICBM/IRBM
# re-entry vehicles are quoted at 1,000 lb/ft^2 = 4,900 kg/m^2 (Zarchan 2012, ch. 9 examples use
# 500-2,000 lb/ft^2) and 3,000-5,000 kg/m^2 in open-source RV estimates (Wright, UCS, 2000;
# the notional catalog of sim.missiles uses 3,000-5,000 for RVs). Mid value of that range.
NOMINAL_BALLISTIC_COEFF = 4_000.0
# Relative 1-sigma uncertainty of 1/beta about the nominal (estimate): spans the 3,000-5,700 kg/m^2
# class of RVs at one sigma, the whole 2,300-13,000 at about two sigma. Light debris (spent stages,
# beta ~ 500-1,000) is far outside and drops out of the gate in the dense atmosphere.
BALLISTIC_COEFF_REL_SIGMA = 0.3
# Largest RK4 substep with drag, s (also bounded by DRAG_STEP_HEIGHT / speed, below).
DRAG_MAX_STEP_S = 2.0
# Largest height an object may cover per substep, m: the drag changes e-fold per density scale
# height (~7 km, ICAO 1993 below 80 km), which a steep 7 km/s re-entry crosses in one second; a
# quarter of it keeps the RK4 error of the drag term below 1e-4 of it (tests vs solve_ivp).
DRAG_STEP_HEIGHT = 1_750.0
# Drag below this (m/s^2) at the lowest height reachable in the step is ignored (drag-free model):
# 1e-4 m/s^2 over a 10-s step is 1 mm/s, far below any process noise of the tracker.
DRAG_NEGLIGIBLE = 1e-4
# Drag (m/s^2) above which the substep is bounded by DRAG_STEP_HEIGHT: below it, even a 10 % RK4 error
# of the drag over a 2-s step is < 0.02 m/s, negligible against the tracker's process noise.
DRAG_STIFF = 0.1
_DH = 50.0  # m, half-step of the central difference for d rho / dh (table step 250 m, log-linear)
_W = EARTH_ROTATION_RATE
_W2 = _W * _W
_2W = 2.0 * _W  # Coriolis coefficients as sim.gravity.frame_acceleration forms them
_M2W = -2.0 * _W
_EYE3 = np.eye(3)


def _kappa(inv_beta):
    k = np.asarray(inv_beta, dtype=np.float64)
    if np.any(k < 0) or not np.all(np.isfinite(k)):
        raise InputError.single("inv_beta", k, "a finite inverse ballistic coefficient >= 0 in m^2/kg")
    return k


def drag_acceleration(x, inv_beta=1.0 / NOMINAL_BALLISTIC_COEFF, jacobian=False):
    """Drag acceleration ``(..., 3)`` m/s^2 and optionally its Jacobians.

    Parameters
    ----------
    x : array_like, shape (..., 6)
        ECEF state (m, m/s relative to the Earth, i.e. to the air).
    inv_beta : float or array_like, shape (...)
        :math:`1/\\beta = C_D A/m`, m^2/kg.
    jacobian : bool
        Also return :math:`\\partial\\mathbf a_d/\\partial\\mathbf r` and
        :math:`\\partial\\mathbf a_d/\\partial\\mathbf v` (module notes).

    Returns
    -------
    a : ndarray, shape (..., 3)
    Jr, Jv : ndarray, shape (..., 3, 3)
        Only if ``jacobian``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] != 6:
        raise InputError.single("x", x.shape, "an ECEF state array of shape (..., 6)")
    return _drag(x, _kappa(inv_beta), jacobian)


def _drag(x, k, jacobian):
    r, v = x[..., :3], x[..., 3:]
    h = height_fast(r)
    rho = density(h)
    speed = np.sqrt(np.sum(v * v, axis=-1))
    c = 0.5 * k * rho  # (...)
    a = -(c * speed)[..., None] * v
    if not jacobian:
        return a
    safe = np.where(speed > 0, speed, 1.0)
    Jv = -c[..., None, None] * (speed[..., None, None] * np.eye(3)
                                + v[..., :, None] * v[..., None, :] / safe[..., None, None])
    drho = (density(h + _DH) - density(h - _DH)) / (2.0 * _DH)  # kg/m^4
    up = r / np.sqrt(np.sum(r * r, axis=-1, keepdims=True))
    Jr = (-0.5 * k * speed * drho)[..., None, None] * (v[..., :, None] * up[..., None, :])
    return a, Jr, Jv


def drag_derivative(x, inv_beta=1.0 / NOMINAL_BALLISTIC_COEFF):
    """Time derivative ``(..., 6)``: ``[v, g_J2 + frame terms + drag]`` (ECEF)."""
    x = np.asarray(x, dtype=np.float64)
    a = ballistic_acceleration(x[..., :3], x[..., 3:]) + drag_acceleration(x, inv_beta)
    return np.concatenate([x[..., 3:], a], axis=-1)


def _stage(x, Phi, k):
    r, v = x[..., :3], x[..., 3:]
    ad, Jr, Jv = _drag(x, k, True)
    dx = np.empty(x.shape)
    dx[..., :3] = v
    dx[..., 3:] = ballistic_acceleration(r, v) + ad
    if Phi is None:
        return dx, None
    G = gravity_j2_gradient(r) + Jr
    G[..., 0, 0] += _W2  # centrifugal gradient
    G[..., 1, 1] += _W2
    Dv = Jv.copy()  # Coriolis: d(-2 w x v)/dv = [[0, 2w, 0], [-2w, 0, 0], [0, 0, 0]]
    Dv[..., 0, 1] += 2.0 * _W
    Dv[..., 1, 0] -= 2.0 * _W
    Phi_r, Phi_v = Phi[..., :3, :], Phi[..., 3:, :]
    dPhi = np.empty(Phi.shape)
    dPhi[..., :3, :] = Phi_v
    dPhi[..., 3:, :] = G @ Phi_r + Dv @ Phi_v
    return dx, dPhi


def _stage_soa(s, Phi, kh, dx, dPhi):
    """One RK4 stage of the drag model on a component-wise state ``s`` (6, M).

    Same arithmetic, operation for operation, as :func:`_stage` (so the same
    bits), but each component is a contiguous ``(M,)`` array, the three
    densities (at ``h`` and ``h +- _DH``) come from one :func:`density` call,
    the Jacobian terms are skipped when no ``Phi`` is propagated, and ``dx``
    (6, M) / ``dPhi`` (M, 6, 6) are written in place. ``kh`` is ``0.5 * k``.
    """
    px, py, pz, vx, vy, vz = s
    h = height_fast(s[:3].T)
    M = h.shape[0]
    if Phi is None:
        rho = density(h)
    else:
        hh = np.empty(3 * M)
        hh[:M] = h
        np.add(h, _DH, out=hh[M:2 * M])
        np.subtract(h, _DH, out=hh[2 * M:])
        dens = density(hh)
        rho = dens[:M]
    v2 = vx * vx
    v2 += vy * vy
    v2 += vz * vz
    speed = np.sqrt(v2)
    c = kh * rho
    ncs = c * speed
    np.negative(ncs, out=ncs)  # a_drag = -(c |v|) v
    gx, gy, gz = gravity_j2_components(px, py, pz)
    dx[:3] = s[3:]
    # ballistic_acceleration = gravity + frame terms (sim.gravity.frame_acceleration), then + drag
    fx = _2W * vy
    fx += _W2 * px
    gx += fx
    np.multiply(ncs, vx, out=fx)
    np.add(gx, fx, out=dx[3])
    fy = _M2W * vx
    fy += _W2 * py
    gy += fy
    np.multiply(ncs, vy, out=fy)
    np.add(gy, fy, out=dx[4])
    gz += 0.0
    np.multiply(ncs, vz, out=fy)
    np.add(gz, fy, out=dx[5])
    if Phi is None:
        return
    v = s[3:].T  # (M, 3) view
    safe = np.where(speed > 0, speed, 1.0)
    Jv = v[:, :, None] * v[:, None, :]
    Jv /= safe[:, None, None]
    Jv += speed[:, None, None] * _EYE3
    Jv *= -c[:, None, None]
    drho = dens[M:2 * M] - dens[2 * M:]
    drho /= 2.0 * _DH
    r2 = px * px
    r2 += py * py
    r2 += pz * pz
    up = s[:3].T / np.sqrt(r2)[:, None]
    coef = kh * -1.0  # -0.5 k
    coef *= speed
    coef *= drho
    G = np.empty((M, 3, 3))
    gxx, gxy, gxz, gyy, gyz, gzz = gravity_j2_gradient_components(px, py, pz)
    G[:, 0, 0] = gxx
    G[:, 0, 1] = G[:, 1, 0] = gxy
    G[:, 0, 2] = G[:, 2, 0] = gxz
    G[:, 1, 1] = gyy
    G[:, 1, 2] = G[:, 2, 1] = gyz
    G[:, 2, 2] = gzz
    Jr = v[:, :, None] * up[:, None, :]
    Jr *= coef[:, None, None]
    G += Jr
    G[:, 0, 0] += _W2  # centrifugal gradient
    G[:, 1, 1] += _W2
    Jv[:, 0, 1] += 2.0 * _W  # Coriolis: d(-2 w x v)/dv = [[0, 2w, 0], [-2w, 0, 0], [0, 0, 0]]
    Jv[:, 1, 0] -= 2.0 * _W
    dPhi[:, :3, :] = Phi[:, 3:, :]
    np.matmul(G, Phi[:, :3, :], out=dPhi[:, 3:, :])
    dPhi[:, 3:, :] += Jv @ Phi[:, 3:, :]


def _drag_step(x, dt, k, max_step_s):
    """Largest RK4 substep each element allows, s (``(...)``)."""
    speed = np.sqrt(np.sum(x[..., 3:] ** 2, axis=-1))
    # Short substeps only where the drag is strong enough for their RK4 error to matter.
    reach = 1.2 * speed * np.abs(dt)
    a_max = 0.5 * k * density(height_fast(x[..., :3]) - reach) * speed**2
    return np.where(a_max > DRAG_STIFF, np.minimum(max_step_s, DRAG_STEP_HEIGHT / np.maximum(speed, 1e-9)),
                    max_step_s)


def substeps_needed(x, dt, inv_beta=1.0 / NOMINAL_BALLISTIC_COEFF, max_step_s=DRAG_MAX_STEP_S):
    """Substep counts :func:`drag_transition` would take for each element on its own.

    Parameters
    ----------
    x : array_like, shape (n, 6)
        ECEF states (m, m/s).
    dt : array_like, shape (n,)
        Time steps, s.
    inv_beta : float or array_like, shape (n,)
    max_step_s : float
        As in :func:`drag_transition`.

    Returns
    -------
    n_ballistic : ndarray of int, shape (n,)
        Drag-free RK4 substeps, ``max(1, ceil(|dt| / MAX_STEP_S))``
        (:func:`fusion.models.ballistic_transition`, also the thrusting model).
    n_drag : ndarray of int, shape (n,)
        Drag RK4 substeps, ``max(1, ceil(|dt| / step))``, 0 outside the atmosphere
        (:func:`in_atmosphere`).

    Notes
    -----
    A batch takes the largest count of its elements (common substeps), so
    elements whose batches had the same maxima can be propagated together
    with the same bits: the tracker uses this to batch its output predictions
    over many grid times.
    """
    x = np.asarray(x, dtype=np.float64)
    dt = np.broadcast_to(np.asarray(dt, dtype=np.float64), x.shape[:-1])
    k = np.broadcast_to(_kappa(inv_beta), x.shape[:-1])
    nb = np.maximum(1, np.ceil(np.abs(dt) / MAX_STEP_S)).astype(np.int64)
    air = in_atmosphere(x, dt, k)
    nd = np.zeros(dt.shape, dtype=np.int64)
    if air.any():
        nd[air] = np.maximum(1, np.ceil(np.abs(dt[air]) / _drag_step(x[air], dt[air], k[air], max_step_s)))
    return nb, nd


def _rk4_drag(x, dt, k, want_F, max_step_s):
    """RK4 of the drag model (mean and variational matrix), common substep count.

    The state is integrated component-wise (:func:`_stage_soa`); the results
    are those of the straightforward ``(..., 6)`` form of :func:`_stage`.
    """
    dt = np.broadcast_to(np.asarray(dt, dtype=np.float64), x.shape[:-1])
    if not np.all(np.isfinite(dt)):
        raise InputError.single("dt", dt, "finite time steps in seconds")
    if max_step_s <= 0:
        raise InputError.single("max_step_s", max_step_s, "a positive substep length in seconds")
    n_sub = max(1, int(np.ceil(np.max(np.abs(dt) / _drag_step(x, dt, k, max_step_s))))) if dt.size else 1
    batch = x.shape[:-1]
    h = (dt / n_sub).reshape(-1)
    kh = 0.5 * np.broadcast_to(k, batch).reshape(-1)
    s = x.reshape(-1, 6).T.copy()  # (6, M) component-wise copy (never a view of x: updated in place)
    M = s.shape[1]
    Phi = np.broadcast_to(np.eye(6), (M, 6, 6)).copy() if want_F else None
    hk = (0.5 * h, 0.5 * h, h)  # stage offsets, as 0.5 * h * k1, 0.5 * h * k2, h * k3
    hk3 = tuple(a[:, None, None] for a in hk)
    h6 = h / 6.0
    K = np.empty((4, 6, M))
    KP = np.empty((4, M, 6, 6)) if want_F else [None] * 4
    for _ in range(n_sub):  # substeps, not trials or tracks
        st, Pt = s, Phi
        for j in range(4):
            _stage_soa(st, Pt, kh, K[j], KP[j])
            if j < 3:
                st = hk[j] * K[j]
                st += s
                if Phi is not None:
                    Pt = hk3[j] * KP[j]
                    Pt += Phi
        acc = 2.0 * K[1]
        acc += K[0]  # k1 + 2 k2 (addition commutes exactly)
        acc += 2.0 * K[2]
        acc += K[3]
        acc *= h6
        s += acc
        if Phi is not None:
            accP = 2.0 * KP[1]
            accP += KP[0]
            accP += 2.0 * KP[2]
            accP += KP[3]
            accP *= h6[:, None, None]
            Phi += accP
    x_out = np.ascontiguousarray(s.T).reshape(batch + (6,))
    return x_out, (None if Phi is None else Phi.reshape(batch + (6, 6)))


def in_atmosphere(x, dt, inv_beta=1.0 / NOMINAL_BALLISTIC_COEFF):
    """True where drag can matter during ``dt``, shape ``(...)``.

    Conservative test: at the lowest height the object can reach,
    :math:`h_{min} = h - 1.2\\,|\\mathbf v|\\,|\\Delta t|` (it cannot move further than
    its speed allows; 20 % margin for the gravity speed-up), the drag
    :math:`\\tfrac12\\rho(h_{min})|\\mathbf v|^2/\\beta` exceeds :data:`DRAG_NEGLIGIBLE`.
    Above :data:`sim.atmosphere.TOP_OF_ATMOSPHERE` the density is zero.
    """
    x = np.asarray(x, dtype=np.float64)
    v2 = np.sum(x[..., 3:] ** 2, axis=-1)
    reach = 1.2 * np.sqrt(v2) * np.abs(np.broadcast_to(np.asarray(dt, dtype=np.float64), v2.shape))
    h_min = height_fast(x[..., :3]) - reach
    out = np.atleast_1d(h_min < TOP_OF_ATMOSPHERE)
    if out.any():
        k = np.broadcast_to(np.asarray(inv_beta, dtype=np.float64), v2.shape).reshape(out.shape)
        hm, vv = h_min.reshape(out.shape), v2.reshape(out.shape)
        out[out] = 0.5 * density(hm[out]) * vv[out] * k[out] > DRAG_NEGLIGIBLE
    return out.reshape(v2.shape)


def _split(x, dt, k, want_F, max_step_s):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] != 6:
        raise InputError.single("x", x.shape, "an ECEF state array of shape (..., 6)")
    dt = np.broadcast_to(np.asarray(dt, dtype=np.float64), x.shape[:-1])
    k = np.broadcast_to(_kappa(k), x.shape[:-1])
    air = in_atmosphere(x, dt, k)
    if want_F:
        x_out, F = ballistic_transition(x, dt)
    else:
        x_out, F = ballistic_propagate(x, dt), None
    if air.any():
        xa, Fa = _rk4_drag(x[air], dt[air], k[air], want_F, max_step_s)
        x_out[air] = xa
        if want_F:
            F[air] = Fa
    return x_out, F


def drag_transition(x, dt, inv_beta=1.0 / NOMINAL_BALLISTIC_COEFF, max_step_s=DRAG_MAX_STEP_S):
    """Propagate ECEF states with gravity, frame terms and drag; return the transition Jacobian.

    Parameters
    ----------
    x : array_like, shape (..., 6)
        ECEF state (m, m/s).
    dt : float or array_like, shape (...)
        Time step, s (negative retrodicts).
    inv_beta : float or array_like, shape (...)
        :math:`1/\\beta`, m^2/kg (default the nominal RV, :data:`NOMINAL_BALLISTIC_COEFF`).
    max_step_s : float
        Largest RK4 substep inside the atmosphere, s.

    Returns
    -------
    x_pred : ndarray, shape (..., 6)
    F : ndarray, shape (..., 6, 6)
        :math:`\\partial x_{pred}/\\partial x` by the variational equation inside the
        atmosphere, by :func:`fusion.models.ballistic_transition` outside.

    Raises
    ------
    InputError
        Bad shapes, non-finite ``dt`` or negative ``inv_beta``.
    """
    return _split(x, dt, inv_beta, True, max_step_s)


def drag_propagate(x, dt, inv_beta=1.0 / NOMINAL_BALLISTIC_COEFF, max_step_s=DRAG_MAX_STEP_S):
    """Mean-only :func:`drag_transition`, ``(..., 6)``."""
    return _split(x, dt, inv_beta, False, max_step_s)[0]


def drag_process_noise(x0, x1, dt, inv_beta=1.0 / NOMINAL_BALLISTIC_COEFF, rel_sigma=BALLISTIC_COEFF_REL_SIGMA):
    """Process noise ``(..., 6, 6)`` of the unknown ballistic coefficient, along the velocity.

    Parameters
    ----------
    x0, x1 : array_like, shape (..., 6)
        State at the start and the (predicted) end of the step.
    dt : float or array_like, shape (...)
        Time step, s.
    inv_beta : float or array_like
        Nominal :math:`1/\\beta`, m^2/kg.
    rel_sigma : float
        Relative 1-sigma error of :math:`1/\\beta`.

    Returns
    -------
    ndarray, shape (..., 6, 6)
        Discrete white-noise-acceleration (piecewise constant over the step)
        covariance with :math:`\\sigma_a = \\sigma_{rel}\\max(|\\mathbf a_d(x_0)|, |\\mathbf a_d(x_1)|)`
        along the unit velocity :math:`\\hat u`:

        .. math::

            Q = \\sigma_a^2\\begin{bmatrix}\\tfrac{\\Delta t^4}{4} & \\tfrac{\\Delta t^3}{2}\\\\
                                        \\tfrac{\\Delta t^3}{2} & \\Delta t^2\\end{bmatrix}\\otimes\\hat u\\hat u^T

        (Bar-Shalom, Li & Kirubarajan 2001, sec. 6.3.2, eq. 6.3.2-4). A wrong
        :math:`\\beta` gives an acceleration error proportional to the drag,
        constant in sign over the step, hence the piecewise-constant form; the
        larger end-point drag covers its e-fold growth within a step of a steep re-entry.
    """
    x0 = np.asarray(x0, dtype=np.float64)
    x1 = np.asarray(x1, dtype=np.float64)
    a0 = np.sqrt(np.sum(drag_acceleration(x0, inv_beta) ** 2, axis=-1))
    a1 = np.sqrt(np.sum(drag_acceleration(x1, inv_beta) ** 2, axis=-1))
    sa2 = (float(rel_sigma) * np.maximum(a0, a1)) ** 2
    dt = np.broadcast_to(np.asarray(dt, dtype=np.float64), sa2.shape)
    v = x1[..., 3:]
    u = v / np.maximum(np.sqrt(np.sum(v * v, axis=-1, keepdims=True)), 1e-9)
    uu = u[..., :, None] * u[..., None, :]
    Q = np.zeros(sa2.shape + (6, 6))
    Q[..., :3, :3] = (sa2 * dt**4 / 4.0)[..., None, None] * uu
    Q[..., :3, 3:] = (sa2 * dt**3 / 2.0)[..., None, None] * uu
    Q[..., 3:, :3] = Q[..., :3, 3:]
    Q[..., 3:, 3:] = (sa2 * dt**2)[..., None, None] * uu
    return Q
