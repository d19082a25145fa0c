"""Radar model: coverage (faces, range, horizon), SNR, detection probability, accuracy.

A :class:`Radar` is a frozen description in SI units, built from the notional
catalog by :func:`sensors.catalog.build_radar`. The functions here are pure and
vectorized: they take arrays of any shape and return arrays of the same shape.

Model
-----
* Coverage: between minimum and instrumented range, above the refracted radar
  horizon, and inside one of the radar's faces (azimuth sector, and limits on
  the apparent, refracted elevation) (:mod:`sensors.horizon`).
* SNR from the radar equation scaled from a reference point: a 1 m^2 target at
  the reference range ``ref_range`` gives ``ref_snr``, so
  :math:`\\mathrm{SNR} = \\mathrm{SNR}_{ref}\\,\\sigma\\,(R_{ref}/R)^4`
  (Skolnik 2001, eq. 2.1 with all radar constants folded into the reference).
* One coherent dwell per scan (N = 1 after coherent integration), square-law
  detection at the radar's false-alarm probability; Swerling 0 (Marcum),
  I/II (exponential RCS) and III/IV (chi-square with 4 degrees of freedom).
  With a single dwell per scan, II equals I and IV equals III.
* Measurement precision (Richards, Scheer & Holm, *Principles of Modern Radar*,
  2010, sec. 18.3; Barton, *Radar System Analysis and Modeling*, 2005, ch. 11):
  range :math:`c/(2B\\sqrt{2\\,\\mathrm{SNR}})`, angle
  :math:`\\theta_{3}/(k_m\\sqrt{2\\,\\mathrm{SNR}})`, range rate
  :math:`\\lambda/(2T_d\\sqrt{2\\,\\mathrm{SNR}})`, each root-sum-squared with a
  floor (propagation, calibration, quantization).

References
----------
Skolnik, *Introduction to Radar Systems*, 3rd ed., 2001, ch. 2 (radar equation, Swerling models).
Richards, *Fundamentals of Radar Signal Processing*, 2nd ed., 2014, sec. 6.3
(detection probability of Swerling targets, square-law detector).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from sensors.geometry import TWO_PI
from sensors.horizon import EFFECTIVE_EARTH_FACTOR, refracted_view

SPEED_OF_LIGHT = 299792458.0  # m/s, exact (SI)
MIN_COS_ELEVATION = 0.02  # azimuth error grows as 1/cos(el); capped near zenith where azimuth is undefined

# Phase codes of sim.truth.Truth.phase.
PHASE_BOOST, PHASE_MIDCOURSE, PHASE_REENTRY = 0, 1, 2

# Default radar cross-sections (m^2), notional order-of-magnitude estimates, by
# (Truth.object_kind, Truth.phase). "rv" is the missile body (its booster in
# boost); "stage" is the spent last stage after separation.
#   booster hardbody, side-on, a few m long: ~1 m^2 (estimate; APS Study Group, Report on
#     Boost-Phase Intercept Systems, Rev. Mod. Phys. 76, S1, 2004, treats boosters as large targets);
#   re-entry vehicle, conical: 0.01-0.1 m^2 at X band (estimate; Sessler et al., Countermeasures,
#     UCS/MIT Security Studies Program, 2000, ch. 4) -> 0.1 m^2 (includes single-stage bodies);
#   tumbling spent stage: ~1-10 m^2 (estimate, same sources) -> 2 m^2.
RCS_DEFAULT_M2: dict[tuple[str, int], float] = {
    ("rv", PHASE_BOOST): 1.0,
    ("rv", PHASE_MIDCOURSE): 0.1,
    ("rv", PHASE_REENTRY): 0.1,
    ("stage", PHASE_BOOST): 1.0,
    ("stage", PHASE_MIDCOURSE): 2.0,
    ("stage", PHASE_REENTRY): 2.0,
}


@dataclass(frozen=True)
class Face:
    """One radar face (array face or the sector of a rotating antenna).

    Attributes
    ----------
    boresight_az : float
        Azimuth of the face normal, rad in [0, 2pi), clockwise from north.
    half_width : float
        Azimuth half-width of the covered sector, rad in (0, pi]; pi covers 360 degrees.
    min_elevation, max_elevation : float
        Elevation limits, rad, min < max.
    """

    boresight_az: float
    half_width: float
    min_elevation: float
    max_elevation: float

    def covers(self, az, el):
        """Boolean mask of directions (azimuth, elevation in rad, broadcast) inside this face."""
        off = np.abs(np.mod(np.asarray(az) - self.boresight_az + np.pi, TWO_PI) - np.pi)
        return (off <= self.half_width + 1e-12) & (el >= self.min_elevation) & (el <= self.max_elevation)

    @property
    def solid_extent(self) -> float:
        """Azimuth-elevation extent (rad^2) of the face, the weight of its share of false alarms."""
        return 2.0 * self.half_width * (self.max_elevation - self.min_elevation)


@dataclass(frozen=True, eq=False)
class Radar:
    """A radar in SI units (built by :func:`sensors.catalog.build_radar`).

    Attributes
    ----------
    name, nation, system, band, platform : str
        Display name, nation (``"US"``, ``"JP"``, ``"KR"``), system (``"AN/TPY-2"``),
        frequency band letter, ``"fixed"`` or ``"ship"`` (a ship holds its station; its motion is ignored).
    lat, lon, alt : float
        Geodetic antenna position, rad, rad, m (WGS-84).
    site_ecef : ndarray, shape (3,)
        Antenna position, ECEF m.
    R_enu : ndarray, shape (3, 3)
        ECEF-to-ENU rotation at the site.
    faces : tuple of Face
    range_min, range_max : float
        Minimum and instrumented range, m.
    scan_interval : float
        Revisit interval of a target, s.
    latency : float
        Reporting latency from measurement to report at the national node, s (used by fusion.network).
    ref_range : float
        Range (m) at which a 1 m^2 target gives ``ref_snr``.
    ref_snr : float
        Linear SNR at ``ref_range`` for 1 m^2 (one dwell).
    pfa : float
        False-alarm probability per resolution cell and dwell.
    swerling : int
        Swerling case 0-4 of the RCS fluctuation (scan to scan).
    beamwidth : float
        Two-way 3 dB beamwidth at broadside, rad.
    bandwidth : float
        Waveform bandwidth, Hz.
    wavelength : float
        m.
    monopulse_k : float
        Monopulse slope factor k_m (about 1.6).
    dwell_time : float
        Coherent dwell, s (range-rate precision).
    range_sigma_floor, angle_sigma_floor, range_rate_sigma_floor : float
        Precision floors, m, rad, m/s.
    range_rate : bool
        Whether the radar reports range rate.
    bias_range_sigma, bias_angle_sigma : float
        One-sigma registration biases drawn once per trial (m, rad); not in R.
    bias_site_sigma : float
        One-sigma error of the site's horizontal position (east and north each), m,
        drawn once per trial: a ship's navigation error (the radar measures from
        where it is, the nation places its plots from where it is said to be).
    false_alarms_per_scan : float
        Poisson mean of false reports per scan after the radar's own processing.
    horizon_k : float
        Effective-Earth factor (4/3).
    source : str
        Public sources of the numbers.
    estimate : bool
        True: the numbers are open-source estimates, not official figures.
    """

    name: str
    nation: str
    system: str
    band: str
    platform: str
    lat: float
    lon: float
    alt: float
    site_ecef: np.ndarray
    R_enu: np.ndarray
    faces: tuple[Face, ...]
    range_min: float
    range_max: float
    scan_interval: float
    latency: float
    ref_range: float
    ref_snr: float
    pfa: float
    swerling: int
    beamwidth: float
    bandwidth: float
    wavelength: float
    monopulse_k: float
    dwell_time: float
    range_sigma_floor: float
    angle_sigma_floor: float
    range_rate_sigma_floor: float
    range_rate: bool
    bias_range_sigma: float
    bias_angle_sigma: float
    false_alarms_per_scan: float
    bias_site_sigma: float = 0.0
    horizon_k: float = EFFECTIVE_EARTH_FACTOR
    source: str = ""
    estimate: bool = True

    # -- coverage -------------------------------------------------------------
    def in_field_of_view(self, az, el):
        """Mask of directions (rad, broadcast) inside any face."""
        az = np.asarray(az)
        m = np.zeros(np.broadcast_shapes(az.shape, np.shape(el)), dtype=bool)
        for f in self.faces:  # a radar has at most a handful of faces
            m |= f.covers(az, el)
        return m

    def visible(self, enu, rae):
        """Mask of targets the radar can see (range limits, radar horizon, faces).

        Parameters
        ----------
        enu : ndarray, shape (..., 3)
            Target offsets in the site ENU frame, m (NaN: not in flight).
        rae : ndarray, shape (..., 3)
            The same as range (m), azimuth, elevation (rad) (:func:`sensors.geometry.enu_to_rae`).

        Returns
        -------
        ndarray of bool, shape (...)
            Within ``[range_min, range_max]``, line of sight clear of the 4/3 Earth, and
            inside a face in azimuth and in *apparent* (refracted) elevation, the angle
            the beam is steered to (:func:`sensors.horizon.refracted_view`).
        """
        r = rae[..., 0]
        with np.errstate(invalid="ignore"):
            m = (r >= self.range_min) & (r <= self.range_max)
        if m.any():
            idx = np.nonzero(m)
            clear, el_app = refracted_view(enu[idx], self.lat, self.alt, self.horizon_k)
            m[idx] = clear & self.in_field_of_view(rae[..., 1][idx], el_app)
        return m

    # -- detection --------------------------------------------------------------
    def snr(self, range_m, rcs_m2):
        """Mean single-dwell SNR (linear) of targets of RCS ``rcs_m2`` at ``range_m`` (radar equation)."""
        return self.ref_snr * np.asarray(rcs_m2) * (self.ref_range / np.asarray(range_m)) ** 4

    def detection_probability(self, snr):
        """Probability of detection per dwell at this radar's Pfa and Swerling case (:func:`detection_probability`)."""
        return detection_probability(snr, self.pfa, self.swerling)

    # -- accuracy ---------------------------------------------------------------
    def sigmas(self, snr, el):
        """One-sigma measurement noise of range (m), azimuth (rad), elevation (rad) and range rate (m/s).

        Parameters
        ----------
        snr : array_like
            Linear SNR.
        el : array_like
            Elevation, rad (azimuth error is the cross-range angle error over cos(el)).

        Returns
        -------
        tuple of 4 ndarrays
            ``sigma_range, sigma_az, sigma_el, sigma_range_rate``.
        """
        return measurement_sigmas(
            snr, el, self.bandwidth, self.beamwidth, self.monopulse_k, self.wavelength, self.dwell_time,
            self.range_sigma_floor, self.angle_sigma_floor, self.range_rate_sigma_floor,
        )

    @property
    def detection_threshold(self) -> float:
        """Square-law threshold over mean noise power, T = -ln(Pfa)."""
        return -np.log(self.pfa)


def measurement_sigmas(snr, el, bandwidth, beamwidth, monopulse_k, wavelength, dwell_time,
                       range_floor, angle_floor, range_rate_floor):
    """One-sigma radar measurement precision as a function of SNR (all arguments broadcast).

    Parameters
    ----------
    snr : array_like
        Linear SNR of the detection.
    el : array_like
        Elevation, rad.
    bandwidth : array_like
        Waveform bandwidth B, Hz.
    beamwidth : array_like
        3 dB beamwidth :math:`\\theta_3`, rad.
    monopulse_k : array_like
        Monopulse slope :math:`k_m`.
    wavelength, dwell_time : array_like
        :math:`\\lambda` (m) and coherent dwell :math:`T_d` (s).
    range_floor, angle_floor, range_rate_floor : array_like
        Floors (m, rad, m/s), root-sum-squared with the SNR terms.

    Returns
    -------
    sigma_range, sigma_az, sigma_el, sigma_range_rate : ndarray
        m, rad, rad, m/s.

    Notes
    -----
    .. math::

        \\sigma_R = \\frac{c}{2B\\sqrt{2\\,\\mathrm{SNR}}},\\quad
        \\sigma_\\theta = \\frac{\\theta_3}{k_m\\sqrt{2\\,\\mathrm{SNR}}},\\quad
        \\sigma_{\\dot R} = \\frac{\\lambda}{2T_d\\sqrt{2\\,\\mathrm{SNR}}}

    (Richards, Scheer & Holm 2010, sec. 18.3; Barton 2005, ch. 11). The
    azimuth error is the cross-range angle error over :math:`\\cos\\epsilon`
    (capped at :data:`MIN_COS_ELEVATION`).
    """
    root = np.sqrt(2.0 * np.asarray(snr, dtype=np.float64))
    s_r = np.hypot(SPEED_OF_LIGHT / (2.0 * bandwidth * root), range_floor)
    s_a = np.hypot(beamwidth / (monopulse_k * root), angle_floor)
    s_az = s_a / np.maximum(np.cos(el), MIN_COS_ELEVATION)
    s_rr = np.hypot(wavelength / (2.0 * dwell_time * root), range_rate_floor)
    return s_r, s_az, s_a, s_rr


def detection_probability(snr, pfa, swerling):
    """Single-dwell detection probability of a square-law detector.

    Parameters
    ----------
    snr : array_like
        Mean linear SNR of the dwell (after coherent integration).
    pfa : float
        False-alarm probability, in (0, 1).
    swerling : int
        0 (steady target), 1 or 2 (exponential RCS), 3 or 4 (chi-square, 4 dof).

    Returns
    -------
    ndarray
        Detection probability, same shape as ``snr``.

    Notes
    -----
    With threshold :math:`T = -\\ln P_{fa}` on the noise-normalized square-law
    output and mean SNR :math:`\\bar S` (Richards 2014, sec. 6.3; Skolnik 2001, sec. 2.8):

    * Swerling 0: :math:`P_d = Q_1(\\sqrt{2\\bar S}, \\sqrt{2T})` (Marcum Q), computed as
      the survival function of a non-central chi-square with 2 dof.
    * Swerling I/II: :math:`P_d = P_{fa}^{1/(1+\\bar S)}`.
    * Swerling III/IV: :math:`P_d = e^{-T/(1+\\bar S/2)}\\left(1 + \\frac{T\\,\\bar S/2}{(1+\\bar S/2)^2}\\right)`.

    Raises
    ------
    ValueError
        Unknown Swerling case.
    """
    S = np.asarray(snr, dtype=np.float64)
    T = -np.log(pfa)
    if swerling == 0:
        return 1.0 - special.chndtr(2.0 * T, 2.0, 2.0 * S)
    if swerling in (1, 2):
        return np.exp(-T / (1.0 + S))
    if swerling in (3, 4):
        h = 1.0 + 0.5 * S
        return np.exp(-T / h) * (1.0 + T * 0.5 * S / (h * h))
    raise ValueError(f"Swerling case must be 0-4, got {swerling!r}")


def default_rcs(object_kind, phase, table=None):
    """Radar cross-section (m^2) per object and time from the object kind and flight phase.

    Parameters
    ----------
    object_kind : sequence of str, length objects
        ``Truth.object_kind`` (``"rv"`` or ``"stage"``).
    phase : ndarray of int, shape (trials, objects, T)
        ``Truth.phase`` (-1 not in flight, 0 boost, 1 midcourse, 2 re-entry).
    table : mapping (kind, phase) -> m^2, optional
        Overrides of :data:`RCS_DEFAULT_M2` (missing pairs fall back to the defaults).

    Returns
    -------
    ndarray, shape (trials, objects, T)
        RCS in m^2; 0 where not in flight.

    Raises
    ------
    KeyError
        A kind with no entry in the table.
    """
    tab = dict(RCS_DEFAULT_M2)
    if table:
        tab.update(table)
    phase = np.asarray(phase)
    lut = np.zeros((len(object_kind), 4))  # column 3 = phase -1 (not in flight), via index -1
    for j, kind in enumerate(object_kind):
        for p in (PHASE_BOOST, PHASE_MIDCOURSE, PHASE_REENTRY):
            lut[j, p] = tab[(kind, p)]
    obj = np.arange(len(object_kind))[None, :, None]
    return lut[obj, phase.astype(np.int64)]
