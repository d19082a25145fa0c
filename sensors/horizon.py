"""Radar horizon over a smooth refracted Earth (effective-Earth-radius model).

Standard atmospheric refraction bends radar rays down, so that they follow the
Earth's curvature a little. The classic model replaces the bent ray over the
true Earth by a straight ray over an Earth of radius :math:`k R` with
:math:`k = 4/3` (Skolnik 2001, sec. 8.2, eq. 8.4; Doerry, *Earth curvature
and atmospheric refraction effects on radar signal propagation*, Sandia
SAND2012-10690, 2013). A target is visible when the straight line from the
antenna to the target, drawn in that effective geometry, clears the sphere of
radius :math:`k R`.

Terrain is ignored (smooth sea-level Earth). The local Earth radius is the
radius of curvature of the WGS-84 normal section at the site in the target's
azimuth (Euler's formula), so the model is exact to second order in the
ground distance on the ellipsoid.

References
----------
Skolnik, *Introduction to Radar Systems*, 3rd ed., McGraw-Hill, 2001, sec. 8.2.
Bowring / Torge, *Geodesy*, 3rd ed., 2001, sec. 3.2 (meridian and prime
vertical radii of curvature, Euler's formula for a normal section).
"""

from __future__ import annotations

import numpy as np

from sim.earth import FLATTENING, SEMI_MAJOR_AXIS

EFFECTIVE_EARTH_FACTOR = 4.0 / 3.0  # k of the 4/3-Earth model, standard atmosphere (Skolnik 2001, eq. 8.4)
_E2 = FLATTENING * (2.0 - FLATTENING)  # first eccentricity squared, WGS-84


def radius_of_curvature(lat_rad, azimuth_rad):
    """Radius of curvature (m) of the WGS-84 normal section at a latitude and azimuth.

    Parameters
    ----------
    lat_rad : array_like
        Geodetic latitude of the point, rad.
    azimuth_rad : array_like
        Azimuth of the normal section, rad clockwise from north.

    Returns
    -------
    ndarray
        :math:`R_\\alpha = 1 / (\\cos^2\\alpha / M + \\sin^2\\alpha / N)`, m, with
        :math:`M = a(1-e^2)/(1-e^2\\sin^2\\varphi)^{3/2}` (meridian) and
        :math:`N = a/\\sqrt{1-e^2\\sin^2\\varphi}` (prime vertical); Euler's formula
        (Torge, *Geodesy*, 2001, sec. 3.2).
    """
    s2 = np.sin(np.asarray(lat_rad, dtype=np.float64)) ** 2
    w = 1.0 - _E2 * s2
    N = SEMI_MAJOR_AXIS / np.sqrt(w)
    M = SEMI_MAJOR_AXIS * (1.0 - _E2) / (w * np.sqrt(w))
    a = np.asarray(azimuth_rad, dtype=np.float64)
    return 1.0 / (np.cos(a) ** 2 / M + np.sin(a) ** 2 / N)


def min_visible_height(ground_distance_m, site_alt_m=0.0, earth_radius_m=6371008.8, k=EFFECTIVE_EARTH_FACTOR):
    """Lowest target height (m) visible at a ground distance over a smooth refracted sphere.

    Parameters
    ----------
    ground_distance_m : array_like
        Great-circle distance from the radar to the point under the target, m.
    site_alt_m : float
        Antenna height above the sphere, m (>= 0).
    earth_radius_m : float
        True Earth radius R, m.
    k : float
        Effective-Earth factor (4/3 for standard refraction).

    Returns
    -------
    ndarray
        Height (m) of the grazing ray at that distance. Exact on the sphere of
        radius :math:`R_e = kR`: the ray is tangent at distance
        :math:`d_s = R_e\\arccos(R_e/(R_e+h_s))` from the site and

        .. math:: h = R_e/\\cos((d - d_s)/R_e) - R_e \\quad (d > d_s),

        which for a sea-level site and :math:`d \\ll R_e` is the textbook
        :math:`h \\approx d^2/(2kR)` (Skolnik 2001, eq. 8.5).
    """
    Re = k * earth_radius_m
    d = np.asarray(ground_distance_m, dtype=np.float64)
    ds = Re * np.arccos(Re / (Re + site_alt_m))
    beyond = np.maximum(d - ds, 0.0)
    return Re / np.cos(beyond / Re) - Re


def refracted_view(enu, site_lat_rad, site_alt_m, k=EFFECTIVE_EARTH_FACTOR):
    """Line-of-sight clearance and apparent elevation of targets over the refracted smooth Earth.

    Parameters
    ----------
    enu : array_like, shape (..., 3)
        Target offsets from the antenna in the site's ENU frame, m.
    site_lat_rad : float
        Geodetic latitude of the site, rad.
    site_alt_m : float
        Antenna height above the WGS-84 ellipsoid, m.
    k : float
        Effective-Earth factor (default 4/3).

    Returns
    -------
    clear : ndarray of bool, shape (...)
        True where the line of sight clears the effective Earth (NaN input: False).
    apparent_elevation : ndarray, shape (...)
        Elevation (rad) at which the refracted ray leaves the antenna: the elevation
        of the straight line in the effective geometry. It exceeds the geometric
        elevation by about :math:`(1 - 1/k)\\,d/(2R)` at ground distance d; the
        antenna's elevation limits apply to it.

    Notes
    -----
    In the plane of the target's normal section, with :math:`R` the radius of
    curvature in the target's azimuth (:func:`radius_of_curvature`), the target
    sits at central angle :math:`\\theta` and height :math:`h_t` over a sphere
    centred :math:`R + h_s` below the antenna. Keeping the ground distance
    :math:`R\\theta` and both heights, the effective geometry has central angle
    :math:`\\theta/k` on a sphere of radius :math:`kR`; the target is visible when
    the straight segment antenna-target stays at least :math:`kR` from the centre
    (Skolnik 2001, sec. 8.2).
    """
    enu = np.asarray(enu, dtype=np.float64)
    e, n, u = enu[..., 0], enu[..., 1], enu[..., 2]
    horiz = np.hypot(e, n)
    R = radius_of_curvature(site_lat_rad, np.arctan2(e, n))
    hs = float(site_alt_m)
    Y = u + R + hs
    r_t = np.hypot(horiz, Y)
    theta_eff = np.arctan2(horiz, Y) / k
    Rk = k * R
    rad_t = Rk + (r_t - R)  # same target height over the effective sphere
    # Segment S -> P in the effective plane, S = (0, Rk + hs).
    Px = rad_t * np.sin(theta_eff)
    Py = rad_t * np.cos(theta_eff)
    Sy = Rk + hs
    Dx, Dy = Px, Py - Sy
    DD = Dx * Dx + Dy * Dy
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.clip(-(Sy * Dy) / DD, 0.0, 1.0)
    s = np.where(DD > 0.0, s, 0.0)
    cx = s * Dx
    cy = Sy + s * Dy
    # A site below the ellipsoid still sees upward; allow the antenna's own height deficit.
    floor = Rk + min(hs, 0.0) - 1e-6
    clear = cx * cx + cy * cy >= floor * floor
    return clear, np.arctan2(Dy, Dx)


def line_of_sight_clear(enu, site_lat_rad, site_alt_m, k=EFFECTIVE_EARTH_FACTOR):
    """Whether the refracted ray from a radar to targets clears the smooth Earth (see :func:`refracted_view`).

    Returns
    -------
    ndarray of bool, shape (...)
    """
    return refracted_view(enu, site_lat_rad, site_alt_m, k)[0]
