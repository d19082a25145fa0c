"""Batched interacting multiple model (IMM) estimator over models sharing one state.

Mode-conditioned states are stacked on a mode axis just before the state axes:
``x`` ``(..., r, n)``, ``P`` ``(..., r, n, n)``, mode probabilities ``mu`` ``(..., r)``,
Markov mode transition matrix ``M`` ``(r, r)`` (or ``(..., r, r)``) with
``M[i, j]`` = P(mode j at k | mode i at k-1). For the ballistic-missile tracker
the modes are thrusting (boost) and ballistic (:mod:`fusion.models`), both on the
6-dimensional ECEF state.

One IMM cycle (Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to
Tracking and Navigation*, 2001, sec. 11.6.6):

.. math::

    \\bar c_j = \\sum_i M_{ij}\\mu_i,\\qquad \\mu_{i|j} = M_{ij}\\mu_i/\\bar c_j

    x^{0j} = \\sum_i \\mu_{i|j} x^i,\\qquad
    P^{0j} = \\sum_i \\mu_{i|j}\\big(P^i + (x^i - x^{0j})(x^i - x^{0j})^T\\big)

then each mode predicts and updates (:mod:`fusion.kalman`) from
:math:`(x^{0j}, P^{0j})`; with :math:`\\Lambda_j = \\mathcal N(y_j; 0, S_j)`,
:math:`\\mu_j \\propto \\Lambda_j \\bar c_j`, and the output is the moment-matched
mixture :math:`x = \\sum_j\\mu_j x^j`, :math:`P = \\sum_j\\mu_j(P^j + (x^j-x)(x^j-x)^T)`.
This is the cycle of filterpy's ``IMMEstimator``; likelihoods are combined in
the log domain here (no underflow to zero).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fusion.kalman import gaussian_log_likelihood, predict, symmetrize, update_full
from sim.errors import InputError

__all__ = ["IMMUpdate", "imm_mixing", "imm_mix", "imm_combine", "imm_predict", "imm_update"]


class IMMUpdate(NamedTuple):
    """Result of :func:`imm_update`.

    Attributes
    ----------
    x : ndarray, shape (..., r, n)
        Mode-conditioned posterior states.
    P : ndarray, shape (..., r, n, n)
        Mode-conditioned posterior covariances.
    mu : ndarray, shape (..., r)
        Posterior mode probabilities (the predicted ones where no mode updated).
    x_comb : ndarray, shape (..., n)
        Combined (moment-matched) estimate.
    P_comb : ndarray, shape (..., n, n)
        Its covariance.
    ok : ndarray of bool, shape (..., r)
        Per mode, True where the update was applied (see :func:`fusion.kalman.update_full`).
    d2 : ndarray, shape (..., r)
        Per-mode squared Mahalanobis distance of the innovation.
    """

    x: np.ndarray
    P: np.ndarray
    mu: np.ndarray
    x_comb: np.ndarray
    P_comb: np.ndarray
    ok: np.ndarray
    d2: np.ndarray


def _check_M(M):
    M = np.asarray(M, dtype=np.float64)
    if M.ndim < 2 or M.shape[-1] != M.shape[-2] or np.any(M < 0) or not np.allclose(M.sum(-1), 1.0):
        raise InputError.single("M", M.tolist() if M.ndim == 2 else M.shape, "a row-stochastic (r, r) matrix")
    return M


def imm_mixing(mu, M):
    """Predicted mode probabilities and mixing probabilities.

    Parameters
    ----------
    mu : array_like, shape (..., r)
        Posterior mode probabilities at k-1.
    M : array_like, shape (r, r) or (..., r, r)
        Row-stochastic mode transition matrix.

    Returns
    -------
    cbar : ndarray, shape (..., r)
        :math:`\\bar c_j = \\sum_i M_{ij}\\mu_i` (predicted mode probabilities).
    omega : ndarray, shape (..., r, r)
        ``omega[..., i, j]`` = :math:`\\mu_{i|j} = M_{ij}\\mu_i / \\bar c_j`.

    Raises
    ------
    InputError
        If ``M`` is not row-stochastic.
    """
    mu = np.asarray(mu, dtype=np.float64)
    M = _check_M(M)
    cbar = (mu[..., None, :] @ M)[..., 0, :]
    omega = M * mu[..., :, None] / cbar[..., None, :]
    return cbar, omega


def imm_mix(x, P, mu, M):
    """IMM interaction (mixing) step.

    Parameters
    ----------
    x : array_like, shape (..., r, n)
    P : array_like, shape (..., r, n, n)
    mu : array_like, shape (..., r)
    M : array_like, shape (r, r) or (..., r, r)

    Returns
    -------
    x0 : ndarray, shape (..., r, n)
        Mixed initial state for each mode-matched filter.
    P0 : ndarray, shape (..., r, n, n)
    cbar : ndarray, shape (..., r)
        Predicted mode probabilities.

    References
    ----------
    Bar-Shalom et al. 2001, eq. 11.6.6-6 to 11.6.6-11.
    """
    x = np.asarray(x, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    cbar, omega = imm_mixing(mu, M)
    w = np.swapaxes(omega, -1, -2)  # w[..., j, i] = mu_{i|j}
    x0 = w @ x  # (..., r_j, n)
    dx = x[..., None, :, :] - x0[..., :, None, :]  # (..., j, i, n)
    spread = P[..., None, :, :, :] + dx[..., :, None] * dx[..., None, :]
    P0 = np.sum(w[..., :, :, None, None] * spread, axis=-3)
    return x0, symmetrize(P0, out=P0), cbar


def imm_combine(x, P, mu):
    """Moment-matched combination of the mode-conditioned estimates.

    Parameters
    ----------
    x : array_like, shape (..., r, n)
    P : array_like, shape (..., r, n, n)
    mu : array_like, shape (..., r)

    Returns
    -------
    x : ndarray, shape (..., n)
    P : ndarray, shape (..., n, n)

    References
    ----------
    Bar-Shalom et al. 2001, eq. 11.6.6-16 and 11.6.6-17.
    """
    x = np.asarray(x, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    xc = (mu[..., None, :] @ x)[..., 0, :]
    dx = x - xc[..., None, :]
    Pc = np.sum(mu[..., :, None, None] * (P + dx[..., :, None] * dx[..., None, :]), axis=-3)
    return xc, symmetrize(Pc, out=Pc)


def imm_predict(x, P, mu, M, transitions):
    """IMM mixing then mode-matched prediction.

    Parameters
    ----------
    x : array_like, shape (..., r, n)
        Mode-conditioned posterior states at k-1.
    P : array_like, shape (..., r, n, n)
    mu : array_like, shape (..., r)
        Posterior mode probabilities at k-1.
    M : array_like, shape (r, r)
        Mode transition matrix for this step.
    transitions : sequence of r callables
        ``transitions[j](x0 (..., n)) -> (x_pred (..., n), F (..., n, n), Q (..., n, n))``,
        e.g. ``lambda x: (*ballistic_transition(x, dt), process_noise(dt, q))``.

    Returns
    -------
    x_pred : ndarray, shape (..., r, n)
    P_pred : ndarray, shape (..., r, n, n)
    cbar : ndarray, shape (..., r)
        Predicted mode probabilities (pass to :func:`imm_update`).
    """
    x0, P0, cbar = imm_mix(x, P, mu, M)
    r = x0.shape[-2]
    if len(transitions) != r:
        raise InputError.single("transitions", len(transitions), f"one transition per mode ({r})")
    x_pred = np.empty(x0.shape)
    P_pred = np.empty(P0.shape)
    for j, f in enumerate(transitions):  # loop over models (2), not tracks
        xf, F, Q = f(x0[..., j, :])
        x_pred[..., j, :], P_pred[..., j, :, :] = predict(x0[..., j, :], P0[..., j, :, :], F, Q, fx=xf)
    return x_pred, P_pred, cbar


def imm_update(x, P, cbar, z, R, hx, H, residual=None):
    """Mode-matched updates, mode probability update and combination.

    Parameters
    ----------
    x : array_like, shape (..., r, n)
        Mode-conditioned predicted states.
    P : array_like, shape (..., r, n, n)
    cbar : array_like, shape (..., r)
        Predicted mode probabilities from :func:`imm_predict`.
    z : array_like, shape (..., m)
        Measurement (shared by the modes); non-finite rejects the update.
    R : array_like, shape (..., m, m)
    hx : array_like, shape (..., r, m)
        Predicted measurement of each mode.
    H : array_like, shape (..., r, m, n)
        Measurement Jacobian of each mode.
    residual : callable, optional
        Innovation function, e.g. :func:`fusion.models.radar_residual`.

    Returns
    -------
    IMMUpdate
        Where no mode could update (NaN ``z``, non-PD ``S``), ``mu`` stays
        ``cbar`` and the states stay predicted. A mode whose update failed
        while another succeeded gets likelihood 0.

    References
    ----------
    Bar-Shalom et al. 2001, eq. 11.6.6-12 to 11.6.6-15.
    """
    z = np.asarray(z, dtype=np.float64)
    cbar = np.asarray(cbar, dtype=np.float64)
    res = update_full(x, P, z[..., None, :], np.asarray(R)[..., None, :, :], hx, H, residual)
    with np.errstate(divide="ignore", invalid="ignore"):
        loglik = np.where(res.ok, gaussian_log_likelihood(res.d2, res.S), -np.inf)
        logw = np.log(cbar) + loglik
        top = np.max(logw, axis=-1, keepdims=True)
        any_ok = np.isfinite(top)
        w = np.exp(logw - np.where(any_ok, top, 0.0))
        mu = np.where(any_ok, w / np.sum(w, axis=-1, keepdims=True), cbar)
    xc, Pc = imm_combine(res.x, res.P, mu)
    return IMMUpdate(res.x, res.P, mu, xc, Pc, res.ok, res.d2)
