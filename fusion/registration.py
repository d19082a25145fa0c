"""Sensor registration: radar biases estimated jointly with a target's state (augmented-state EKF).

Each radar ``s`` reports ``z = h(x; site_s) + b_s + w`` with ``h`` the noise-free range, azimuth and
elevation of the ECEF state ``x`` (:func:`sensors.geometry.measure`), ``w ~ N(0, R)`` the measurement
noise and ``b_s = [b_range (m), b_azimuth (rad), b_elevation (rad)]`` a registration bias that is
constant over a trial (drawn once per trial by :func:`sensors.detections.generate_detections`). The
biases are estimated by augmenting the state,

.. math::

    X = \\begin{bmatrix} x \\\\ b_0 \\\\ \\vdots \\\\ b_{S-1} \\end{bmatrix},\\qquad
    F_X = \\operatorname{blkdiag}(F, I_{3S}),\\qquad
    Q_X = \\operatorname{blkdiag}(Q, Q_b),

    h_X(X) = h(x; \\text{site}_s) + b_s,\\qquad
    H_X = \\begin{bmatrix} H & 0 & \\cdots & I_3 & \\cdots & 0 \\end{bmatrix}
    \\;(I_3 \\text{ in the columns of } b_s),

and running the extended Kalman filter on ``X`` (predict with the ballistic transition
:func:`fusion.models.ballistic_transition`, update in Joseph form with :func:`fusion.kalman.update_full`).
The biases enter the measurement additively, so their Jacobian is exact; the target block is the
usual AER Jacobian (Bar-Shalom, Li & Kirubarajan 2001, sec. 10.4). Common targets seen by several
radars make the biases observable (Lin, Bar-Shalom & Kirubarajan, "Multisensor multitarget bias
estimation for general asynchronous sensors", IEEE TAES 41(3), 2005; Okello & Ristic, "Maximum
likelihood registration for multiple dissimilar sensors", IEEE TAES 39(3), 2003).

For constant biases the augmented filter and Friedland's two-stage separate-bias estimator are
algebraically the same estimator (Friedland, "Treatment of bias in recursive filtering", IEEE TAC
14(4), 1969); the augmented form is used here because it is the one whose covariance can be checked
directly against the truth's biases.

All arrays broadcast over leading batch axes (trials, ...): ``X`` is ``(..., 6 + 3S)`` and ``P`` is
``(..., 6 + 3S, 6 + 3S)``.
"""

from __future__ import annotations

import numpy as np

from fusion.kalman import predict, update_full
from fusion.models import ballistic_transition, process_noise, radar_H, radar_hx, radar_residual
from sim.errors import InputError

__all__ = ["STATE_DIM", "BIAS_DIM", "augmented_dim", "bias_prior_covariance", "augmented_predict",
           "augmented_update", "bias_slice"]

STATE_DIM = 6  # ECEF position (m) and velocity (m/s)
BIAS_DIM = 3   # range (m), azimuth (rad), elevation (rad) per radar


def augmented_dim(n_sensors: int) -> int:
    """Length of the augmented state for ``n_sensors`` radars: ``6 + 3 n_sensors``."""
    if int(n_sensors) < 1:
        raise InputError.single("n_sensors", n_sensors, "at least one radar")
    return STATE_DIM + BIAS_DIM * int(n_sensors)


def bias_slice(sensor: int) -> slice:
    """Indices of radar ``sensor``'s bias ``[range, azimuth, elevation]`` in the augmented state."""
    start = STATE_DIM + BIAS_DIM * int(sensor)
    return slice(start, start + BIAS_DIM)


def bias_prior_covariance(range_sigma_m, angle_sigma_rad) -> np.ndarray:
    """Prior covariance of the stacked biases, diagonal ``(3S, 3S)``.

    Parameters
    ----------
    range_sigma_m : array_like, shape (S,)
        One-sigma range bias of each radar, m (>= 0).
    angle_sigma_rad : array_like, shape (S,)
        One-sigma azimuth and elevation bias of each radar, rad (>= 0).

    Returns
    -------
    ndarray, shape (3S, 3S)
        ``diag(sr_0^2, sa_0^2, sa_0^2, sr_1^2, ...)``, the distribution the truth draws the biases from
        (:func:`sensors.detections.generate_detections`).

    Raises
    ------
    InputError
        If the sigmas are negative, not finite, or of different lengths.
    """
    sr = np.atleast_1d(np.asarray(range_sigma_m, dtype=np.float64))
    sa = np.atleast_1d(np.asarray(angle_sigma_rad, dtype=np.float64))
    if sr.shape != sa.shape or sr.ndim != 1:
        raise InputError.single("angle_sigma_rad", sa.shape, f"one sigma per radar, as range_sigma_m {sr.shape}")
    for name, v in (("range_sigma_m", sr), ("angle_sigma_rad", sa)):
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            raise InputError.single(name, v, "finite sigmas >= 0")
    return np.diag(np.stack([sr**2, sa**2, sa**2], axis=-1).ravel())


def augmented_predict(X, P, dt, q, q_bias=0.0):
    """Predict the augmented state: the target ballistically, the biases held constant.

    Parameters
    ----------
    X : array_like, shape (..., 6 + 3S)
        Augmented state: ECEF state (m, m/s) then each radar's bias (m, rad, rad).
    P : array_like, shape (..., 6 + 3S, 6 + 3S)
        Its covariance.
    dt : float
        Time step, s.
    q : float
        Power spectral density of the target's white-noise acceleration, m^2/s^3
        (:func:`fusion.models.process_noise`).
    q_bias : float, optional
        Random-walk density of every bias component per second (units^2/s); 0 (default) for the constant
        biases the truth draws.

    Returns
    -------
    X_pred, P_pred : ndarray
        Same shapes as the inputs: :math:`X^- = [f(x), b]`, :math:`P^- = F_X P F_X^T + Q_X`.

    Raises
    ------
    InputError
        If ``X`` and ``P`` do not have matching augmented shapes, or ``dt``, ``q`` are invalid.
    """
    X = np.asarray(X, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    n = X.shape[-1]
    if n < STATE_DIM + BIAS_DIM or (n - STATE_DIM) % BIAS_DIM or P.shape[-2:] != (n, n):
        raise InputError.single("X", X.shape, "(..., 6 + 3S) with P (..., 6 + 3S, 6 + 3S)")
    x_pred, F = ballistic_transition(X[..., :STATE_DIM], dt)
    F_X = np.broadcast_to(np.eye(n), X.shape[:-1] + (n, n)).copy()
    F_X[..., :STATE_DIM, :STATE_DIM] = F
    Q_X = np.zeros(X.shape[:-1] + (n, n))
    Q_X[..., :STATE_DIM, :STATE_DIM] = process_noise(dt, q)
    idx = np.arange(STATE_DIM, n)
    Q_X[..., idx, idx] = float(q_bias) * abs(float(dt))
    X_pred = X.copy()
    X_pred[..., :STATE_DIM] = x_pred
    return predict(X, P, F_X, Q_X, fx=X_pred)


def augmented_update(X, P, z, R, sensor, site_ecef, R_enu):
    """EKF update of the augmented state with one AER detection of radar ``sensor``.

    Parameters
    ----------
    X, P : array_like
        Prior augmented state ``(..., 6 + 3S)`` and covariance ``(..., 6 + 3S, 6 + 3S)``.
    z : array_like, shape (..., 3)
        Measured ``[range m, azimuth rad, elevation rad]`` (biased, noisy).
    R : array_like, shape (..., 3, 3)
        Measurement noise covariance (without the bias).
    sensor : int
        Index of the radar (its bias block, :func:`bias_slice`).
    site_ecef : array_like, shape (..., 3)
        The radar's ECEF position, m.
    R_enu : array_like, shape (..., 3, 3)
        ECEF-to-ENU rotation at the radar.

    Returns
    -------
    fusion.kalman.UpdateResult
        ``(x, P, y, S, d2, ok)`` of the augmented state: Joseph-form update with
        :math:`h_X(X) = h(x) + b_s` and :math:`H_X = [H \\; 0 \\cdots I_3 \\cdots 0]`;
        where ``ok`` is False the prior is returned.

    Raises
    ------
    InputError
        If ``sensor`` is outside the augmented state.
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[-1]
    n_sensors = (n - STATE_DIM) // BIAS_DIM
    if not 0 <= int(sensor) < n_sensors:
        raise InputError.single("sensor", sensor, f"a radar index in [0, {n_sensors - 1}]")
    b = bias_slice(sensor)
    x = X[..., :STATE_DIM]
    hx = radar_hx(x, site_ecef, R_enu) + X[..., b]
    H_X = np.zeros(X.shape[:-1] + (BIAS_DIM, n))
    H_X[..., :, :STATE_DIM] = radar_H(x, site_ecef, R_enu)
    H_X[..., :, b] = np.eye(BIAS_DIM)
    return update_full(X, P, z, R, hx, H_X, residual=radar_residual)
