"""WGS-84 Earth model and frame transforms (ECEF, geodetic, ENU, AER, geodesics).

Thin, vectorized wrappers: pymap3d does the frame maths and pyproj.Geod the
geodesics; this module fixes the ellipsoid, the units (radians and metres
inside) and the argument order used everywhere in the project.

Frames
------
ECEF
    Earth-centred Earth-fixed, WGS-84, metres.
ENU
    Local east-north-up at a site, metres.
AER
    Azimuth clockwise from north, elevation above the local horizontal,
    slant range, as pymap3d defines them.

References
----------
NIMA TR8350.2, *Department of Defense World Geodetic System 1984*, 3rd ed., 2000
(defining parameters, Table 3.1; J2 from the EGM96 C20 coefficient, Table 3.4).
"""

from __future__ import annotations

import numpy as np
import pymap3d
from pyproj import Geod

SEMI_MAJOR_AXIS = 6378137.0  # m, WGS-84 (TR8350.2 Table 3.1)
FLATTENING = 1.0 / 298.257223563  # WGS-84 (TR8350.2 Table 3.1)
GM = 3.986004418e14  # m^3/s^2, WGS-84 Earth gravitational constant incl. atmosphere
EARTH_ROTATION_RATE = 7.2921151467e-5  # rad/s, WGS-84
J2 = 1.082629821313e-3  # WGS-84 / EGM96: J2 = -sqrt(5) * C20bar, C20bar = -0.484165371736e-3
MEAN_RADIUS = 6371008.8  # m, IUGG mean radius R1 of WGS-84
OMEGA_VEC = np.array([0.0, 0.0, EARTH_ROTATION_RATE])  # rad/s, Earth rotation in ECEF

_E2 = FLATTENING * (2.0 - FLATTENING)  # first eccentricity squared
_ELLIPSOID = pymap3d.Ellipsoid.from_name("wgs84")
_GEOD = Geod(ellps="WGS84")


def geodetic_to_ecef(lat_rad, lon_rad, alt_m):
    """Geodetic latitude, longitude, height to ECEF position.

    Parameters
    ----------
    lat_rad, lon_rad : array_like
        Geodetic latitude and longitude in radians, any broadcastable shape.
    alt_m : array_like
        Height above the WGS-84 ellipsoid in metres.

    Returns
    -------
    ndarray, shape (..., 3)
        ECEF position in metres.

    References
    ----------
    pymap3d.geodetic2ecef (TR8350.2 eq. 4-14).
    """
    lat_rad, lon_rad, alt_m = (np.asarray(a, dtype=np.float64) for a in (lat_rad, lon_rad, alt_m))
    x, y, z = pymap3d.geodetic2ecef(lat_rad, lon_rad, alt_m, ell=_ELLIPSOID, deg=False)
    return np.stack(np.broadcast_arrays(x, y, z), axis=-1).astype(np.float64)


def ecef_to_geodetic(r_ecef):
    """ECEF position to geodetic latitude, longitude (radians) and height (m).

    Parameters
    ----------
    r_ecef : array_like, shape (..., 3)
        ECEF position in metres.

    Returns
    -------
    lat_rad, lon_rad, alt_m : ndarray, shape (...)
        Geodetic coordinates on WGS-84.

    Notes
    -----
    pymap3d.ecef2geodetic (You 2000, one closed-form correction) loses accuracy with height:
    its latitude is off by 1e-9 rad at 1,000 km and 1.4e-7 rad (0.9 m) at 5,000 km, where
    lofted ICBMs fly. Two steps of the classical fixed-point iteration
    :math:`\varphi \leftarrow \operatorname{atan2}(z + e^2 N(\varphi)\sin\varphi,\ p)`
    (Heiskanen & Moritz, *Physical Geodesy*, 1967), each dividing the error by more than
    :math:`1/e^2 \approx 150`, bring it to rounding; the height is then
    :math:`h = p\cos\varphi + z\sin\varphi - a\sqrt{1 - e^2\sin^2\varphi}`, which has no
    division and holds at the poles.
    """
    r = np.asarray(r_ecef, dtype=np.float64)
    lat, lon, alt = pymap3d.ecef2geodetic(r[..., 0], r[..., 1], r[..., 2], ell=_ELLIPSOID, deg=False)
    # pymap3d squeezes size-1 inputs; keep the caller's leading shape.
    shape = r.shape[:-1]
    lat = np.asarray(lat, dtype=np.float64).reshape(shape)
    p = np.hypot(r[..., 0], r[..., 1])
    z = r[..., 2]
    for _ in range(2):
        s = np.sin(lat)
        lat = np.arctan2(z + _E2 * SEMI_MAJOR_AXIS / np.sqrt(1.0 - _E2 * s * s) * s, p)
    s, c = np.sin(lat), np.cos(lat)
    alt = p * c + z * s - SEMI_MAJOR_AXIS * np.sqrt(1.0 - _E2 * s * s)
    return lat, np.asarray(lon, dtype=np.float64).reshape(shape), alt


def altitude(r_ecef):
    """Height above the WGS-84 ellipsoid (m) of ECEF positions ``(..., 3)``."""
    return ecef_to_geodetic(r_ecef)[2]


def enu_rotation(lat_rad, lon_rad):
    """Rotation matrix from ECEF to the local ENU axes at a geodetic point.

    Parameters
    ----------
    lat_rad, lon_rad : array_like
        Geodetic latitude and longitude in radians.

    Returns
    -------
    ndarray, shape (..., 3, 3)
        Rows are the east, north and up unit vectors in ECEF, so that
        ``enu = R @ (r_ecef - r_site)``.

    References
    ----------
    pymap3d.ecef2enu (same rotation); Bar-Shalom, Li & Kirubarajan,
    *Estimation with Applications to Tracking and Navigation*, 2001.
    """
    lat = np.asarray(lat_rad, dtype=np.float64)
    lon = np.asarray(lon_rad, dtype=np.float64)
    sl, cl = np.sin(lat), np.cos(lat)
    so, co = np.sin(lon), np.cos(lon)
    zero = np.zeros_like(sl * so)
    east = np.stack(np.broadcast_arrays(-so, co, zero), axis=-1)
    north = np.stack(np.broadcast_arrays(-sl * co, -sl * so, cl), axis=-1)
    up = np.stack(np.broadcast_arrays(cl * co, cl * so, sl), axis=-1)
    return np.stack([east, north, up], axis=-2)


def geodesic_inverse(lat1_deg, lon1_deg, lat2_deg, lon2_deg):
    """Ground range and forward azimuth between two points on WGS-84.

    Parameters
    ----------
    lat1_deg, lon1_deg, lat2_deg, lon2_deg : array_like
        Geodetic coordinates in degrees.

    Returns
    -------
    azimuth_deg : ndarray
        Forward azimuth at point 1, degrees clockwise from north in [0, 360).
    range_m : ndarray
        Geodesic distance in metres.

    References
    ----------
    pyproj.Geod.inv (Karney, *Algorithms for geodesics*, J. Geodesy 87, 2013).
    """
    lat1_deg, lon1_deg, lat2_deg, lon2_deg = (np.asarray(a, dtype=np.float64)
                                              for a in (lat1_deg, lon1_deg, lat2_deg, lon2_deg))
    az, _, dist = _GEOD.inv(lon1_deg, lat1_deg, lon2_deg, lat2_deg)
    return np.mod(np.asarray(az, dtype=np.float64), 360.0), np.asarray(dist, dtype=np.float64)


def geodesic_direct(lat_deg, lon_deg, azimuth_deg, range_m):
    """Point reached along a geodesic from a start point, bearing and distance.

    Parameters
    ----------
    lat_deg, lon_deg : array_like
        Start point, degrees.
    azimuth_deg : array_like
        Forward azimuth, degrees clockwise from north.
    range_m : array_like
        Geodesic distance, metres.

    Returns
    -------
    lat_deg, lon_deg : ndarray
        End point, degrees.

    References
    ----------
    pyproj.Geod.fwd (Karney 2013).
    """
    lat_b, lon_b, az_b, rng_b = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                                      for a in (lat_deg, lon_deg, azimuth_deg, range_m)))
    lon2, lat2, _ = _GEOD.fwd(lon_b, lat_b, az_b, rng_b)
    return np.asarray(lat2, dtype=np.float64), np.asarray(lon2, dtype=np.float64)
