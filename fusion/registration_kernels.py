"""Sensor registration inside the compiled tracker: a two-stage (separate-bias) estimator, per trial.

Each radar ``s`` carries a constant bias vector of :data:`NB` components,
``b_s = [range m, azimuth rad, elevation rad, site east m, site north m, site up m]``:
an additive registration bias of its measurement and the error of its site (a ship's
navigation error; the radar is at ``site + R_enu^T delta`` but reports from ``site``).
A plot is

.. math::

    z = h(x;\\,\\text{site}) + C b + w,\\qquad
    C = [\\,0 \\cdots\\; I_3 \\;\\; -J_{enu} \\;\\cdots 0\\,]\\;(\\text{columns of } b_s),

to first order, with :math:`J_{enu} = \\partial(\\rho, a, \\epsilon)/\\partial(e, n, u)` at the
target (:func:`bias_columns`). One bias vector ``b`` (``nb = NB * n_sensors``) with
covariance ``Pb`` is shared by all the tracks of a trial.

**Method.** Friedland's separate-bias estimator (B. Friedland, "Treatment of bias in
recursive filtering", IEEE TAC 14(4), 1969, pp. 359-367), generalised to many targets
sharing one bias vector as in the multisensor-multitarget form of Lin, Bar-Shalom &
Kirubarajan ("Multisensor multitarget bias estimation for general asynchronous
sensors", IEEE TAES 41(3), 2005): each track keeps its *bias-free* filter
:math:`\\tilde x, \\tilde P` (the tracker's own IMM/EKF/UKF, untouched: it is the
filter that assumes ``b = 0``) and a sensitivity matrix :math:`V` (6, nb) so that the
bias-corrected estimate is

.. math::

    \\hat x = \\tilde x + V\\hat b,\\qquad P = \\tilde P + V P_b V^T .

Predict: :math:`V \\leftarrow F V` (``F`` the drag-ballistic transition Jacobian,
:func:`predict_sensitivity`). Update by a plot of radar ``s`` (:func:`bias_update`):

.. math::

    G = H V + C,\\quad \\tilde S = H\\tilde P H^T + R,\\quad
    \\nu = z - h(\\hat x) - C\\hat b \\;(= r - G\\hat b,\\; r \\text{ the bias-free innovation}),

    K_b = P_b G^T (G P_b G^T + \\tilde S)^{-1},\\quad \\hat b \\leftarrow \\hat b + K_b\\nu,\\quad
    P_b \\leftarrow P_b - K_b G P_b,

    K = \\tilde P H^T \\tilde S^{-1},\\quad V \\leftarrow V - K G

(Friedland 1969, the two-stage estimator with a constant bias; for many targets only the updated track's :math:`V`
changes, since the targets' bias-free filters are independent given ``b``). Gating and
the association cost use the corrected innovation :math:`\\nu` with
:math:`S = G P_b G^T + \\tilde S` (:func:`gate_measurement`: the plot and its noise are
shifted so that the tracker's own pair statistics compute exactly these).

**Approximations** (stated): for the IMM, ``V`` is carried on the combined estimate,
predicted with the ballistic mode's Jacobian and updated with the gain of the combined
prior (the mode-matched gains differ only while the thrust mode holds weight); the
nonlinear ``h`` is linearised at the corrected state :math:`\\hat x`; under JPDA*
(clusters of confirmed tracks sharing plots) ``V`` takes the probability-weighted
update :math:`V - (1-\\beta_0)KG` (exact for the moment-matched mixture, since ``K``
and ``G`` are the same for every hypothesis) and ``b`` is not updated; only confirmed
tracks update ``b`` (a tentative track may be a false alarm). The separate-bias
estimator equals the augmented-state filter (:mod:`fusion.registration`) for linear
models with constant biases (Friedland 1969; Ignagni, "An alternate derivation and extension of
Friedland's two-stage Kalman estimator", IEEE TAC 26, 1981); tests/test_registration_loop.py checks
the loop's estimates against known biases over 200 seeds.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fusion import kernel_cache  # noqa: F401  (first: drops stale cached machine code)
from fusion import motion_kernels as mk
from fusion import track_kernels as tk

NB = 6  # bias components per radar: range (m), azimuth (rad), elevation (rad), site east, north, up (m)
BIAS_NIS_GATE = 11.345  # chi-square 3 dof, 99 %: a plot updates the bias only if its corrected NIS is inside


@njit(cache=True)
def bias_columns(x, site, R_enu, block, C, H):
    """Measurement Jacobian ``H`` (3, 6) at ``x`` and the bias columns ``C`` (3, nb) of the radar in bias ``block``.

    ``block`` -1: ``C = 0`` (a radar with no bias to estimate).
    ``C[:, NB*block : NB*block+3] = I_3`` (additive range/angle bias) and
    ``C[:, NB*block+3 : NB*block+6] = -J_enu`` (site offset in ENU: the radar is at
    ``site + R_enu^T delta``, so :math:`z \\approx h(x) - J_{enu}\\delta`), with
    :math:`J_{enu} = H_{pos} R_{enu}^T` (:func:`fusion.track_kernels.radar_H`).
    """
    tk.radar_H(x, site, R_enu, H)
    C[:, :] = 0.0
    if block < 0:  # a radar whose biases are known to be zero: the plot carries no bias of its own
        return
    c0 = NB * block
    for i in range(3):
        C[i, c0 + i] = 1.0
        for m in range(3):
            s = 0.0
            for k in range(3):
                s += H[i, k] * R_enu[m, k]
            C[i, c0 + 3 + m] = -s


@njit(cache=True)
def corrected(xc, Pc, V, b, Pb, x_out, P_out):
    """Bias-corrected state :math:`\\tilde x + V\\hat b` and covariance :math:`\\tilde P + V P_b V^T`."""
    x_out[:] = xc + V @ b
    P_out[:, :] = Pc + V @ Pb @ V.T
    tk.symmetrize(P_out)


@njit(cache=True)
def predict_sensitivity(xc, dt, V):
    """:math:`V \\leftarrow F V`, ``F`` the drag-ballistic Jacobian over ``dt`` from the combined state ``xc``.

    :func:`fusion.motion_kernels.drag_transition` (Friedland 1969: the sensitivity
    follows the state transition; the bias is constant).
    """
    if dt == 0.0 or V.shape[1] == 0:
        return
    F = np.empty((6, 6))
    x1 = np.empty(6)
    mk.drag_transition(xc, dt, np.bool_(True), x1, F)
    V[:, :] = F @ V


@njit(cache=True)
def _innovation(xc, V, b, z, site, R_enu, block, xh, C, H, nu):
    """Corrected state ``xh``, ``C``, ``H`` at it, and :math:`\\nu = z - h(\\hat x) - C\\hat b` (azimuth wrapped)."""
    xh[:] = xc + V @ b
    bias_columns(xh, site, R_enu, block, C, H)
    hx = np.empty(3)
    tk.radar_hx(xh, site, R_enu, hx)
    hx += C @ b
    tk.radar_residual(z, hx, nu)


@njit(cache=True)
def gate_measurement(xc, V, b, Pb, z, R, site, R_enu, block, z_out, R_out):
    """Plot and noise for the tracker's own pair statistics so that they gate the corrected innovation.

    The pair statistics of track state ``x~`` compute :math:`z' - h(\\tilde x)` and
    :math:`H\\tilde PH^T + R'`; with :math:`z' = z - [h(\\hat x) + C\\hat b - h(\\tilde x)]`
    and :math:`R' = R + G P_b G^T` they are :math:`\\nu` and
    :math:`G P_b G^T + \\tilde S` (module notes; ``xc`` the combined bias-free state).
    Returns False when the geometry is degenerate (then ``z_out``, ``R_out`` are ``z``, ``R``).
    """
    nb = b.size
    xh = np.empty(6)
    C = np.empty((3, nb))
    H = np.empty((3, 6))
    nu = np.empty(3)
    _innovation(xc, V, b, z, site, R_enu, block, xh, C, H, nu)
    hx = np.empty(3)
    tk.radar_hx(xc, site, R_enu, hx)
    y = np.empty(3)
    tk.radar_residual(z, hx, y)  # z - h(x~)
    z_out[:] = z
    R_out[:, :] = R
    ok = True
    for i in range(3):
        ok = ok and math.isfinite(nu[i]) and math.isfinite(y[i])
    if not ok:
        return False
    for i in range(3):
        z_out[i] = z[i] - (y[i] - nu[i])
    z_out[1] = np.mod(z_out[1], 2.0 * np.pi)
    G = H @ V + C
    R_out += G @ Pb @ G.T
    tk.symmetrize(R_out)
    return True


@njit(cache=True)
def bias_update(xc, Pc, V, b, Pb, z, R, site, R_enu, block, update_bias, weight):
    """Two-stage update by one plot (module notes): ``b``, ``Pb`` (if ``update_bias``) and the track's ``V``.

    ``xc``, ``Pc`` are the track's bias-free combined prior; ``weight`` scales the
    sensitivity update :math:`V \\leftarrow V - w\\,KG` (1 for an assigned plot,
    :math:`1-\\beta_0` under JPDA*). The bias takes the plot only if its corrected
    NIS :math:`\\nu^T(GP_bG^T+\\tilde S)^{-1}\\nu` is within :data:`BIAS_NIS_GATE`: the
    shared bias must not absorb one track's model error (an overconfident track after
    a separation, a manoeuvre); ``V`` is updated in any case (it is the bias-free
    filter's bookkeeping). Returns False (nothing changed) when an innovation
    covariance is not positive definite.
    """
    nb = b.size
    xh = np.empty(6)
    C = np.empty((3, nb))
    H = np.empty((3, 6))
    nu = np.empty(3)
    _innovation(xc, V, b, z, site, R_enu, block, xh, C, H, nu)
    G = H @ V + C
    St = H @ Pc @ H.T + R
    tk.symmetrize(St)
    St_inv = np.empty((3, 3))
    ok, _ = tk.inv3_spd(St, St_inv)
    if not ok:
        return False
    if update_bias:
        PbG = Pb @ G.T  # (nb, 3)
        Sb = G @ PbG + St
        tk.symmetrize(Sb)
        Sb_inv = np.empty((3, 3))
        ok, _ = tk.inv3_spd(Sb, Sb_inv)
        ok = ok and math.isfinite(nu[0]) and math.isfinite(nu[1]) and math.isfinite(nu[2])
        if ok and nu @ Sb_inv @ nu <= BIAS_NIS_GATE:
            Kb = PbG @ Sb_inv
            b += Kb @ nu
            Pb -= Kb @ PbG.T
            tk.symmetrize(Pb)
    K = Pc @ H.T @ St_inv
    V -= weight * (K @ G)
    return True


@njit(cache=True)
def initial_sensitivity(x0, site, R_enu, block, V):
    """Sensitivity of a one-point start :math:`\\tilde x_0 = g(z)`: :math:`V = -[H_{pos}^{-1}C;\\,0]`.

    From :math:`h(x) = z - Cb - w`: the converted position moves by
    :math:`-H_{pos}^{-1}Cb` with the bias; the zero velocity prior does not.
    """
    nb = V.shape[1]
    C = np.empty((3, nb))
    H = np.empty((3, 6))
    bias_columns(x0, site, R_enu, block, C, H)
    V[:, :] = 0.0
    Hp = np.ascontiguousarray(H[:, :3])
    if not (math.isfinite(Hp[0, 0]) and abs(np.linalg.det(Hp)) > 0.0):
        return
    Hi = np.linalg.inv(Hp)
    V[:3, :] = -(Hi @ C)


@njit(cache=True)
def batch_sensitivity(x, P, tz, tg, n, blocks, sites, R_enus, Rs, V):
    """Sensitivity of a batch least-squares start to the biases: :math:`V = -P\\sum_i A_i^T R_i^{-1} C_i`.

    The fit :math:`x = (\\sum A_i^TR_i^{-1}A_i)^{-1}\\sum A_i^TR_i^{-1}(z_i - \\dots)`
    (:func:`fusion.initiation.batch_fit`, covariance ``P``) moves by
    :math:`-P\\sum_iA_i^TR_i^{-1}C_ib` when plot ``i`` carries :math:`C_ib`;
    :math:`A_i = H_i\\Phi_i`, with the constant-velocity :math:`\\Phi_i` from ``tg`` to
    ``tz[i]`` (the fit spans a few scans; the gravity-gradient term is below 1e-4 of it)
    and ``H_i`` at the fitted position carried back to ``tz[i]``.
    """
    nb = V.shape[1]
    acc = np.zeros((6, nb))
    C = np.empty((3, nb))
    H = np.empty((3, 6))
    xi = np.empty(6)
    Ri = np.empty((3, 3))
    for i in range(n):
        dt = tz[i] - tg
        for a in range(3):
            xi[a] = x[a] + dt * x[3 + a]
            xi[3 + a] = x[3 + a]
        bias_columns(xi, sites[i], R_enus[i], blocks[i], C, H)
        ok, _ = tk.inv3_spd(Rs[i], Ri)
        if not ok:
            continue
        A = np.empty((3, 6))
        for a in range(3):
            for m in range(3):
                A[a, m] = H[a, m]
                A[a, 3 + m] = dt * H[a, m]
        acc += A.T @ Ri @ C
    V[:, :] = -(P @ acc)
