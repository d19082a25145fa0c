"""Track-to-track fusion: a nation's tracks combined with the track reports it receives.

Where a policy shares ``tracks`` (:mod:`fusion.network`), each receiving nation gets
the tracks of the sending nations' own pictures (from the detections each sender
tracks with: its own radars' and those it receives as measurements; never its
track-fused picture), every ``interval`` seconds and ``latency`` seconds late. A
report carries the sender's state, covariance, thrust-mode probability and the
bitmask of the sensors whose data it holds. At each output time the latest report is
predicted to that time with the sender's motion model (:func:`predict_reports`),
associated with the local tracks by chi-square gating on the state difference and
global nearest neighbour (GNN), and fused by one of three rules:

``covariance-intersection``
    Julier & Uhlmann (1997): consistent for *any* unknown cross-correlation of the
    two estimates (here: the common process noise of one target seen by two trackers).
``naive``
    The information-weighted combination that assumes independent errors; optimal
    when they are, over-confident when they are not.
``best-track``
    Keep the estimate with the smaller covariance trace.

A remote track that associates with no local track becomes a fused-output track of
its own: the nation learns of a threat it cannot see itself, the point of sharing.

Data incest
-----------
A report whose sensor bitmask shares a sensor with the track it is fused into (the
receiver's own radars, relayed back through a hub that tracked with them, or a third
nation's data that reached the receiver over two routes) holds information the track
already has: their errors are correlated through the common measurements, and the
``naive`` rule would count them twice. Such pairs are fused by covariance intersection
whatever the rule (Julier & Uhlmann 1997: consistent for any cross-correlation;
``best-track`` combines nothing and is kept). The exact alternative, decorrelating the
common information (subtracting it once, the information-matrix form of Chong, Mori &
Chang, "Distributed multitarget multisensor tracking", in Bar-Shalom (ed.),
*Multitarget-Multisensor Tracking: Advanced Applications*, 1990, ch. 8; Bar-Shalom,
Willett & Tian 2011, sec. 9.4), needs the common part, which a receiver of another
nation's track reports does not have.

Everything is batched over the leading axes (trials, tracks, time); the only Python
loops run over the routes, over the matrix dimension in :func:`fusion.kalman.inv_spd`,
over golden-section iterations, and over the (few) trial-time cells whose gating is
ambiguous and need :func:`scipy.optimize.linear_sum_assignment`.

References
----------
S. J. Julier, J. K. Uhlmann, "A non-divergent estimation algorithm in the presence of
unknown correlations", Proc. American Control Conference, 1997.
Y. Bar-Shalom, P. Willett, X. Tian, *Tracking and Data Fusion*, YBS Publishing, 2011,
ch. 9 (track-to-track association and fusion; eq. 9.3.2-1 the association test).
W. Niehsen, "Information fusion based on fast covariance intersection filtering",
Proc. FUSION 2002 (the trace and determinant criteria).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from fusion.association import gate_threshold as _gate_threshold
from fusion.association import gnn_assign
from fusion.kalman import cholesky_spd, inv_spd, mahalanobis2, symmetrize
from sim.config import TRACK_FUSION_RULES
from sim.errors import InputError

if TYPE_CHECKING:  # the dataclass lives with the tracker; this module only reads and rebuilds it
    from fusion.tracker import TrackHistory

__all__ = [
    "gate_threshold",
    "association_d2",
    "naive_fusion",
    "covariance_intersection",
    "ci_weight",
    "best_track",
    "fuse_pair",
    "associate_gnn",
    "predict_reports",
    "delayed_reports",
    "fuse_track_histories",
]

_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0  # 0.618..., golden-section ratio
_GOLDEN_ITERATIONS = 60  # bracket shrinks to 0.618**60 ~ 3e-13 of [0, 1]
_PAIR_BLOCK = 4_000_000  # candidate (trial, base, remote, time) cells examined at once: bounds memory


# --------------------------------------------------------------------------- pairwise kernels


def gate_threshold(gate_probability: float, dim: int = 6) -> float:
    """Chi-square gate :math:`\\gamma` with :math:`P(\\chi^2_{dim} \\le \\gamma) = ` ``gate_probability``.

    The tracker's :func:`fusion.association.gate_threshold` with the state dimension
    (6) as default: the track-to-track statistic has ``dim`` degrees of freedom.

    Raises
    ------
    InputError
        If ``gate_probability`` is not in (0, 1) (key ``tracker.gate_probability``).
    """
    return _gate_threshold(gate_probability, dim)


def association_d2(xa, Pa, xb, Pb, gamma: float | None = None):
    """Track-to-track association statistic on the state difference.

    .. math::

        \\Delta = \\hat x_a - \\hat x_b,\\qquad T = P_a + P_b,\\qquad d^2 = \\Delta^T T^{-1}\\Delta

    :math:`\\chi^2_n` under the hypothesis that both tracks follow the same target with
    independent errors (Bar-Shalom, Willett & Tian 2011, eq. 9.3.2-1 with the
    cross-covariance neglected, as it is unknown to a receiver of shared tracks).

    Parameters
    ----------
    xa, xb : array_like, shape (..., n)
    Pa, Pb : array_like, shape (..., n, n)
    gamma : float, optional
        Gate. For ``n = 6`` pairs whose position part alone exceeds it,
        :math:`\\Delta_p^T T_{pp}^{-1}\\Delta_p > \\gamma`, get ``inf`` without the 6-D
        solve: the marginal statistic never exceeds the joint one (the Schur
        complement of :math:`T_{pp}` is positive definite), so they fail the gate anyway.

    Returns
    -------
    d2 : ndarray, shape (...)
        ``inf`` where :math:`T` is not positive definite, a state is not finite, or
        (with ``gamma``) the pair is certainly outside the gate.

    Notes
    -----
    :math:`d^2 = \\lVert L^{-1}\\Delta\\rVert^2` with :math:`T = LL^T` (LAPACK Cholesky,
    falling back to the flag-aware :func:`fusion.kalman.cholesky_spd` if some
    :math:`T` is not positive definite); the position pre-gate uses the closed-form
    3x3 inverse of :func:`fusion.kalman.inv_spd`.
    """
    d = np.asarray(xa, dtype=np.float64) - xb
    T = np.asarray(Pa, dtype=np.float64) + Pb
    batch = np.broadcast_shapes(d.shape[:-1], T.shape[:-2])
    d = np.broadcast_to(d, batch + d.shape[-1:])
    T = np.broadcast_to(T, batch + T.shape[-2:])
    d2 = np.full(batch, np.inf)
    todo = np.all(np.isfinite(d), axis=-1) & np.all(np.isfinite(T), axis=(-2, -1))
    if gamma is not None and d.shape[-1] == 6:
        Tpp_inv, okp = inv_spd(T[..., :3, :3])
        with np.errstate(invalid="ignore"):
            dp2 = mahalanobis2(d[..., :3], Tpp_inv)
        todo &= okp & (dp2 <= gamma)
    Tk, dk = T[todo], d[todo]
    try:
        L = np.linalg.cholesky(Tk)
        ok = np.ones(Tk.shape[:-2], dtype=bool)
    except np.linalg.LinAlgError:
        L, ok = cholesky_spd(Tk)
    y = np.linalg.solve(L, dk[..., None])[..., 0]
    d2[todo] = np.where(ok, np.sum(y * y, axis=-1), np.inf)
    return d2


def naive_fusion(xa, Pa, xb, Pb):
    """Fusion assuming independent errors (the information sum).

    .. math::

        P = (P_a^{-1} + P_b^{-1})^{-1},\\qquad \\hat x = P(P_a^{-1}\\hat x_a + P_b^{-1}\\hat x_b),

    computed in the equivalent gain form :math:`K = P_a(P_a+P_b)^{-1}`,
    :math:`\\hat x = \\hat x_a + K(\\hat x_b - \\hat x_a)`, :math:`P = P_a - K P_a`, which needs
    one inverse (Bar-Shalom, Willett & Tian 2011, eq. 9.3.3-5 without cross-covariance).

    Parameters
    ----------
    xa, xb : array_like, shape (..., n)
    Pa, Pb : array_like, shape (..., n, n)

    Returns
    -------
    x : ndarray, shape (..., n)
    P : ndarray, shape (..., n, n)
        Where :math:`P_a + P_b` is not positive definite, ``(xa, Pa)``.
    """
    xa = np.asarray(xa, dtype=np.float64)
    Pa = np.asarray(Pa, dtype=np.float64)
    T_inv, ok = inv_spd(Pa + Pb)
    K = Pa @ T_inv
    x = xa + (K @ (np.asarray(xb, dtype=np.float64) - xa)[..., None])[..., 0]
    P = symmetrize(Pa - K @ Pa)
    return np.where(ok[..., None], x, xa), np.where(ok[..., None, None], P, Pa)


def _joint_diagonalization(Pa, Pb):
    """:math:`B, \\lambda` with :math:`P_a = B B^T`, :math:`P_b = B\\,\\mathrm{diag}(\\lambda)B^T`.

    :math:`P_a = LL^T` (Cholesky), :math:`L^{-1}P_bL^{-T} = V\\Lambda V^T` (symmetric
    eigendecomposition), :math:`B = LV` (simultaneous diagonalisation, Golub & Van Loan
    2013, sec. 8.7). ``ok`` False where either matrix is not positive definite.
    """
    L, ok = cholesky_spd(Pa)
    L_inv = np.linalg.inv(L)
    M = symmetrize(L_inv @ Pb @ np.swapaxes(L_inv, -1, -2))
    M = np.where(np.isfinite(M), M, 0.0)
    lam, V = np.linalg.eigh(M)
    ok = ok & np.all(lam > 0.0, axis=-1)
    return L @ V, np.where(ok[..., None], lam, 1.0), ok


def _ci_objective(w, c, lam, criterion):
    """Trace (:math:`\\sum_i c_i\\lambda_i/(w\\lambda_i + 1 - w)`) or log-det of :math:`P_{CI}(w)`, up to a constant."""
    w = w[..., None]
    g = w * lam + (1.0 - w)  # eigenvalues of lambda_i * P_CI(w)^-1 in the joint basis, > 0 on [0, 1]
    if criterion == "trace":
        return np.sum(c * lam / g, axis=-1)
    return np.sum(np.log(lam) - np.log(g), axis=-1)


def ci_weight(Pa, Pb, criterion: str = "trace"):
    """Covariance-intersection weight :math:`\\omega\\in[0, 1]` minimising the trace or determinant.

    Parameters
    ----------
    Pa, Pb : array_like, shape (..., n, n)
        Positive-definite covariances.
    criterion : {"trace", "det"}

    Returns
    -------
    w : ndarray, shape (...)
        Weight of ``Pa``'s information (NaN where either matrix is not positive definite).

    Notes
    -----
    In the basis :math:`B` that diagonalises both (:math:`P_a = BB^T`,
    :math:`P_b = B\\Lambda B^T`), :math:`P_{CI}(\\omega) = B\\,\\mathrm{diag}\\big(\\lambda_i/(\\omega\\lambda_i
    + 1 - \\omega)\\big)B^T`, so :math:`\\mathrm{tr}\\,P_{CI} = \\sum_i \\lVert b_i\\rVert^2
    \\lambda_i/(\\omega\\lambda_i + 1-\\omega)` and :math:`\\log\\det P_{CI} = \\log\\det P_a +
    \\sum_i[\\log\\lambda_i - \\log(\\omega\\lambda_i + 1 - \\omega)]`. Both are convex in
    :math:`\\omega` (the inverse and the negative log-determinant are convex on
    positive-definite matrices), so a vectorised golden-section search on [0, 1]
    finds the minimum (Kiefer 1953) to :math:`3\\times10^{-13}`. The tests compare it
    with :func:`scipy.optimize.minimize_scalar` on the defining formula.
    """
    B, lam, ok = _joint_diagonalization(np.asarray(Pa, dtype=np.float64), np.asarray(Pb, dtype=np.float64))
    w = _golden_weight(B, lam, criterion)
    return np.where(ok, w, np.nan)


def _golden_weight(B, lam, criterion):
    if criterion not in ("trace", "det"):
        raise InputError.single("ci_criterion", criterion, "'trace' or 'det'")
    c = np.sum(B * B, axis=-2)  # squared column norms ||b_i||^2
    lo = np.zeros(lam.shape[:-1])
    hi = np.ones(lam.shape[:-1])
    x1 = hi - _GOLDEN * (hi - lo)
    x2 = lo + _GOLDEN * (hi - lo)
    f1 = _ci_objective(x1, c, lam, criterion)
    f2 = _ci_objective(x2, c, lam, criterion)
    for _ in range(_GOLDEN_ITERATIONS):
        left = f1 < f2  # the minimum lies in [lo, x2]: drop (x2, hi]; else drop [lo, x1)
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        x1n = np.where(left, hi - _GOLDEN * (hi - lo), x2)
        x2n = np.where(left, x1, lo + _GOLDEN * (hi - lo))
        fn = _ci_objective(np.where(left, x1n, x2n), c, lam, criterion)
        f1, f2 = np.where(left, fn, f2), np.where(left, f1, fn)
        x1, x2 = x1n, x2n
    w = 0.5 * (lo + hi)
    # the interior search cannot return an end point exactly; compare with both ends
    cand = np.stack([w, np.zeros_like(w), np.ones_like(w)], axis=-1)
    f = _ci_objective(cand, c[..., None, :], lam[..., None, :], criterion)
    return np.take_along_axis(cand, np.argmin(f, axis=-1)[..., None], axis=-1)[..., 0]


def covariance_intersection(xa, Pa, xb, Pb, criterion: str = "trace"):
    """Covariance intersection of two estimates with unknown cross-correlation.

    .. math::

        P^{-1} = \\omega P_a^{-1} + (1-\\omega)P_b^{-1},\\qquad
        \\hat x = P\\big(\\omega P_a^{-1}\\hat x_a + (1-\\omega)P_b^{-1}\\hat x_b\\big),

    with :math:`\\omega` minimising :math:`\\mathrm{tr}\\,P` or :math:`\\det P`
    (:func:`ci_weight`; Julier & Uhlmann 1997, eq. 5-6). Consistent (:math:`P` bounds the
    true error covariance) whatever the correlation of the inputs.

    Parameters
    ----------
    xa, xb : array_like, shape (..., n)
    Pa, Pb : array_like, shape (..., n, n)
        Positive-definite covariances.
    criterion : {"trace", "det"}

    Returns
    -------
    x : ndarray, shape (..., n)
    P : ndarray, shape (..., n, n)
    w : ndarray, shape (...)
        Weight of ``a``. Where either covariance is not positive definite the input
        with the smaller trace is returned and ``w`` is NaN.
    """
    xa = np.asarray(xa, dtype=np.float64)
    xb = np.asarray(xb, dtype=np.float64)
    Pa = np.asarray(Pa, dtype=np.float64)
    Pb = np.asarray(Pb, dtype=np.float64)
    B, lam, ok = _joint_diagonalization(Pa, Pb)
    w = _golden_weight(B, lam, criterion)
    # In the joint basis y = B^-1 x the informations are diag(1) and diag(1/lambda).
    B_inv = np.linalg.inv(np.where(ok[..., None, None], B, np.eye(B.shape[-1])))
    ya = (B_inv @ xa[..., None])[..., 0]
    yb = (B_inv @ xb[..., None])[..., 0]
    wk = w[..., None]
    info = wk + (1.0 - wk) / lam
    y = (wk * ya + (1.0 - wk) * yb / lam) / info
    x = (B @ y[..., None])[..., 0]
    P = symmetrize((B / info[..., None, :]) @ np.swapaxes(B, -1, -2))
    xbest, Pbest = best_track(xa, Pa, xb, Pb)
    return (np.where(ok[..., None], x, xbest), np.where(ok[..., None, None], P, Pbest),
            np.where(ok, w, np.nan))


def best_track(xa, Pa, xb, Pb):
    """The estimate with the smaller covariance trace (``a`` on ties or NaN traces).

    Parameters
    ----------
    xa, xb : array_like, shape (..., n)
    Pa, Pb : array_like, shape (..., n, n)

    Returns
    -------
    x : ndarray, shape (..., n)
    P : ndarray, shape (..., n, n)
    """
    xa = np.asarray(xa, dtype=np.float64)
    Pa = np.asarray(Pa, dtype=np.float64)
    take_b = np.trace(Pb, axis1=-2, axis2=-1) < np.trace(Pa, axis1=-2, axis2=-1)
    return (np.where(take_b[..., None], xb, xa), np.where(take_b[..., None, None], Pb, Pa))


def fuse_pair(xa, Pa, xb, Pb, rule: str, ci_criterion: str = "trace"):
    """Fuse two estimates of one target by ``rule`` (one of :data:`sim.config.TRACK_FUSION_RULES`).

    Returns ``(x, P)`` with shapes ``(..., n)`` and ``(..., n, n)``; see
    :func:`covariance_intersection`, :func:`naive_fusion`, :func:`best_track`.

    Raises
    ------
    InputError
        Unknown rule (key ``sharing.track_fusion``).
    """
    if rule == "covariance-intersection":
        x, P, _ = covariance_intersection(xa, Pa, xb, Pb, ci_criterion)
        return x, P
    if rule == "naive":
        return naive_fusion(xa, Pa, xb, Pb)
    if rule == "best-track":
        return best_track(xa, Pa, xb, Pb)
    raise InputError.single("sharing.track_fusion", rule, "one of: " + ", ".join(TRACK_FUSION_RULES))


# --------------------------------------------------------------------------- association


def associate_gnn(cell, a, b, d2, gamma):
    """Global-nearest-neighbour assignment of candidate track pairs, independently per cell.

    Parameters
    ----------
    cell : ndarray of int, shape (K,)
        Cell id of each candidate pair (e.g. ``trial * T + time``): pairs of different
        cells never compete.
    a, b : ndarray of int, shape (K,)
        Track indices on the two sides (< 2**20 each).
    d2 : ndarray, shape (K,)
        Association statistic (:func:`association_d2`), the assignment cost.
    gamma : float
        Gate: pairs with ``d2 > gamma`` are never assigned.

    Returns
    -------
    ndarray of int
        Sorted indices into the K candidates of the assigned pairs: at most one per ``a``
        and per ``b`` in each cell, the largest number of gated pairs and, among such
        assignments, the least summed ``d2``.

    Notes
    -----
    The gated pairs go to :func:`fusion.association.gnn_assign` (the tracker's GNN:
    cells without competing pairs assigned directly, vectorised; only contested cells
    through :func:`scipy.optimize.linear_sum_assignment`, Blackman & Popoli 1999,
    sec. 6.5.1).
    """
    cell = np.asarray(cell, dtype=np.int64)
    gated = np.flatnonzero(np.asarray(d2) <= gamma)
    if gated.size == 0:
        return gated
    c = cell[gated]
    # keys unique over the whole batch, one side each
    assigned = gnn_assign((c << 20) + a[gated], (c << 20) + b[gated], np.asarray(d2)[gated], c)
    return gated[assigned]


# --------------------------------------------------------------------------- delayed reports


REPORT_THRUST_MIN = 1e-6  # thrust-mode probability below which a report is predicted by the ballistic
#                           mode alone: leaving out a mode of weight w shifts the mean by w times the modes'
#                           spread (< 2 km over a 10-s report age) and its covariance by w times its square,
#                           < 4 m^2 here against report position variances of 100 m^2 and more (numerical)


def _grouped(fn, key, *args):
    """``fn(*args[m])`` over the groups of equal ``key``, results scattered back in order.

    The RK4 propagators take one substep count per call, the largest of the batch;
    grouping by each element's own count makes an element's result, to the bit,
    independent of the other elements of the batch (as the compiled tracker,
    :mod:`fusion.loop`, gets by propagating each track alone).
    """
    out = None
    for kv in np.unique(key):  # distinct substep counts (a few), not reports
        m = np.nonzero(key == kv)[0]
        res = fn(*(a[m] for a in args))
        if out is None:
            out = tuple(np.empty((key.size,) + r.shape[1:]) for r in res)
        for o, r in zip(out, res):
            o[m] = r
    return out


def predict_reports(x, P, thrust_prob, dt, q: float):
    """Predict track reports with the sender's motion model, the tracker's IMM.

    A report is the sender's combined estimate :math:`(\\hat x, P)` at its report time and
    its thrust-mode probability :math:`\\mu_T`. From that single Gaussian the IMM prediction
    (Bar-Shalom, Li & Kirubarajan 2001, sec. 11.6.6: mixing, mode-matched prediction,
    eq. 11.6.6-16/17 combination) is

    .. math::

        \\bar c_T = \\mu_T p_{TT} + (1-\\mu_T) p_{BT},\\quad
        \\hat x_j, P_j = f_j(\\hat x, \\Delta t),\\ F_jPF_j^T + Q_j,\\quad
        \\hat x = \\sum_j \\bar c_j\\hat x_j,\\
        P = \\sum_j \\bar c_j\\big(P_j + (\\hat x_j - \\hat x)(\\hat x_j - \\hat x)^T\\big)

    with the modes of :mod:`fusion.tracker`'s IMM: thrusting
    (:func:`fusion.models.thrust_transition` at :data:`fusion.tracker.IMM_THRUST_ACCEL`,
    white-noise acceleration :data:`fusion.tracker.IMM_THRUST_NOISE`) and ballistic with
    drag of a nominal ballistic coefficient (:func:`fusion.drag.drag_transition`,
    :func:`fusion.models.process_noise` of ``q`` plus :func:`fusion.drag.drag_process_noise`),
    and its mode dwell times. The single-model filters (``ekf``, ``ukf``) have no thrust
    mode (``thrust_prob`` NaN, read as 0): the drag model alone. Where :math:`\\bar c_T` <
    :data:`REPORT_THRUST_MIN` the thrust mode is left out.

    Parameters
    ----------
    x : ndarray, shape (n, 6)
        Reported ECEF states, m and m/s.
    P : ndarray, shape (n, 6, 6)
    thrust_prob : ndarray, shape (n,)
        Thrust-mode probability :math:`\\mu_T` in [0, 1] (NaN read as 0).
    dt : ndarray, shape (n,)
        Age of each report at the time it is used, s (>= 0).
    q : float
        Ballistic-mode process-noise PSD, m^2/s^3.

    Returns
    -------
    x : ndarray, shape (n, 6)
    P : ndarray, shape (n, 6, 6)

    Notes
    -----
    Without the drag mode a Hwasong-15 report 5-9 s old in the last seconds of
    re-entry was km off with a 2-sigma of tens of metres (median NEES 3,400 against 6 in
    the last 5 s, measured, 2 trials); without the thrust mode a boost-phase report
    from the ROK was off by its unmodelled 5-9 s of thrust (median NEES 135-456 against
    6 before burnout).
    """
    from fusion.drag import drag_process_noise, drag_transition, substeps_needed
    from fusion.models import process_noise, thrust_transition
    from fusion.tracker import (
        IMM_BALLISTIC_DWELL,
        IMM_BOOST_DWELL,
        IMM_THRUST_ACCEL,
        IMM_THRUST_MIN_DIRECTION_SPEED,
        IMM_THRUST_NOISE,
    )

    x = np.asarray(x, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    dt = np.asarray(dt, dtype=np.float64)
    mu = np.nan_to_num(np.asarray(thrust_prob, dtype=np.float64), nan=0.0)
    if x.shape[0] == 0:
        return x.copy(), P.copy()
    nb, nd = substeps_needed(x, dt)

    def ballistic(x0, P0, d):
        x1, F = drag_transition(x0, d)
        Q = process_noise(d, q) + drag_process_noise(x0, x1, d)
        return x1, F @ P0 @ np.swapaxes(F, -1, -2) + Q

    def thrust(x0, P0, d):
        x1, F = thrust_transition(x0, d, IMM_THRUST_ACCEL, min_direction_speed=IMM_THRUST_MIN_DIRECTION_SPEED)
        return x1, F @ P0 @ np.swapaxes(F, -1, -2) + process_noise(d, IMM_THRUST_NOISE**2)

    xb, Pb = _grouped(ballistic, nb * (int(nd.max()) + 1) + nd, x, P, dt)
    # Markov mode switch over the report's age (the tracker's exponential dwell times)
    p_tb = -np.expm1(-np.abs(dt) / IMM_BOOST_DWELL)
    p_bt = -np.expm1(-np.abs(dt) / IMM_BALLISTIC_DWELL)
    c_t = mu * (1.0 - p_tb) + (1.0 - mu) * p_bt
    m = np.nonzero(c_t >= REPORT_THRUST_MIN)[0]
    if m.size:
        xt, Pt = _grouped(thrust, nb[m], x[m], P[m], dt[m])
        c = np.stack([c_t[m], 1.0 - c_t[m]], axis=-1)
        from fusion.imm import imm_combine

        xc, Pc = imm_combine(np.stack([xt, xb[m]], axis=-2), np.stack([Pt, Pb[m]], axis=-3), c)
        xb[m], Pb[m] = xc, Pc
    return xb, symmetrize(Pb, out=Pb)


def delayed_reports(hist: "TrackHistory", t, latency: float, interval: float, q: float,
                    transition: Callable | None = None, noise: Callable | None = None, out=None):
    """What a receiver knows of a sender's tracks at each output time.

    At output time :math:`t` the latest report is the sender's estimate at
    :math:`s = \\lfloor (t - L)/I\\rfloor I` (reports every :math:`I` s since the epoch,
    arriving :math:`L` s later; :math:`s = t - L` for :math:`I = 0`), taken at the
    latest grid time :math:`t_k \\le s`, and predicted to :math:`t` over the report's
    age :math:`t - t_k`: by default with the sender's own motion model
    (:func:`predict_reports`: the tracker's IMM of thrusting and drag-ballistic modes,
    from the report's thrust-mode probability ``hist.thrust_prob``, which a report
    carries with its state and covariance), or with a given
    single model, :math:`\\hat x = f(\\hat x_k, t - t_k)`, :math:`P = F P_k F^T + Q(t - t_k)`.
    Only tracks confirmed at :math:`t_k` are reported.

    Parameters
    ----------
    hist : TrackHistory
        Sender's own-sensor tracks, ``x`` (trials, R, T, 6), on the grid ``t``.
    t : array_like, shape (T,)
        Output grid, s.
    latency, interval : float
        Route latency and report interval, s (>= 0).
    q : float
        Process-noise power spectral density of the prediction, m^2/s^3
        (:func:`fusion.models.process_noise`).
    transition, noise : callable, optional
        A single motion model ``transition(x, dt) -> (x_pred, F)`` and ``noise(dt, q) -> Q``
        instead of :func:`predict_reports` (both must be given).
    out : tuple of ndarray (x, P), optional
        NaN-filled arrays of the result shapes to write into (saves a copy).

    Returns
    -------
    x : ndarray, shape (trials, R, T, 6)
        Predicted report, NaN where none (before the first arrival, or no confirmed track).
    P : ndarray, shape (trials, R, T, 6, 6)
    obj : ndarray of int32, shape (trials, R, T)
    sensors : ndarray of uint64, shape (trials, R, T)
    """
    if (transition is None) != (noise is None):
        raise ValueError("delayed_reports: give both transition and noise, or neither")
    t = np.asarray(t, dtype=np.float64)
    if not (np.isfinite(latency) and latency >= 0 and np.isfinite(interval) and interval >= 0):
        raise InputError.single("latency/interval", (latency, interval), "finite seconds >= 0")
    s = t - latency
    if interval > 0:
        s = np.floor(s / interval + 1e-9) * interval  # tolerance: t - L on a multiple of I despite rounding
    span = max(float(t[-1] - t[0]), 1.0) if t.size else 1.0
    k = np.searchsorted(t, s + 1e-9 * span, side="right") - 1
    have = k >= 0
    k = np.clip(k, 0, None)
    n, R = hist.x.shape[:2]
    shape = (n, R, t.size)
    x = np.full(shape + (6,), np.nan) if out is None else out[0]
    P = np.full(shape + (6, 6), np.nan) if out is None else out[1]
    # gather only the reported tracks: the full (trials, R, T, 6, 6) gather would dominate the cost
    live = hist.confirmed[:, :, k] & have
    tr, r, ti = np.nonzero(live)
    x_k = hist.x[tr, r, k[ti]]
    P_k = hist.P[tr, r, k[ti]]
    good = np.all(np.isfinite(x_k), axis=-1) & np.all(np.isfinite(P_k), axis=(-2, -1))
    if not good.all():
        tr, r, ti, x_k, P_k = tr[good], r[good], ti[good], x_k[good], P_k[good]
        live[:] = False
        live[tr, r, ti] = True
    if tr.size:
        dt = t[ti] - t[k[ti]]
        if transition is None:
            mu = getattr(hist, "thrust_prob", None)
            mu_k = np.zeros(tr.size) if mu is None else mu[tr, r, k[ti]]
            xl, Pl = predict_reports(x_k, P_k, mu_k, dt, q)
        else:
            xl, Fl = transition(x_k, dt)
            Pl = symmetrize(Fl @ P_k @ np.swapaxes(Fl, -1, -2) + noise(dt, q))
        x[tr, r, ti] = xl
        P[tr, r, ti] = Pl
    obj = np.where(live, hist.object[:, :, k], -1).astype(np.int32)
    sensors = np.where(live, hist.sensors[:, :, k], 0).astype(np.uint64)
    return x, P, obj, sensors


# --------------------------------------------------------------------------- pipeline


def _candidate_pairs(fa, fb):
    """(trial, a, b, time) indices where both tracks exist, examined in time blocks."""
    n, A, T = fa.shape
    B = fb.shape[1]
    step = max(1, _PAIR_BLOCK // max(1, n * A * B))
    out = []
    for t0 in range(0, T, step):  # loop over time blocks only
        m = fa[:, :, None, t0:t0 + step] & fb[:, None, :, t0:t0 + step]
        tr, ia, ib, ti = np.nonzero(m)
        out.append((tr, ia, ib, ti + t0))
    return tuple(np.concatenate(c) for c in zip(*out)) if out else (np.zeros(0, int),) * 4


def fuse_track_histories(local: "TrackHistory",
                         remote: Sequence[tuple["TrackHistory", float, float]],
                         rule: str, gate_probability: float, *, q: float = 1.0,
                         ci_criterion: str = "trace", transition: Callable | None = None,
                         noise: Callable | None = None) -> "TrackHistory":
    """A nation's fused track picture: its own tracks plus the track reports it receives.

    Parameters
    ----------
    local : TrackHistory
        The nation's own tracks, ``x`` (trials, L, T, 6) on the grid ``local.t``.
    remote : sequence of (TrackHistory, latency, interval)
        Each sending nation's *own-sensor* tracks (the isolated picture, same trials and
        grid) with the route's latency and report interval in s
        (:func:`fusion.network.track_routes`).
    rule : str
        ``"covariance-intersection"``, ``"naive"`` or ``"best-track"``.
    gate_probability : float
        Association gate probability in (0, 1); gate :math:`\\chi^2_6` quantile.
    q : float
        Process-noise power spectral density for predicting reports, m^2/s^3 (the
        tracker's: ``tracker.process_noise ** 2``).
    ci_criterion : {"trace", "det"}
        What the covariance-intersection weight minimises.
    transition, noise : callable, optional
        Motion model for predicting reports (default the ECEF ballistic model of
        :mod:`fusion.models`); see :func:`delayed_reports`.

    Returns
    -------
    TrackHistory
        ``dataclasses.replace`` of ``local`` (same class, other fields kept), tracks ``L + sum(R_k)``: slot ``i < L`` is local track
        ``i`` (fused with the report associated with it at each time), then one slot per
        remote track of each route, in order, holding that report at the times it
        associates with no earlier slot (NaN otherwise). ``confirmed`` is True for a
        local track confirmed or fused with a (confirmed) report, and for a
        free-standing report; ``object`` the local one (the report's where the local
        has none); ``sensors`` the union of the fused tracks' bitmasks; ``coasting``
        the local track's where it took no report, else False.

    Raises
    ------
    InputError
        Unknown rule or gate probability outside (0, 1).
    ValueError
        Remote histories on another grid or with other trials.

    Notes
    -----
    Routes are fused one after the other: reports of route ``k`` are associated (by
    :func:`association_d2`, the :math:`\\chi^2_6` gate and :func:`associate_gnn`) with
    every slot holding a track after routes ``< k``, so two senders' reports of a
    target the receiver cannot see make one track, not two. Association is made
    afresh at every output time (no track-to-track association memory). Fused tracks
    are not re-shared: senders' reports are the tracks of their own pictures. A pair
    whose sensor bitmasks overlap (the report holds data the track already has: data
    incest) is fused by covariance intersection even under ``naive`` (module notes).
    """
    if rule not in TRACK_FUSION_RULES:
        raise InputError.single("sharing.track_fusion", rule, "one of: " + ", ".join(TRACK_FUSION_RULES))
    gamma = gate_threshold(gate_probability, local.x.shape[-1])
    t = np.asarray(local.t, dtype=np.float64)
    n, L, T = local.x.shape[:3]
    for h, _, _ in remote:
        if h.x.shape[0] != n or h.x.shape[2] != T or not np.array_equal(np.asarray(h.t), t):
            raise ValueError("remote TrackHistory must have the local trials and time grid: "
                             f"x {h.x.shape} vs {local.x.shape}")
    total = L + sum(h.x.shape[1] for h, _, _ in remote)
    X = np.full((n, total, T, 6), np.nan)
    P = np.full((n, total, T, 6, 6), np.nan)
    conf = np.zeros((n, total, T), dtype=bool)
    obj = np.full((n, total, T), -1, dtype=np.int32)
    sens = np.zeros((n, total, T), dtype=np.uint64)
    X[:, :L], P[:, :L] = local.x, local.P
    conf[:, :L], obj[:, :L], sens[:, :L] = local.confirmed, local.object, local.sensors
    coast = np.zeros((n, total, T), dtype=bool)
    if getattr(local, "coasting", None) is not None:
        coast[:, :L] = local.coasting
    used = L
    for hist, latency, interval in remote:
        R = hist.x.shape[1]
        sl = slice(used, used + R)
        # reports are written straight into their own slots; those that join a track are removed below
        xr, Pr, objr, sensr = delayed_reports(hist, t, latency, interval, q, transition, noise,
                                              out=(X[:, sl], P[:, sl]))
        rem_live = np.all(np.isfinite(xr), axis=-1)
        conf[:, sl], obj[:, sl], sens[:, sl] = rem_live, objr, sensr
        base_live = np.all(np.isfinite(X[:, :used]), axis=-1)
        tr, ia, ib, ti = _candidate_pairs(base_live, rem_live)
        d2 = association_d2(X[tr, ia, ti], P[tr, ia, ti], xr[tr, ib, ti], Pr[tr, ib, ti], gamma)
        sel = associate_gnn(tr * T + ti, ia, ib, d2, gamma)
        tr, ia, ib, ti = tr[sel], ia[sel], ib[sel], ti[sel]
        xf, Pf = fuse_pair(X[tr, ia, ti], P[tr, ia, ti], xr[tr, ib, ti], Pr[tr, ib, ti], rule, ci_criterion)
        if rule == "naive":  # data incest: a pair with common sensors is correlated, fused by CI (module notes)
            common = np.nonzero((sens[tr, ia, ti] & sensr[tr, ib, ti]) != 0)[0]
            if common.size:
                c = (tr[common], ia[common], ti[common])
                xf[common], Pf[common], _ = covariance_intersection(X[c], P[c], xr[tr[common], ib[common], ti[common]],
                                                                    Pr[tr[common], ib[common], ti[common]], ci_criterion)
        X[tr, ia, ti], P[tr, ia, ti] = xf, Pf
        conf[tr, ia, ti] = True
        coast[tr, ia, ti] = False  # a fused track took the sender's estimate: not coasting on its own
        obj[tr, ia, ti] = np.where(obj[tr, ia, ti] >= 0, obj[tr, ia, ti], objr[tr, ib, ti])
        sens[tr, ia, ti] |= sensr[tr, ib, ti]
        # reports that joined a track leave their own slot; the others stand on their own:
        # a threat the receiver cannot see itself
        jb = used + ib
        X[tr, jb, ti], P[tr, jb, ti] = np.nan, np.nan
        conf[tr, jb, ti], obj[tr, jb, ti], sens[tr, jb, ti] = False, -1, 0
        used += R
    # same class and every other field (e.g. the tracker's counters) as the local history
    extra = {}
    if getattr(local, "thrust_prob", None) is not None:
        # The receiver's own thrust belief stays on its slots; a report standing alone carries none (NaN):
        # the metrics then judge its phase as a tracker without a thrust mode (fusion.metrics).
        thr = np.full((n, total, T), np.nan)
        thr[:, :L] = local.thrust_prob
        extra["thrust_prob"] = thr
    if getattr(local, "coasting", None) is not None:
        extra["coasting"] = coast
    return dataclasses.replace(local, x=X, P=P, confirmed=conf, object=obj, sensors=sens, **extra)
