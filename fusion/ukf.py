"""Batched unscented Kalman filter with Merwe scaled sigma points and angle-aware AER statistics.

Sigma points, weights and their order are those of filterpy's
``MerweScaledSigmaPoints(n, alpha, beta, kappa)`` with its default
``scipy.linalg.cholesky`` (upper) square root, so results match filterpy's
``UnscentedKalmanFilter`` on the same inputs:

.. math::

    \\lambda = \\alpha^2 (n + \\kappa) - n,\\qquad U^T U = (n + \\lambda) P

    \\chi_0 = x,\\quad \\chi_{k+1} = x + U_{k,:},\\quad \\chi_{n+k+1} = x - U_{k,:}
    \\quad (k = 0..n-1)

    W^m_0 = \\frac{\\lambda}{n+\\lambda},\\quad
    W^c_0 = W^m_0 + 1 - \\alpha^2 + \\beta,\\quad
    W^m_i = W^c_i = \\frac{1}{2(n+\\lambda)}

(van der Merwe, *Sigma-Point Kalman Filters for Probabilistic Inference in
Dynamic State-Space Models*, PhD thesis, 2004, sec. 3.2; the rows of the upper
factor :math:`U` are the columns of the lower factor :math:`L = U^T`).

As in filterpy, the update draws fresh sigma points from the predicted
``(x, P)``. The covariance update is in Joseph form on the statistically
linearised measurement (Zanetti & DeMars 2013): algebraically filterpy's
:math:`P - K S K^T`, but positive semi-definite under rounding, where
:math:`P - K S K^T` cancels every digit when a precise measurement meets a
large prior (see :func:`ukf_update`). For AER measurements
the mean of the sigma-point measurements uses a circular mean for azimuth
(:func:`aer_mean`) and the residual wraps azimuth to (-pi, pi]
(:func:`fusion.models.radar_residual`).
"""

from __future__ import annotations

import numpy as np

from fusion.kalman import UpdateResult, inv_spd, mahalanobis2, symmetrize
from fusion.models import radar_residual
from sim.errors import InputError

__all__ = [
    "ALPHA",
    "BETA",
    "KAPPA",
    "merwe_weights",
    "sigma_points",
    "aer_mean",
    "unscented_transform",
    "ukf_predict",
    "ukf_update",
]

# Default scaling: alpha = 0.5 keeps the 6-state sigma points within ~1.2 sigma
# of the mean (ballistic propagation stays near-linear there) with positive
# n + lambda; beta = 2 is optimal for Gaussian priors (van der Merwe 2004, sec. 3.2).
ALPHA = 0.5
BETA = 2.0
KAPPA = 0.0
_TWO_PI = 2.0 * np.pi


def merwe_weights(n, alpha=ALPHA, beta=BETA, kappa=KAPPA):
    """Mean and covariance weights of the Merwe scaled sigma points.

    Parameters
    ----------
    n : int
        State dimension.
    alpha, beta, kappa : float
        Spread, prior-knowledge and secondary scaling parameters.

    Returns
    -------
    Wm, Wc : ndarray, shape (2n+1,)
    lambda_ : float
        :math:`\\alpha^2(n+\\kappa) - n`.

    Raises
    ------
    InputError
        If :math:`n + \\lambda \\le 0`.
    """
    lambda_ = alpha**2 * (n + kappa) - n
    if not n + lambda_ > 0:
        raise InputError.single("alpha", alpha, "alpha, kappa with alpha^2 (n + kappa) > 0")
    c = 0.5 / (n + lambda_)
    Wm = np.full(2 * n + 1, c)
    Wc = np.full(2 * n + 1, c)
    Wm[0] = lambda_ / (n + lambda_)
    Wc[0] = lambda_ / (n + lambda_) + (1.0 - alpha**2 + beta)
    return Wm, Wc, lambda_


def _cholesky_lower(A):
    """Lower Cholesky factor and PD flag; LAPACK for the whole batch, per-element flags on failure."""
    try:
        return np.linalg.cholesky(A), np.ones(A.shape[:-2], dtype=bool)
    except np.linalg.LinAlgError:
        from fusion.kalman import cholesky_spd

        return cholesky_spd(A)


def sigma_points(x, P, alpha=ALPHA, beta=BETA, kappa=KAPPA):
    """Merwe scaled sigma points in filterpy's order.

    Parameters
    ----------
    x : array_like, shape (..., n)
        Means.
    P : array_like, shape (..., n, n)
        Covariances.
    alpha, beta, kappa : float
        See :func:`merwe_weights`.

    Returns
    -------
    sigmas : ndarray, shape (..., 2n+1, n)
        ``[x, x + U_0, ..., x + U_{n-1}, x - U_0, ..., x - U_{n-1}]``.
    ok : ndarray of bool, shape (...)
        False where ``P`` is not positive definite (identity square root used).
    """
    x = np.asarray(x, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    n = x.shape[-1]
    _, _, lambda_ = merwe_weights(n, alpha, beta, kappa)
    L, ok = _cholesky_lower((n + lambda_) * P)
    U = np.swapaxes(L, -1, -2)  # upper factor, rows as in scipy.linalg.cholesky
    shape = np.broadcast_shapes(x.shape[:-1], U.shape[:-2])
    sigmas = np.empty(shape + (2 * n + 1, n))
    sigmas[..., 0, :] = x
    sigmas[..., 1 : n + 1, :] = x[..., None, :] + U
    sigmas[..., n + 1 :, :] = x[..., None, :] - U
    return sigmas, ok


def aer_mean(sigmas_z, Wm):
    """Weighted mean of AER measurement sigma points, circular for azimuth.

    Parameters
    ----------
    sigmas_z : array_like, shape (..., K, m)
        Measurement sigma points ``[range, azimuth, elevation(, range rate)]``.
    Wm : array_like, shape (K,)
        Mean weights.

    Returns
    -------
    ndarray, shape (..., m)
        Weighted mean; azimuth is :math:`\\operatorname{atan2}(\\sum W_i\\sin a_i,
        \\sum W_i\\cos a_i)` in [0, 2pi), so points at 359 and 1 deg average to 0 deg.
        Also usable as filterpy's ``z_mean_fn`` for a single track.
    """
    sz = np.asarray(sigmas_z, dtype=np.float64)
    Wm = np.asarray(Wm, dtype=np.float64)
    z = np.einsum("k,...km->...m", Wm, sz, optimize=True)
    az = sz[..., 1]
    a = np.mod(np.arctan2(np.sin(az) @ Wm, np.cos(az) @ Wm), _TWO_PI)
    z[..., 1] = np.where(a < _TWO_PI, a, 0.0)  # -tiny wraps to 2pi - tiny, which rounds to 2pi
    return z


def unscented_transform(sigmas, Wm, Wc, noise_cov=None, mean_fn=None, residual_fn=None):
    """Mean and covariance of weighted sigma points.

    Parameters
    ----------
    sigmas : array_like, shape (..., K, d)
    Wm, Wc : array_like, shape (K,)
    noise_cov : array_like, shape (..., d, d), optional
        Added to the covariance (Q or R).
    mean_fn : callable ``(sigmas, Wm) -> mean``, optional
        Default the weighted sum.
    residual_fn : callable ``(a, b) -> a - b``, optional
        Default plain subtraction; e.g. :func:`fusion.models.radar_residual`.

    Returns
    -------
    mean : ndarray, shape (..., d)
    cov : ndarray, shape (..., d, d)
        :math:`\\sum_i W^c_i (\\chi_i - \\bar x)(\\chi_i - \\bar x)^T (+ \\text{noise})`, symmetric.

    References
    ----------
    Julier & Uhlmann, "Unscented filtering and nonlinear estimation", Proc. IEEE 92(3), 2004,
    eq. 12-13; filterpy ``unscented_transform``.
    """
    sigmas = np.asarray(sigmas, dtype=np.float64)
    Wm = np.asarray(Wm, dtype=np.float64)
    Wc = np.asarray(Wc, dtype=np.float64)
    if mean_fn is None:
        mean = np.einsum("k,...kd->...d", Wm, sigmas, optimize=True)
    else:
        mean = mean_fn(sigmas, Wm)
    if residual_fn is None:
        dev = sigmas - mean[..., None, :]
    else:
        dev = residual_fn(sigmas, mean[..., None, :])
    cov = np.swapaxes(dev * Wc[:, None], -1, -2) @ dev
    if noise_cov is not None:
        cov += noise_cov
    return mean, symmetrize(cov, out=cov)


def ukf_predict(x, P, fx, Q, alpha=ALPHA, beta=BETA, kappa=KAPPA):
    """Unscented prediction.

    Parameters
    ----------
    x : array_like, shape (..., n)
    P : array_like, shape (..., n, n)
    fx : callable
        Motion model applied to all sigma points at once:
        ``fx(sigmas (..., 2n+1, n)) -> (..., 2n+1, n)``, e.g.
        ``lambda s: ballistic_propagate(s, dt)``.
    Q : array_like, shape (..., n, n)
        Process noise covariance.
    alpha, beta, kappa : float
        Sigma-point parameters (:func:`merwe_weights`).

    Returns
    -------
    x_pred : ndarray, shape (..., n)
    P_pred : ndarray, shape (..., n, n)
        Where ``P`` was not positive definite, the sigma points use an identity
        square root; check :func:`sigma_points` beforehand if needed.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    Wm, Wc, _ = merwe_weights(n, alpha, beta, kappa)
    sigmas, _ = sigma_points(x, P, alpha, beta, kappa)
    sigmas_f = np.asarray(fx(sigmas), dtype=np.float64)
    return unscented_transform(sigmas_f, Wm, Wc, Q)


def ukf_update(x, P, z, R, hx, alpha=ALPHA, beta=BETA, kappa=KAPPA, residual=radar_residual, z_mean=aer_mean):
    """Unscented update.

    Parameters
    ----------
    x : array_like, shape (..., n)
        Prior state.
    P : array_like, shape (..., n, n)
        Prior covariance.
    z : array_like, shape (..., m)
        Measurements; non-finite entries reject the element's update.
    R : array_like, shape (..., m, m)
        Measurement noise covariance.
    hx : callable
        ``hx(sigmas (..., 2n+1, n)) -> (..., 2n+1, m)``, e.g.
        ``lambda s: radar_hx(s, site[..., None, :], R_enu[..., None, :, :])``.
    alpha, beta, kappa : float
        Sigma-point parameters.
    residual : callable ``(a, b) -> a - b``, optional
        Measurement residual; default AER with wrapped azimuth. Pass ``None``
        for plain subtraction.
    z_mean : callable ``(sigmas_z, Wm) -> mean``, optional
        Measurement mean; default :func:`aer_mean`. ``None`` for the weighted sum.

    Returns
    -------
    UpdateResult
        ``(x, P, y, S, d2, ok)`` as in :func:`fusion.kalman.update_full`, with
        :math:`K = P_{xz} S^{-1}` and :math:`x + K y`. Where ``ok`` is False
        (``P`` or ``S`` not positive definite, ``z`` or the predicted
        measurement not finite) ``x`` and ``P`` are the prior, bit for bit,
        whatever the sigma points gave.

    Notes
    -----
    The covariance update is the Joseph form on the statistical linear
    regression of the measurement sigma points on the state sigma points,

    .. math::

        H = P_{xz}^T P^{-1},\\qquad
        \\Omega = \\sum_i W^c_i (\\zeta_i - H\\chi_i)(\\zeta_i - H\\chi_i)^T,

        P^+ = (I - K H) P (I - K H)^T + K (R + \\Omega) K^T

    with :math:`\\chi_i`, :math:`\\zeta_i` the state and measurement deviations
    from their means (statistical linear regression: García-Fernández et al. 2015,
    sec. II-B; its Joseph form: Zanetti & DeMars 2013). Since
    :math:`\\sum_i W^c_i\\chi_i\\chi_i^T = P` and :math:`K S = P_{xz}`, it is
    algebraically :math:`P - K S K^T` (filterpy's form), so both agree to
    rounding on ordinary inputs; but each term is a congruence of a positive
    semi-definite matrix whenever :math:`R + \\Omega` is (always for a linear
    measurement, where :math:`\\Omega` is rounding), so a prior of 1e9 m^2 with a
    measurement variance of 1e-9 m^2 keeps a PSD posterior of ~1e-9 m^2 where
    :math:`P - K S K^T` leaves rounding noise of 1e-5 m^2 of either sign.
    :math:`H^T = P^{-1}P_{xz}` is solved from the Cholesky factor that drew the
    sigma points, :math:`H^T = \\tfrac12 U^{-1}(\\zeta_{1..n} - \\zeta_{n+1..2n})`
    (rows of :math:`U` are the sigma offsets), not from :math:`P^{-1}`.

    References
    ----------
    Wan & van der Merwe, "The unscented Kalman filter for nonlinear estimation",
    IEEE AS-SPCC 2000, alg. 3.1; filterpy ``UnscentedKalmanFilter.update``;
    Zanetti & DeMars, "Joseph formulation of unscented and quadrature filters with
    application to consider states", J. Guid. Control Dyn. 36(6), 2013, 1860-1864;
    García-Fernández, Svensson, Morelande & Särkkä, "Posterior linearization filter:
    principles and implementation using sigma points", IEEE Trans. Signal Process.
    63(20), 2015.
    """
    x = np.asarray(x, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    n = x.shape[-1]
    Wm, Wc, _ = merwe_weights(n, alpha, beta, kappa)
    sigmas, ok_sig = sigma_points(x, P, alpha, beta, kappa)
    sigmas_h = np.asarray(hx(sigmas), dtype=np.float64)
    zp, S = unscented_transform(sigmas_h, Wm, Wc, R, z_mean, residual)
    S_inv, ok = inv_spd(S)
    ok = ok & ok_sig & np.all(np.isfinite(z), axis=-1) & np.all(np.isfinite(zp), axis=-1)
    dx = sigmas - x[..., None, :]
    dz = sigmas_h - zp[..., None, :] if residual is None else residual(sigmas_h, zp[..., None, :])
    ok &= np.all(np.isfinite(dz), axis=(-2, -1))
    dz = np.where(ok[..., None, None], dz, 0.0)  # a skipped element must not spread NaN (NaN * 0 is NaN)
    Pxz = np.swapaxes(dx * Wc[:, None], -1, -2) @ dz
    K = Pxz @ S_inv
    y = z - zp if residual is None else residual(z, zp)
    y_safe = np.where(ok[..., None], y, 0.0)
    K = K * ok[..., None, None]
    x_post = x + (K @ y_safe[..., None])[..., 0]
    # Joseph form on the statistical linearisation (see Notes): H^T = U^{-1} (dz_+ - dz_-) / 2.
    U = np.where(ok[..., None, None], dx[..., 1 : n + 1, :], np.eye(n))
    HT = 0.5 * np.linalg.solve(U, dz[..., 1 : n + 1, :] - dz[..., n + 1 :, :])
    H = np.swapaxes(HT, -1, -2)
    e = dz - dx @ HT  # regression residuals of the measurement sigma points, (..., 2n+1, m)
    R_eff = np.swapaxes(e * Wc[:, None], -1, -2) @ e
    R_eff += R
    I_KH = np.eye(n) - K @ H
    KT = np.swapaxes(K, -1, -2)
    P_post = (I_KH @ P) @ np.swapaxes(I_KH, -1, -2)
    P_post += (K @ R_eff) @ KT
    symmetrize(P_post, out=P_post)
    x_post = np.where(ok[..., None], x_post, x)
    P_post = np.where(ok[..., None, None], P_post, P)
    d2 = np.where(ok, mahalanobis2(y_safe, S_inv), np.inf)
    return UpdateResult(x_post, P_post, y, S, d2, ok)
