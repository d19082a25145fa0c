"""Batched linear / extended Kalman filter kernels.

Every function works on any leading batch shape (trials, tracks, modes, ...):
state ``x`` is ``(..., n)``, covariance ``P`` is ``(..., n, n)``, a measurement
``z`` is ``(..., m)`` with noise covariance ``R`` ``(..., m, m)`` and Jacobian
``H`` ``(..., m, n)``. Leading axes broadcast (e.g. one ``R`` or ``F`` for all
tracks). No Python loop runs over the batch; the only loops are over the
matrix dimension (at most ``m`` iterations) in the generic Cholesky path.

The predict and update equations are the textbook ones,

.. math::

    \\hat x_{k|k-1} = f(\\hat x_{k-1|k-1}) \\;(= F\\hat x_{k-1|k-1}),\\qquad
    P_{k|k-1} = F P_{k-1|k-1} F^T + Q

    y = z - h(\\hat x_{k|k-1}),\\quad S = H P H^T + R,\\quad K = P H^T S^{-1}

    \\hat x_{k|k} = \\hat x_{k|k-1} + K y,\\qquad
    P_{k|k} = (I - K H) P_{k|k-1} (I - K H)^T + K R K^T

with the covariance update in Joseph form, which keeps :math:`P` positive
semi-definite for any gain and under rounding (Bar-Shalom, Li & Kirubarajan,
*Estimation with Applications to Tracking and Navigation*, 2001, eq. 5.2.3-18;
the same form as filterpy's ``KalmanFilter.update`` and
``ExtendedKalmanFilter.update``).

The innovation covariance is inverted in closed form for ``m = 3`` (adjugate
over determinant, with Sylvester's criterion as the positive-definiteness
test) and by a batched Cholesky factorisation otherwise; no general matrix
inverse runs in the hot loop. Where ``S`` is not positive definite, or the
measurement is not finite, the update of that element is skipped (its prior
is returned unchanged) and its ``ok`` flag is False.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sim.errors import InputError

__all__ = [
    "UpdateResult",
    "predict",
    "update",
    "update_full",
    "update_with_gain",
    "innovation",
    "innovation_covariance",
    "inv_spd",
    "cholesky_spd",
    "log_det_spd",
    "mahalanobis2",
    "gaussian_log_likelihood",
    "symmetrize",
    "BallisticAerEKF",
]

_LOG_2PI = np.log(2.0 * np.pi)


class UpdateResult(NamedTuple):
    """Result of :func:`update_full`.

    Attributes
    ----------
    x : ndarray, shape (..., n)
        Posterior state (the prior where ``ok`` is False).
    P : ndarray, shape (..., n, n)
        Posterior covariance, symmetric (the prior where ``ok`` is False).
    y : ndarray, shape (..., m)
        Innovation :math:`z - h(x)` (through ``residual``).
    S : ndarray, shape (..., m, m)
        Innovation covariance :math:`H P H^T + R`.
    d2 : ndarray, shape (...)
        Squared Mahalanobis distance :math:`y^T S^{-1} y` (``inf`` where not ``ok``).
    ok : ndarray of bool, shape (...)
        True where the update was applied: ``S`` positive definite and ``z`` finite.
    """

    x: np.ndarray
    P: np.ndarray
    y: np.ndarray
    S: np.ndarray
    d2: np.ndarray
    ok: np.ndarray


def symmetrize(P, out=None):
    """Return :math:`(P + P^T)/2` for ``(..., n, n)`` arrays (removes rounding asymmetry)."""
    Pt = np.swapaxes(P, -1, -2)
    out = np.add(P, Pt, out=out)
    out *= 0.5
    return out


def _T(A):
    """Contiguous transpose of the last two axes (numpy's batched matmul is ~5x slower on a transposed view)."""
    return np.ascontiguousarray(np.swapaxes(A, -1, -2))


def _check_square(name, A):
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise InputError.single(name, A.shape, "an array of shape (..., n, n)")


def predict(x, P, F, Q, fx=None):
    """Kalman prediction of mean and covariance.

    Parameters
    ----------
    x : array_like, shape (..., n)
        Posterior state at the previous time.
    P : array_like, shape (..., n, n)
        Its covariance.
    F : array_like, shape (..., n, n)
        State transition matrix (the Jacobian of the motion model for the EKF).
    Q : array_like, shape (..., n, n)
        Process noise covariance over the step.
    fx : array_like, shape (..., n), optional
        Already propagated mean :math:`f(x)` (EKF). Default :math:`F x`.

    Returns
    -------
    x_pred : ndarray, shape (..., n)
    P_pred : ndarray, shape (..., n, n)
        :math:`F P F^T + Q`, exactly symmetric.

    Raises
    ------
    InputError
        If ``P`` or ``F`` are not square matrices.

    References
    ----------
    Bar-Shalom et al. 2001, eq. 5.2.3-5 and 5.2.3-7 (linear); sec. 10.3.2 (EKF).
    """
    x = np.asarray(x, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    F = np.asarray(F, dtype=np.float64)
    _check_square("P", P)
    _check_square("F", F)
    if fx is None:
        x_pred = (F @ x[..., None])[..., 0]
    else:
        x_pred = np.array(fx, dtype=np.float64, copy=True)
    P_pred = (F @ P) @ _T(F)
    P_pred += Q
    return x_pred, symmetrize(P_pred, out=P_pred)


def innovation(z, hx, residual=None):
    """Innovation :math:`y = z - h(x)`; ``residual(z, hx)`` if given (e.g. angle wrapping)."""
    if residual is None:
        return np.asarray(z, dtype=np.float64) - hx
    return residual(z, hx)


def innovation_covariance(P, H, R):
    """Innovation covariance :math:`S = H P H^T + R`, shape ``(..., m, m)``, exactly symmetric.

    Parameters
    ----------
    P : array_like, shape (..., n, n)
    H : array_like, shape (..., m, n)
    R : array_like, shape (..., m, m)

    References
    ----------
    Bar-Shalom et al. 2001, eq. 5.2.3-9.
    """
    H = np.asarray(H, dtype=np.float64)
    S = H @ (P @ _T(H))
    S += R
    return symmetrize(S, out=S)


def cholesky_spd(A):
    """Batched lower Cholesky factor with a per-element positive-definiteness flag.

    Parameters
    ----------
    A : array_like, shape (..., m, m)
        Symmetric matrices (only the lower triangle is read).

    Returns
    -------
    L : ndarray, shape (..., m, m)
        Lower-triangular with :math:`L L^T = A` where ``ok``; the identity where not.
    ok : ndarray of bool, shape (...)
        True where ``A`` is finite and positive definite (every pivot > 0).

    Notes
    -----
    Cholesky-Banachiewicz, row by row (Golub & Van Loan, *Matrix Computations*,
    4th ed., 2013, alg. 4.2.1), vectorised over the batch; unlike
    ``numpy.linalg.cholesky`` one bad matrix does not fail the whole batch.
    """
    A = np.asarray(A, dtype=np.float64)
    _check_square("A", A)
    m = A.shape[-1]
    L = np.zeros(A.shape)
    ok = np.all(np.isfinite(A), axis=(-2, -1))
    for i in range(m):
        for j in range(i + 1):
            s = A[..., i, j] - np.sum(L[..., i, :j] * L[..., j, :j], axis=-1)
            if i == j:
                ok &= s > 0.0
                L[..., i, i] = np.sqrt(np.where(ok, s, 1.0))
            else:
                L[..., i, j] = s / L[..., j, j]
    if not ok.all():
        L[~ok] = np.eye(m)
    return L, ok


def _inv_from_cholesky(L):
    """:math:`A^{-1} = L^{-T} L^{-1}` from a batched lower Cholesky factor (forward substitution)."""
    m = L.shape[-1]
    Linv = np.zeros(L.shape)
    for i in range(m):
        Linv[..., i, i] = 1.0 / L[..., i, i]
        for j in range(i):
            s = np.sum(L[..., i, j:i] * Linv[..., j:i, j], axis=-1)
            Linv[..., i, j] = -s * Linv[..., i, i]
    return np.swapaxes(Linv, -1, -2) @ Linv


def inv_spd(S):
    """Inverse of symmetric positive-definite matrices, with a positive-definiteness flag.

    Parameters
    ----------
    S : array_like, shape (..., m, m)
        Symmetric matrices (innovation covariances).

    Returns
    -------
    S_inv : ndarray, shape (..., m, m)
        :math:`S^{-1}`, symmetric, where ``ok``; the identity where not.
    ok : ndarray of bool, shape (...)
        True where ``S`` is finite and positive definite.

    Notes
    -----
    For ``m = 3`` the inverse is the adjugate over the determinant (cofactors
    of a symmetric matrix, Cramer's rule) and positive definiteness is tested
    by Sylvester's criterion: :math:`S_{00} > 0`, :math:`S_{00}S_{11} - S_{01}^2 > 0`,
    :math:`\\det S > 0`. For ``m = 1`` it is ``1/S``. Otherwise the inverse comes
    from the Cholesky factor (:func:`cholesky_spd`).
    """
    S = np.asarray(S, dtype=np.float64)
    _check_square("S", S)
    m = S.shape[-1]
    if m == 3:
        a, b, c = S[..., 0, 0], S[..., 0, 1], S[..., 0, 2]
        d, e, f = S[..., 1, 1], S[..., 1, 2], S[..., 2, 2]
        # cofactors of the symmetric matrix [[a b c] [b d e] [c e f]]
        A00 = d * f - e * e
        A01 = c * e - b * f
        A02 = b * e - c * d
        A11 = a * f - c * c
        A12 = b * c - a * e
        A22 = a * d - b * b
        det = a * A00 + b * A01 + c * A02
        ok = (a > 0.0) & (A22 > 0.0) & (det > 0.0) & np.isfinite(det)
        inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        S_inv = np.empty(S.shape)
        S_inv[..., 0, 0] = A00 * inv_det
        S_inv[..., 0, 1] = S_inv[..., 1, 0] = A01 * inv_det
        S_inv[..., 0, 2] = S_inv[..., 2, 0] = A02 * inv_det
        S_inv[..., 1, 1] = A11 * inv_det
        S_inv[..., 1, 2] = S_inv[..., 2, 1] = A12 * inv_det
        S_inv[..., 2, 2] = A22 * inv_det
        if not ok.all():
            S_inv[~ok] = np.eye(3)
        return S_inv, ok
    if m == 1:
        s = S[..., 0, 0]
        ok = (s > 0.0) & np.isfinite(s)
        S_inv = np.where(ok, 1.0 / np.where(ok, s, 1.0), 1.0)[..., None, None]
        return S_inv, ok
    L, ok = cholesky_spd(S)
    S_inv = _inv_from_cholesky(L)
    return symmetrize(S_inv, out=S_inv), ok


def log_det_spd(S):
    """:math:`\\log\\det S` of symmetric positive-definite ``(..., m, m)`` matrices (NaN where not PD).

    Closed form for ``m = 3``, Cholesky (:math:`2\\sum\\log L_{ii}`) otherwise.
    """
    S = np.asarray(S, dtype=np.float64)
    if S.shape[-1] == 3:
        a, b, c = S[..., 0, 0], S[..., 0, 1], S[..., 0, 2]
        d, e, f = S[..., 1, 1], S[..., 1, 2], S[..., 2, 2]
        det = a * (d * f - e * e) + b * (c * e - b * f) + c * (b * e - c * d)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(det > 0.0, np.log(np.where(det > 0.0, det, 1.0)), np.nan)
    L, ok = cholesky_spd(S)
    diag = np.diagonal(L, axis1=-2, axis2=-1)
    return np.where(ok, 2.0 * np.sum(np.log(diag), axis=-1), np.nan)


def mahalanobis2(y, S_inv):
    """Squared Mahalanobis distance :math:`d^2 = y^T S^{-1} y`.

    Parameters
    ----------
    y : array_like, shape (..., m)
        Innovations.
    S_inv : array_like, shape (..., m, m)
        Inverse innovation covariances (:func:`inv_spd`).

    Returns
    -------
    ndarray, shape (...)
        Chi-square distributed with ``m`` degrees of freedom for a consistent
        filter (Bar-Shalom et al. 2001, sec. 5.4.2), the gating statistic.
    """
    y = np.asarray(y, dtype=np.float64)
    return np.sum((S_inv @ y[..., None])[..., 0] * y, axis=-1)


def gaussian_log_likelihood(d2, S):
    """Log of the Gaussian innovation density :math:`\\mathcal N(y; 0, S)` from ``d2 = y^T S^{-1} y``.

    :math:`\\log\\Lambda = -\\tfrac12\\big(d^2 + \\log\\det S + m\\log 2\\pi\\big)`
    (Bar-Shalom et al. 2001, eq. 11.6.6-13, the IMM mode likelihood). Shape ``(...)``.
    """
    m = np.shape(S)[-1]
    return -0.5 * (d2 + log_det_spd(S) + m * _LOG_2PI)


def update_with_gain(x, P, y, S_inv, H, R, PHT=None, ok=None):
    """Kalman update from an innovation and inverse innovation covariance already computed.

    Lets a tracker compute ``y``, ``S`` and ``S_inv`` once for gating and reuse
    them for the update.

    Parameters
    ----------
    x : array_like, shape (..., n)
        Prior state.
    P : array_like, shape (..., n, n)
        Prior covariance.
    y : array_like, shape (..., m)
        Innovation :math:`z - h(x)`.
    S_inv : array_like, shape (..., m, m)
        Inverse innovation covariance.
    H : array_like, shape (..., m, n)
        Measurement matrix / Jacobian at the prior.
    R : array_like, shape (..., m, m)
        Measurement noise covariance.
    PHT : array_like, shape (..., n, m), optional
        :math:`P H^T` if already computed.
    ok : array_like of bool, shape (...), optional
        Where False, the prior is returned unchanged, bit for bit, whatever
        ``y``, ``S_inv``, ``H`` or ``PHT`` hold there (NaN at the zenith included).

    Returns
    -------
    x_post : ndarray, shape (..., n)
        :math:`x + K y`, :math:`K = P H^T S^{-1}`.
    P_post : ndarray, shape (..., n, n)
        Joseph form :math:`(I-KH)P(I-KH)^T + K R K^T`, exactly symmetric
        (the prior where ``ok`` is False).

    References
    ----------
    Bar-Shalom et al. 2001, eq. 5.2.3-11, 5.2.3-12 and 5.2.3-18 (Joseph form).
    """
    x = np.asarray(x, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.shape[-1]
    if PHT is None:
        PHT = P @ _T(H)
    K = PHT @ S_inv
    x_post = x + (K @ y[..., None])[..., 0]
    I_KH = K @ H
    np.negative(I_KH, out=I_KH)
    diag = np.einsum("...ii->...i", I_KH)  # writable view of the diagonal
    diag += 1.0
    P_post = (I_KH @ P) @ _T(I_KH)
    P_post += (K @ R) @ _T(K)
    symmetrize(P_post, out=P_post)
    if ok is not None:
        ok = np.asarray(ok, dtype=bool)
        if not ok.all():
            # Select the prior rather than zero the gain: at the zenith H holds NaN, and NaN x 0 is NaN.
            x_post = np.where(ok[..., None], x_post, x)
            P_post = np.where(ok[..., None, None], P_post, P)
    return x_post, P_post


def update_full(x, P, z, R, hx, H, residual=None):
    """Kalman / EKF update returning everything a tracker needs for gating and bookkeeping.

    Parameters
    ----------
    x : array_like, shape (..., n)
        Prior state.
    P : array_like, shape (..., n, n)
        Prior covariance.
    z : array_like, shape (..., m)
        Measurements. Non-finite entries (NaN, inf) reject the element's update.
    R : array_like, shape (..., m, m)
        Measurement noise covariance.
    hx : array_like, shape (..., m)
        Predicted measurement :math:`h(x)` (``H @ x`` for a linear model).
    H : array_like, shape (..., m, n)
        Measurement matrix or Jacobian of ``h`` at ``x``.
    residual : callable ``(z, hx) -> y``, optional
        Innovation function (e.g. :func:`fusion.models.radar_residual`, which
        wraps azimuth to (-pi, pi]). Default ``z - hx``.

    Returns
    -------
    UpdateResult
        ``(x, P, y, S, d2, ok)``; where ``ok`` is False (``S`` not positive
        definite, or ``z``/``hx`` not finite) ``x`` and ``P`` are the prior and
        ``d2`` is ``inf``.

    References
    ----------
    Bar-Shalom et al. 2001, sec. 5.2.3 (KF) and 10.3.2 (EKF); Joseph form eq. 5.2.3-18.
    """
    x = np.asarray(x, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    finite = np.all(np.isfinite(z), axis=-1) & np.all(np.isfinite(hx), axis=-1)
    y = innovation(z, hx, residual)
    PHT = P @ _T(H)
    S = H @ PHT
    S += R
    symmetrize(S, out=S)
    S_inv, ok = inv_spd(S)
    ok = ok & finite
    y_safe = np.where(ok[..., None], y, 0.0)
    d2 = np.where(ok, mahalanobis2(y_safe, S_inv), np.inf)
    x_post, P_post = update_with_gain(x, P, y_safe, S_inv, H, R, PHT=PHT, ok=ok)
    return UpdateResult(x_post, P_post, y, S, d2, ok)


def update(x, P, z, R, hx, H, residual=None):
    """Kalman / EKF update, Joseph form; returns ``(x, P)``.

    Same as :func:`update_full` (see there for shapes, the skip rule and
    references) without the innovation statistics.
    """
    res = update_full(x, P, z, R, hx, H, residual)
    return res.x, res.P


class BallisticAerEKF:
    """Fused batched EKF step: ballistic J2 prediction plus one AER radar update, with reused buffers.

    The same equations as :func:`predict` with :func:`fusion.models.ballistic_transition`
    followed by :func:`update_full` with :func:`fusion.models.radar_hx`,
    :func:`fusion.models.radar_H` and :func:`fusion.models.radar_residual`
    (Joseph form, Bar-Shalom et al. 2001 eq. 5.2.3-18), arranged for speed:

    * mean, :math:`F` and the measurement model are computed on component
      arrays ``(M,)`` (structure of arrays), one vectorised line per entry;
    * :math:`F` is stored transposed, :math:`G = F^T`, so that
      :math:`P^- = (G^T P) G` is two stacked matmuls with contiguous or
      first-operand-transposed operands (numpy's fast cases);
    * the AER Jacobian is :math:`H = [H_r\\;0]`, so with :math:`U^T = H_r P_{r\\cdot}`
      (3x6), :math:`S = U^T_{\\cdot r} H_r^T + R`, :math:`K = U S^{-1}` and
      :math:`K^T = S^{-1} U^T`, the Joseph form is
      :math:`T = P - K U^T`, :math:`P^+ = T + (K R - T_{\\cdot r} H_r^T) K^T`
      (algebraically :math:`(I - KH) P (I - KH)^T + K R K^T`);
    * every ``(M, 6, 6)`` intermediate lives in a buffer allocated once per
      batch size: fresh multi-megabyte temporaries are returned to the OS by
      glibc and page-faulted back on every call, which cost as much as the
      arithmetic.

    Parameters
    ----------
    dt : float
        Time step (s), the same for every track (per-track steps: use the
        generic :func:`predict` / :func:`update_full`).
    Q : array_like, shape (6, 6)
        Process noise over the step (e.g. :func:`fusion.models.process_noise`).
    R : array_like, shape (3, 3)
        AER measurement noise covariance (m^2, rad^2).
    site_ecef : array_like, shape (3,)
        Radar position, ECEF (m).
    R_enu : array_like, shape (3, 3)
        ECEF-to-ENU rotation at the radar.
    max_step_s : float
        Largest RK4 substep (s), as in :func:`fusion.models.ballistic_transition`.
    workers : int
        Threads over contiguous slices of the batch (default 1). Every track's
        arithmetic is its own (stacked matmuls and element-wise operations), so the
        result is bit for bit that of one thread; numpy releases the GIL inside
        those loops, so two workers use both cores of a 2-core machine. Batches
        smaller than ``MIN_TRACKS_PER_WORKER`` per worker run in the calling thread.

    Raises
    ------
    InputError
        Non-finite ``dt``, ``Q`` not (6, 6), ``R`` not (3, 3) or ``workers`` < 1.

    Notes
    -----
    Not thread-safe (the buffers are shared between calls of one instance).
    """

    MIN_TRACKS_PER_WORKER = 2048  # below this a thread hand-off costs more than it saves

    def __init__(self, dt, Q, R, site_ecef, R_enu, max_step_s=None, workers=1):
        from fusion import models  # local: models does not import this module, but keep the kernels import-light

        self._models = models
        self.dt = float(dt)
        if not np.isfinite(self.dt):
            raise InputError.single("dt", dt, "a finite time step in seconds")
        max_step_s = models.MAX_STEP_S if max_step_s is None else float(max_step_s)
        self.n_sub = max(1, int(np.ceil(abs(self.dt) / max_step_s)))
        self.h = self.dt / self.n_sub
        self.Q = np.asarray(Q, dtype=np.float64)
        self.R = np.asarray(R, dtype=np.float64)
        _check_square("Q", self.Q)
        _check_square("R", self.R)
        if self.Q.shape != (6, 6) or self.R.shape != (3, 3):
            raise InputError.single("Q, R", (self.Q.shape, self.R.shape), "Q (6, 6) and R (3, 3)")
        self._q_idx = [(i, j, self.Q[i, j]) for i in range(6) for j in range(6) if self.Q[i, j] != 0.0]
        self.site = np.asarray(site_ecef, dtype=np.float64).reshape(3)
        self.R_enu = np.asarray(R_enu, dtype=np.float64).reshape(3, 3)
        self._n = -1
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise InputError.single("workers", workers, "an integer >= 1")
        self.workers = int(workers)
        self._args = (dt, Q, R, site_ecef, R_enu, max_step_s)
        self._parts = None  # one single-thread kernel (own buffers) per worker, made on first use
        self._pool = None

    def _buffers(self, n):
        if n != self._n:
            self._Fsoa = np.empty((6, 6, n))
            self._G = np.empty((n, 6, 6))
            self._X = np.empty((n, 6, 6))
            self._P = np.empty((n, 6, 6))
            self._T = np.empty((n, 6, 6))
            self._H = np.empty((n, 3, 3))
            self._HT = np.empty((n, 3, 3))
            self._UT = np.empty((n, 3, 6))
            self._S = np.empty((n, 3, 3))
            self._K = np.empty((n, 6, 3))
            self._KT = np.empty((n, 3, 6))
            self._V = np.empty((n, 6, 3))
            self._n = n

    def step(self, x, P, z):
        """Predict every track over ``dt`` and update it with its measurement.

        Parameters
        ----------
        x : ndarray, shape (M, 6)
            ECEF states (m, m/s); overwritten with the posterior.
        P : ndarray, shape (M, 6, 6)
            Covariances; overwritten with the posterior (exactly symmetric).
        z : array_like, shape (M, 3)
            AER measurements [range m, azimuth rad, elevation rad]; a
            non-finite entry (or a non-positive-definite ``S``) skips that
            track's update (its posterior is the prediction, ``ok`` False).

        Returns
        -------
        UpdateResult
            ``x`` and ``P`` are the (overwritten) input arrays; ``y``, ``S``,
            ``d2`` and ``ok`` as in :func:`update_full`.

        Raises
        ------
        InputError
            If ``x``, ``P`` or ``z`` have the wrong shape or are not float64 C-contiguous arrays.
        """
        if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == 6 and x.dtype == np.float64
                and x.flags.c_contiguous):
            raise InputError.single("x", getattr(x, "shape", x), "a C-contiguous float64 array (M, 6)")
        n = x.shape[0]
        if not (isinstance(P, np.ndarray) and P.shape == (n, 6, 6) and P.dtype == np.float64 and P.flags.c_contiguous):
            raise InputError.single("P", getattr(P, "shape", P), f"a C-contiguous float64 array ({n}, 6, 6)")
        z = np.asarray(z, dtype=np.float64)
        if z.shape != (n, 3):
            raise InputError.single("z", z.shape, f"an AER array ({n}, 3)")
        k = min(self.workers, n // self.MIN_TRACKS_PER_WORKER)
        if k > 1:
            return self._step_threaded(x, P, z, k)
        return self._step(x, P, z)

    def _step_threaded(self, x, P, z, k):
        """:meth:`_step` on ``k`` contiguous slices in ``k`` threads; results joined in order."""
        from concurrent.futures import ThreadPoolExecutor

        if self._parts is None:
            self._parts = [BallisticAerEKF(*self._args) for _ in range(self.workers)]
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gsomia-ekf")
        edges = np.linspace(0, x.shape[0], k + 1).astype(np.int64)
        futures = [self._pool.submit(self._parts[i]._step, x[a:b], P[a:b], z[a:b])
                   for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]
        parts = [f.result() for f in futures]
        return UpdateResult(x, P, *(np.concatenate([getattr(r, name) for r in parts]) for name in ("y", "S", "d2", "ok")))

    def _step(self, x, P, z):
        """The fused step on one contiguous batch (validated by :meth:`step`), in this thread."""
        n = x.shape[0]
        self._buffers(n)
        G, X, Pp, T, Hm, HT, UT, S, K, KT, V = (self._G, self._X, self._P, self._T, self._H, self._HT,
                                                 self._UT, self._S, self._K, self._KT, self._V)
        # ---- predict: x^- = f(x), P^- = F P F^T + Q with G = F^T
        xp, Fsoa = self._models._ballistic_rk4_soa(x, self.h, self.n_sub, True, self._Fsoa)
        np.copyto(G, Fsoa.transpose(2, 1, 0))
        np.matmul(np.swapaxes(G, 1, 2), P, out=X)  # F P
        np.matmul(X, G, out=Pp)  # F P F^T (symmetrised once, on the posterior below)
        for i, j, q in self._q_idx:
            Pp[:, i, j] += q
        # ---- AER measurement model on components (sensors.geometry.measure / measurement_jacobian)
        enu = self.R_enu @ (xp[:, :3] - self.site).T  # (3, M)
        e, nn, u = enu[0], enu[1], enu[2]
        s2 = e * e
        s2 += nn * nn
        s = np.sqrt(s2)
        rho2 = s2 + u * u
        rho = np.sqrt(rho2)
        hx = np.empty((n, 3))
        hx[:, 0] = rho
        hx[:, 1] = np.mod(np.arctan2(e, nn), 2.0 * np.pi)
        hx[:, 2] = np.arctan2(u, s)
        inv_rho = 1.0 / rho
        inv_s2 = 1.0 / s2
        den = -1.0 / (rho2 * s)
        ue = u * den
        J = ((e * inv_rho, nn * inv_rho, u * inv_rho),
             (nn * inv_s2, -e * inv_s2, None),
             (ue * e, ue * nn, s / rho2))
        Re = self.R_enu
        for i in range(3):
            for j in range(3):
                hij = J[i][0] * Re[0, j]
                hij += J[i][1] * Re[1, j]
                if J[i][2] is not None:
                    hij += J[i][2] * Re[2, j]
                Hm[:, i, j] = hij
                HT[:, j, i] = hij
        # ---- update (Joseph form through U^T = H P)
        np.matmul(Hm, Pp[:, :3, :], out=UT)
        np.matmul(UT[:, :, :3], HT, out=S)
        S += self.R
        symmetrize(S, out=S)
        S_inv, ok = inv_spd(S)
        finite = np.isfinite(z.sum(axis=1) + hx.sum(axis=1))  # NaN/inf anywhere propagates
        ok &= finite
        y = self._models.radar_residual(z, hx)
        y_safe = y if ok.all() else np.where(ok[:, None], y, 0.0)
        np.matmul(np.swapaxes(UT, 1, 2), S_inv, out=K)
        np.matmul(S_inv, UT, out=KT)
        if not ok.all():
            K *= ok[:, None, None]
            KT *= ok[:, None, None]
        Sy = (S_inv @ y_safe[:, :, None])[:, :, 0]
        d2 = np.where(ok, np.einsum("ni,ni->n", Sy, y_safe), np.inf)
        np.add(xp, (K @ y_safe[:, :, None])[:, :, 0], out=x)
        np.matmul(K, UT, out=X)
        np.subtract(Pp, X, out=T)  # T = (I - K H) P
        np.matmul(K.reshape(-1, 3), self.R, out=V.reshape(-1, 3))
        V -= T[:, :, :3] @ HT  # K R - T H^T
        np.matmul(V, KT, out=X)
        X += T
        np.add(X, np.swapaxes(X, 1, 2), out=P)
        P *= 0.5
        if not ok.all():
            # A skipped update keeps the prediction whatever H holds (NaN at the zenith; NaN x 0 is NaN).
            skip = ~ok
            x[skip] = xp[skip]
            P[skip] = 0.5 * (Pp[skip] + np.swapaxes(Pp[skip], 1, 2))
        return UpdateResult(x, P, y, S.copy(), d2, ok)
