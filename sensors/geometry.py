"""Radar measurement geometry: ECEF state to (range, azimuth, elevation[, range rate]) and its Jacobian.

Measurement vector convention, used by every module of the project::

    z = [range_m, azimuth_rad, elevation_rad]            (m = 3)
    z = [range_m, azimuth_rad, elevation_rad, range_rate_mps]   (m = 4)

Azimuth is clockwise from north in [0, 2*pi), elevation above the local
horizontal (pymap3d's AER convention), all in the sensor's local ENU frame.

References
----------
Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to Tracking and
Navigation*, 2001, sec. 10.4 (polar/spherical measurements); pymap3d.ecef2aer
(the transform this module reproduces in matrix form for the hot loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.earth import enu_rotation, geodetic_to_ecef

TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class Site:
    """A sensor's position and local frame.

    Parameters
    ----------
    lat_rad, lon_rad, alt_m : float
        Geodetic position on WGS-84 (radians, metres).

    Attributes
    ----------
    ecef : ndarray, shape (3,)
        Site position in ECEF, metres.
    R_enu : ndarray, shape (3, 3)
        ECEF-to-ENU rotation (rows east, north, up).
    """

    lat_rad: float
    lon_rad: float
    alt_m: float

    @property
    def ecef(self) -> np.ndarray:
        return geodetic_to_ecef(self.lat_rad, self.lon_rad, self.alt_m)

    @property
    def R_enu(self) -> np.ndarray:
        return enu_rotation(self.lat_rad, self.lon_rad)


def ecef_to_enu(r_ecef, site_ecef, R_enu):
    """ECEF positions ``(..., 3)`` to ENU offsets ``(..., 3)`` (m) from a site.

    ``site_ecef`` is ``(..., 3)`` and ``R_enu`` is ``(..., 3, 3)`` (broadcast).
    Inputs of any numeric dtype are cast to float64 before the subtraction.
    """
    d = np.asarray(r_ecef, dtype=np.float64) - np.asarray(site_ecef, dtype=np.float64)
    # matmul rather than einsum: einsum(optimize=True) re-plans its path on every call.
    return (np.asarray(R_enu, dtype=np.float64) @ d[..., None])[..., 0]


def enu_to_rae(enu):
    """ENU offsets ``(..., 3)`` to ``(..., 3)`` = range (m), azimuth (rad, [0, 2pi)), elevation (rad).

    Integer and float32 offsets are cast to float64 first (an int32 ``u**2`` wraps around).
    """
    enu = np.asarray(enu, dtype=np.float64)
    e, n, u = enu[..., 0], enu[..., 1], enu[..., 2]
    horiz = np.hypot(e, n)
    out = np.empty(enu.shape, dtype=np.float64)
    out[..., 0] = np.sqrt(horiz**2 + u**2)
    az = np.mod(np.arctan2(e, n), TWO_PI)
    # A tiny negative angle (east -1e-167 m) wraps to 2pi - tiny, which rounds to 2pi: outside [0, 2pi).
    out[..., 1] = np.where(az < TWO_PI, az, 0.0)
    out[..., 2] = np.arctan2(u, horiz)
    return out


def measure(x, site_ecef, R_enu, with_range_rate=False):
    """Noise-free radar measurement of ECEF states.

    Parameters
    ----------
    x : array_like, shape (..., 6)
        State ``[x, y, z, vx, vy, vz]`` in ECEF (m, m/s, velocity relative to the Earth).
    site_ecef : array_like, shape (..., 3)
        Sensor position in ECEF (m).
    R_enu : array_like, shape (..., 3, 3)
        ECEF-to-ENU rotation at the sensor (:func:`sim.earth.enu_rotation`).
    with_range_rate : bool
        Append the range rate (m/s) as a fourth component.

    Returns
    -------
    ndarray, shape (..., 3) or (..., 4)
        ``[range_m, azimuth_rad, elevation_rad(, range_rate_mps)]``.
    """
    x = np.asarray(x, dtype=np.float64)
    R_enu = np.asarray(R_enu, dtype=np.float64)
    enu = ecef_to_enu(x[..., :3], site_ecef, R_enu)
    rae = enu_to_rae(enu)
    if not with_range_rate:
        return rae
    v_enu = (R_enu @ x[..., 3:6, None])[..., 0]
    rdot = np.einsum("...i,...i->...", enu, v_enu) / rae[..., 0]
    return np.concatenate([rae, rdot[..., None]], axis=-1)


def measurement_jacobian(x, site_ecef, R_enu, with_range_rate=False):
    """Jacobian of :func:`measure` with respect to the ECEF state.

    Parameters
    ----------
    x : array_like, shape (..., 6)
        ECEF state (m, m/s).
    site_ecef, R_enu : array_like
        Sensor position ``(..., 3)`` and ECEF-to-ENU rotation ``(..., 3, 3)``.
    with_range_rate : bool
        Include the range-rate row.

    Returns
    -------
    ndarray, shape (..., 3, 6) or (..., 4, 6)
        Rows d(range), d(azimuth), d(elevation)[, d(range rate)] by state.

    Notes
    -----
    With :math:`\\rho = |e|`, :math:`s = \\sqrt{e^2+n^2}` in ENU:
    :math:`\\partial\\rho/\\partial\\mathbf e = \\mathbf e/\\rho`,
    :math:`\\partial a/\\partial(e, n, u) = (n, -e, 0)/s^2`,
    :math:`\\partial\\epsilon/\\partial(e, n, u) = (-ue, -un, s^2)/(\\rho^2 s)`;
    then multiplied by ``R_enu`` (the ENU offset is linear in ECEF position).
    Range rate :math:`\\dot\\rho = \\mathbf e\\cdot\\mathbf v/\\rho`:
    :math:`\\partial\\dot\\rho/\\partial\\mathbf e = (\\mathbf v - \\dot\\rho\\,\\mathbf e/\\rho)/\\rho`,
    :math:`\\partial\\dot\\rho/\\partial\\mathbf v = \\mathbf e/\\rho`
    (Bar-Shalom et al. 2001, sec. 10.4). Singular at zenith (s = 0), where
    azimuth is undefined.
    """
    x = np.asarray(x, dtype=np.float64)
    R = np.asarray(R_enu, dtype=np.float64)
    site_ecef = np.asarray(site_ecef, dtype=np.float64)
    enu = ecef_to_enu(x[..., :3], site_ecef, R)
    e, n, u = enu[..., 0], enu[..., 1], enu[..., 2]
    s2 = e * e + n * n
    s = np.sqrt(s2)
    rho2 = s2 + u * u
    rho = np.sqrt(rho2)
    m = 4 if with_range_rate else 3
    J_enu = np.zeros(x.shape[:-1] + (m, 3))
    J_enu[..., 0, :] = enu / rho[..., None]
    J_enu[..., 1, 0] = n / s2
    J_enu[..., 1, 1] = -e / s2
    den = rho2 * s
    J_enu[..., 2, 0] = -u * e / den
    J_enu[..., 2, 1] = -u * n / den
    J_enu[..., 2, 2] = s / rho2
    H = np.zeros(x.shape[:-1] + (m, 6))
    H[..., :, :3] = J_enu @ R
    if with_range_rate:
        v_ecef = x[..., 3:6]
        d = x[..., :3] - site_ecef
        rdot = np.einsum("...i,...i->...", d, v_ecef) / rho
        H[..., 3, :3] = (v_ecef - (rdot / rho)[..., None] * d) / rho[..., None]
        H[..., 3, 3:] = d / rho[..., None]
    return H


def wrap_angle(a):
    """Wrap angles (rad) to (-pi, pi], the residual convention for azimuth."""
    a = np.asarray(a, dtype=np.float64)
    w = np.mod(a + np.pi, TWO_PI) - np.pi
    return np.where(w == -np.pi, np.pi, w)


def measurement_residual(z, hx):
    """Measurement residual ``z - hx`` with the azimuth component (index 1) wrapped to (-pi, pi]."""
    y = np.asarray(z, dtype=np.float64) - np.asarray(hx, dtype=np.float64)
    y[..., 1] = wrap_angle(y[..., 1])
    return y
