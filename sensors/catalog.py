"""Notional catalog of US, Japanese and ROK radars, the override keys, and :func:`build_radar`.

Every number is an unclassified open-source *estimate*, cited in the entry's
``source`` field; locations of fixed sites are approximate public locations,
ship stations and Korean Green Pine sites are notional. Entries are written in
file units (the keys of :data:`OVERRIDE_KEYS`), so a scenario's
``[[sensor]]`` overrides use exactly the same names::

    [[sensor]]
    catalog = "us-tpy2-shariki"
    range_max_km = 2000
    faces = [{ boresight_az_deg = 260, half_width_deg = 60, min_elevation_deg = 1, max_elevation_deg = 80 }]

Boresights of the fixed sites point at central North Korea (39.6 N 126.8 E), the
bearing computed with pyproj.Geod from the site position.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping

import numpy as np

from sensors.geometry import Site
from sensors.horizon import EFFECTIVE_EARTH_FACTOR
from sensors.radar import SPEED_OF_LIGHT, Face, Radar
from sim.config import NATIONS, SensorConfig
from sim.errors import MISSING, InputError, Problem

BANDS = ("L", "S", "C", "X")
PLATFORMS = ("fixed", "ship")
FACE_KEYS = ("boresight_az_deg", "half_width_deg", "min_elevation_deg", "max_elevation_deg")

# --- override keys: type, range, description -----------------------------------------------
# kind: "float" | "int" | "bool" | "str" | "choice" | "faces"; lo/hi with inclusive flags.
_SPEC: dict[str, dict] = {
    "nation": dict(kind="choice", choices=NATIONS, desc="nation operating the radar: US, JP or KR"),
    "system": dict(kind="str", desc="system name shown in tables, e.g. AN/TPY-2"),
    "band": dict(kind="choice", choices=BANDS, desc="frequency band letter: L, S, C or X"),
    "platform": dict(kind="choice", choices=PLATFORMS, desc="fixed site or ship on a station (ship motion ignored)"),
    "lat_deg": dict(kind="float", lo=-90.0, hi=90.0, desc="geodetic latitude, degrees, -90..90"),
    "lon_deg": dict(kind="float", lo=-180.0, hi=180.0, desc="longitude, degrees east, -180..180"),
    "alt_m": dict(kind="float", lo=-100.0, hi=9000.0, desc="antenna height above WGS-84, m, -100..9000"),
    "faces": dict(kind="faces", desc=(
        "array of tables, one per face: boresight_az_deg in [0, 360), half_width_deg in (0, 180] "
        "(180 = rotating, 360 deg), min_elevation_deg < max_elevation_deg in [-5, 90]")),
    "range_min_km": dict(kind="float", lo=0.0, hi=10000.0, desc="minimum range, km, 0..10000, below range_max_km"),
    "range_max_km": dict(kind="float", lo=0.0, hi=10000.0, lo_open=True, desc="instrumented range, km, (0, 10000]"),
    "scan_interval_s": dict(kind="float", lo=0.0, hi=3600.0, lo_open=True,
                            desc="revisit interval, s, (0, 3600]; rounded to a multiple of the truth step"),
    "latency_s": dict(kind="float", lo=0.0, hi=3600.0, desc="reporting latency, s, 0..3600"),
    "ref_range_km": dict(kind="float", lo=0.0, hi=1e5, lo_open=True,
                         desc="range at which a 1 m^2 target gives ref_snr_db, km, (0, 100000]"),
    "ref_snr_db": dict(kind="float", lo=-30.0, hi=60.0, desc="SNR of 1 m^2 at ref_range_km, dB, -30..60"),
    "pfa": dict(kind="float", lo=0.0, hi=0.1, lo_open=True, desc="false-alarm probability per cell, (0, 0.1]"),
    "swerling": dict(kind="int", lo=0, hi=4, desc="Swerling case of the RCS fluctuation, integer 0..4"),
    "beamwidth_deg": dict(kind="float", lo=0.0, hi=30.0, lo_open=True, desc="3 dB beamwidth, degrees, (0, 30]"),
    "bandwidth_mhz": dict(kind="float", lo=0.0, hi=10000.0, lo_open=True, desc="waveform bandwidth, MHz, (0, 10000]"),
    "frequency_ghz": dict(kind="float", lo=0.1, hi=100.0, desc="carrier frequency, GHz, 0.1..100"),
    "monopulse_k": dict(kind="float", lo=0.0, hi=10.0, lo_open=True, desc="monopulse slope k_m, (0, 10], about 1.6"),
    "dwell_time_s": dict(kind="float", lo=0.0, hi=10.0, lo_open=True, desc="coherent dwell, s, (0, 10]"),
    "range_sigma_floor_m": dict(kind="float", lo=0.0, hi=10000.0, desc="range precision floor, m, 0..10000"),
    "angle_sigma_floor_mrad": dict(kind="float", lo=0.0, hi=100.0, desc="angle precision floor, mrad, 0..100"),
    "range_rate_sigma_floor_mps": dict(kind="float", lo=0.0, hi=1000.0, desc="range-rate precision floor, m/s, 0..1000"),
    "range_rate": dict(kind="bool", desc="true if the radar reports range rate"),
    "bias_range_sigma_m": dict(kind="float", lo=0.0, hi=10000.0, desc="per-trial range registration bias sigma, m, 0..10000"),
    "bias_angle_sigma_mrad": dict(kind="float", lo=0.0, hi=100.0,
                                  desc="per-trial azimuth and elevation registration bias sigma, mrad, 0..100"),
    "bias": dict(kind="choice", choices=("on", "off"),
                 desc="registration biases: on (the bias_* sigmas) or off (default: an ideal, perfectly registered radar)"),
    "bias_site_sigma_m": dict(kind="float", lo=0.0, hi=10000.0,
                              desc="per-trial site (navigation) position error sigma per horizontal axis, m, 0..10000"),
    "false_alarms_per_scan": dict(kind="float", lo=0.0, hi=1000.0, desc="Poisson mean of false reports per scan, 0..1000"),
    "horizon_k": dict(kind="float", lo=0.5, hi=10.0, desc="effective-Earth-radius factor, 0.5..10 (4/3 standard)"),
    "source": dict(kind="str", desc="public source of the numbers"),
    "estimate": dict(kind="bool", desc="true if the numbers are open-source estimates"),
}
_FACE_SPEC = {
    "boresight_az_deg": dict(kind="float", lo=0.0, hi=360.0, hi_open=True, desc="degrees in [0, 360)"),
    "half_width_deg": dict(kind="float", lo=0.0, hi=180.0, lo_open=True, desc="degrees in (0, 180]"),
    "min_elevation_deg": dict(kind="float", lo=-5.0, hi=90.0, desc="degrees in [-5, 90], below max_elevation_deg"),
    "max_elevation_deg": dict(kind="float", lo=-5.0, hi=90.0, desc="degrees in [-5, 90], above min_elevation_deg"),
}

OVERRIDE_KEYS: dict[str, str] = {k: v["desc"] for k, v in _SPEC.items()}
"""Allowed ``[[sensor]]`` keys (besides ``name`` and ``catalog``) with a one-line description, unit and range."""


def _faces(*rows):
    return [dict(zip(FACE_KEYS, map(float, r))) for r in rows]


def _four_faces(min_el, max_el):
    # Four fixed array faces at 45, 135, 225, 315 deg, each +-45 deg: 360 deg together (Aegis deckhouse).
    return _faces(*[(az, 45.0, min_el, max_el) for az in (45.0, 135.0, 225.0, 315.0)])


# --- common parameter sets, file units --------------------------------------------------------
_COMMON = dict(
    range_min_km=1.0, pfa=1e-6, swerling=1, monopulse_k=1.6, dwell_time_s=0.01,
    range_rate=False, range_rate_sigma_floor_mps=0.5, bias_range_sigma_m=0.0, bias_angle_sigma_mrad=0.0,
    bias_site_sigma_m=0.0, bias="off",
    false_alarms_per_scan=0.1, horizon_k=EFFECTIVE_EARTH_FACTOR, ref_snr_db=13.0, estimate=True,
)
# Registration biases (issue 20), one sigma, drawn per trial (sensors.detections.registration_biases).
_SRC_BIAS_FIXED = (
    " Registration biases (assumption): range 15 m and azimuth/elevation 0.2 mrad one sigma, the residual "
    "alignment of a surveyed, calibrated array face (the figures tried in issue 20; the order of the "
    "bias values of the registration literature's examples, e.g. Fortunati et al., IEEE TSP 59(3), 2011)."
)
_SRC_BIAS_SHIP = (
    " Registration biases (assumption): range 15 m; azimuth/elevation 0.5 mrad one sigma, the array's "
    "alignment plus the ship's heading/attitude reference and deck flexure; navigation (site) error 4 m "
    "per horizontal axis one sigma (GPS SPS Performance Standard, 4th ed., 2008: <= 9 m horizontal 95 %, "
    "about 3.7 m per axis)."
)
_BIAS_FIXED = dict(bias_range_sigma_m=15.0, bias_angle_sigma_mrad=0.2)
_BIAS_SHIP = dict(bias_range_sigma_m=15.0, bias_angle_sigma_mrad=0.5, bias_site_sigma_m=4.0)
_SRC_TPY2 = (
    "AN/TPY-2: X band, 9.2 m^2 face of 25,344 T/R modules (CSIS Missile Threat, 'AN/TPY-2', 2023; "
    "Raytheon fact sheet); forward-based detection range of order 1,000-3,000 km in press reports "
    "(e.g. The Diplomat 2016; Lewis & Postol, Bull. Atomic Scientists 2017 on THAAD in Korea); "
    "beamwidth from the aperture (~lambda/D), reference range set so that a 0.01 m^2 warhead gives 13 dB "
    "near 1,000 km (estimate). Sites: Shariki (Tsugaru, Aomori) since 2006, Kyogamisaki (Kyotango, Kyoto) "
    "since 2014 (US DoD / Japan MoD announcements)."
)
_TPY2 = dict(
    _COMMON, nation="US", system="AN/TPY-2 (FBM)", band="X", platform="fixed", frequency_ghz=9.5,
    beamwidth_deg=0.6, bandwidth_mhz=500.0, ref_range_km=3000.0, range_max_km=3000.0,
    scan_interval_s=1.0, latency_s=2.0, range_sigma_floor_m=3.0, angle_sigma_floor_mrad=0.1,
    source=_SRC_TPY2 + _SRC_BIAS_FIXED, **_BIAS_FIXED,
)
_SRC_THAAD = (
    "THAAD AN/TPY-2 terminal mode at Seongju (former Lotte Skyhill golf course) since 2017 "
    "(US Forces Korea / ROK MND 2017); ROK MND: radar range about 600-800 km in terminal mode; "
    "X band, 9.2 m^2 face (CSIS Missile Threat 2023). Reference range set so that a 0.01 m^2 warhead "
    "gives 13 dB near 600 km (estimate)."
)
_SRC_SPY1 = (
    "AN/SPY-1D(V): S band (3.1-3.5 GHz), four fixed faces of 4,350 elements, 1.7 deg beam "
    "(FAS Military Analysis Network 'AN/SPY-1'; Jane's / Friedman, Naval Institute Guide to World Naval "
    "Weapon Systems, 2006); BMD track range against a warhead of several hundred km (CRS RL33745, "
    "Navy Aegis BMD, 2023, qualitative). Reference range and bandwidth are estimates."
)
_SPY1 = dict(
    _COMMON, system="AN/SPY-1D(V) Aegis", band="S", platform="ship", frequency_ghz=3.3, alt_m=20.0,
    beamwidth_deg=1.7, bandwidth_mhz=40.0, ref_range_km=1000.0, range_max_km=1000.0,
    scan_interval_s=2.0, latency_s=1.0, range_sigma_floor_m=10.0, angle_sigma_floor_mrad=0.2,
    faces=_four_faces(0.5, 85.0), source=_SRC_SPY1 + _SRC_BIAS_SHIP, **_BIAS_SHIP,
)
_SRC_FPS5 = (
    "J/FPS-5: JASDF BMD-capable ground radar in a triangular building, main face about 18 m across "
    "aimed at the Korean peninsula, reported L band, detection range over 1,000 km (Japan MoD Defense "
    "of Japan white papers 2008-2023; GlobalSecurity 'J/FPS-5'). Only the main (BMD) face is modelled; "
    "beamwidth from the aperture, bandwidth and reference range are estimates."
)
_FPS5 = dict(
    _COMMON, nation="JP", system="J/FPS-5", band="L", platform="fixed", frequency_ghz=1.3,
    beamwidth_deg=0.9, bandwidth_mhz=20.0, ref_range_km=2500.0, range_max_km=2000.0,
    scan_interval_s=2.0, latency_s=1.0, range_sigma_floor_m=15.0, angle_sigma_floor_mrad=0.2,
    source=_SRC_FPS5 + _SRC_BIAS_FIXED, **_BIAS_FIXED,
)
_SRC_GP = (
    "EL/M-2080S Green Pine: L band AESA, ROK Air Force; Block-B (two radars, 2012) range about "
    "800-900 km, Block-C (two more, 2020s) somewhat longer (Yonhap 2012, 2019; IAI/Elta brochure; "
    "Missile Defense Advocacy Alliance 'Green Pine'). Site locations not published: notional sites in the "
    "central/southern regions. Beamwidth, bandwidth and reference range are estimates."
)
_GP = dict(
    _COMMON, nation="KR", band="L", platform="fixed", frequency_ghz=1.4, beamwidth_deg=2.0,
    bandwidth_mhz=10.0, scan_interval_s=2.0, latency_s=1.0, range_sigma_floor_m=20.0,
    angle_sigma_floor_mrad=0.3, source=_SRC_GP + _SRC_BIAS_FIXED, **_BIAS_FIXED,
)
_SRC_SPY7 = (
    "AN/SPY-7(V)1 (LMSSR) selected for Aegis Ashore in Japan 2018; sites at GSDF Araya (Akita) and "
    "Mutsumi (Hagi/Abu, Yamaguchi) cancelled June 2020 (Japan MoD 2018-2020; Lockheed Martin). S band, "
    "GaN, range stated above the SPY-1 class; a what-if of the trilateral-cooperation literature. "
    "Faces, beamwidth, bandwidth and reference range are estimates."
)
_SPY7 = dict(
    _COMMON, nation="JP", system="AN/SPY-7 Aegis Ashore", band="S", platform="fixed", frequency_ghz=3.3,
    beamwidth_deg=1.2, bandwidth_mhz=60.0, ref_range_km=1600.0, range_max_km=1500.0,
    scan_interval_s=1.0, latency_s=1.0, range_sigma_floor_m=8.0, angle_sigma_floor_mrad=0.15,
    faces=_four_faces(0.5, 85.0), source=_SRC_SPY7 + _SRC_BIAS_FIXED, **_BIAS_FIXED,
)

CATALOG: dict[str, dict] = {
    "us-tpy2-shariki": dict(_TPY2, lat_deg=40.89, lon_deg=140.33, alt_m=30.0,
                            faces=_faces((267, 60, 0.5, 80))),
    "us-tpy2-kyogamisaki": dict(_TPY2, lat_deg=35.77, lon_deg=135.21, alt_m=60.0,
                                faces=_faces((302, 60, 0.5, 80))),
    "us-thaad-seongju": dict(_TPY2, system="AN/TPY-2 (THAAD TM)", lat_deg=35.99, lon_deg=128.29, alt_m=680.0,
                             ref_range_km=1900.0, range_max_km=900.0, latency_s=1.0,
                             source=_SRC_THAAD + _SRC_BIAS_FIXED,
                             faces=_faces((342, 60, 0.5, 80))),
    "us-aegis-soj": dict(_SPY1, nation="US", system="AN/SPY-1D(V) Aegis (DDG-51)",
                         lat_deg=39.0, lon_deg=135.0,
                         source=_SRC_SPY1 + _SRC_BIAS_SHIP + " Station: notional central Sea of Japan BMD patrol box."),
    "jp-fps5-sado": dict(_FPS5, lat_deg=38.07, lon_deg=138.39, alt_m=1000.0, faces=_faces((283, 60, 0.5, 80))),
    "jp-fps5-shimokoshiki": dict(_FPS5, lat_deg=31.66, lon_deg=129.73, alt_m=400.0,
                                 faces=_faces((344, 60, 0.5, 80))),
    "jp-fps5-ominato": dict(_FPS5, lat_deg=41.28, lon_deg=141.13, alt_m=860.0, faces=_faces((266, 60, 0.5, 80))),
    "jp-aegis-soj-north": dict(_SPY1, nation="JP", system="AN/SPY-1D(V) Aegis (JMSDF Atago/Maya)",
                               lat_deg=40.2, lon_deg=137.5,
                               source=_SRC_SPY1 + _SRC_BIAS_SHIP + " JMSDF Kongo/Atago/Maya classes; station notional northern Sea of Japan."),
    "jp-aegis-soj-south": dict(_SPY1, nation="JP", system="AN/SPY-1D(V) Aegis (JMSDF Atago/Maya)",
                               lat_deg=37.0, lon_deg=133.5,
                               source=_SRC_SPY1 + _SRC_BIAS_SHIP + " JMSDF Kongo/Atago/Maya classes; station notional off Oki, southern Sea of Japan."),
    "kr-greenpine-b-1": dict(_GP, system="EL/M-2080S Green Pine Block-B", lat_deg=36.85, lon_deg=127.45,
                             alt_m=300.0, ref_range_km=1500.0, range_max_km=900.0,
                             faces=_faces((350, 60, 0.5, 80))),
    "kr-greenpine-b-2": dict(_GP, system="EL/M-2080S Green Pine Block-B", lat_deg=36.45, lon_deg=127.10,
                             alt_m=300.0, ref_range_km=1500.0, range_max_km=900.0,
                             faces=_faces((356, 60, 0.5, 80))),
    "kr-greenpine-c": dict(_GP, system="EL/M-2080S Green Pine Block-C", lat_deg=35.60, lon_deg=127.90,
                           alt_m=300.0, ref_range_km=1800.0, range_max_km=1000.0,
                           faces=_faces((348, 60, 0.5, 80))),
    "kr-aegis-eastsea": dict(_SPY1, nation="KR", system="AN/SPY-1D(V) Aegis (ROKN Sejong the Great)",
                             lat_deg=37.6, lon_deg=129.6,
                             source=_SRC_SPY1 + _SRC_BIAS_SHIP + " ROKN KDX-III Sejong the Great class (2008-); station notional East Sea off Donghae."),
    "jp-aegis-ashore-araya": dict(_SPY7, lat_deg=39.67, lon_deg=140.07, alt_m=40.0),
    "jp-aegis-ashore-mutsumi": dict(_SPY7, lat_deg=34.41, lon_deg=131.53, alt_m=200.0),
}
"""Notional sensors by name, in file units (keys of :data:`OVERRIDE_KEYS`); every entry is an estimate."""


# --- validation ------------------------------------------------------------------------------
def _allowed_text(spec) -> str:
    return f"allowed: {spec['desc']}"


def _check_value(spec, value, path) -> list[Problem]:
    kind = spec["kind"]
    if kind == "bool":
        return [] if isinstance(value, bool) else [Problem(path, value, "allowed: true or false")]
    if kind == "str":
        return [] if isinstance(value, str) else [Problem(path, value, "allowed: a string")]
    if kind == "choice":
        if value in spec["choices"]:
            return []
        return [Problem(path, value, "allowed: one of " + ", ".join(map(str, spec["choices"])))]
    if kind == "faces":
        return _check_faces(value, path)
    # numbers; bool is an int subclass in Python and is not a number here
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return [Problem(path, value, _allowed_text(spec) + " (a number)")]
    if kind == "int" and not float(value).is_integer():
        return [Problem(path, value, _allowed_text(spec))]
    v = float(value)
    lo, hi = spec.get("lo", -math.inf), spec.get("hi", math.inf)
    bad = (
        not math.isfinite(v)
        or (v <= lo if spec.get("lo_open") else v < lo)
        or (v >= hi if spec.get("hi_open") else v > hi)
    )
    return [Problem(path, value, _allowed_text(spec))] if bad else []


def _check_faces(value, path) -> list[Problem]:
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        return [Problem(path, value, "allowed: a non-empty array of face tables")]
    problems = []
    for i, face in enumerate(value):
        fpath = f"{path}[{i}]"
        if not isinstance(face, Mapping):
            problems.append(Problem(fpath, face, "allowed: a table with " + ", ".join(FACE_KEYS)))
            continue
        for key in face:
            if key not in _FACE_SPEC:
                problems.append(_unknown(f"{fpath}.{key}", key, face[key], _FACE_SPEC))
        ok = True
        for key, spec in _FACE_SPEC.items():
            if key not in face:
                problems.append(Problem(f"{fpath}.{key}", MISSING, f"required: {spec['desc']}"))
                ok = False
                continue
            p = _check_value(spec, face[key], f"{fpath}.{key}")
            ok &= not p
            problems += p
        if ok and float(face["min_elevation_deg"]) >= float(face["max_elevation_deg"]):
            problems.append(Problem(f"{fpath}.min_elevation_deg", face["min_elevation_deg"],
                                    f"allowed: below max_elevation_deg ({face['max_elevation_deg']})"))
    return problems


def _unknown(path, key, value, spec) -> Problem:
    close = difflib.get_close_matches(str(key), list(spec), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return Problem(path, value, f"unknown key {key!r}; {hint}allowed: " + ", ".join(spec))


def check_overrides(overrides: Mapping[str, object], key_prefix: str) -> list[Problem]:
    """Every problem in a ``[[sensor]]`` table's override keys (file units).

    Parameters
    ----------
    overrides : mapping str -> object
        File keys and values as read from TOML (without ``name`` and ``catalog``).
    key_prefix : str
        Key path of the table, e.g. ``"sensor[3]"``; problems are reported at
        ``sensor[3].lat_deg`` or ``sensor[3].faces[0].half_width_deg``.

    Returns
    -------
    list of sim.errors.Problem
        Unknown keys (with the closest valid key suggested, difflib), wrong
        types and out-of-range values; empty when all is well. Cross-key
        checks against the catalog entry (``range_min_km < range_max_km``) are
        made by :func:`build_radar`.
    """
    problems = []
    for key, value in overrides.items():
        path = f"{key_prefix}.{key}" if key_prefix else str(key)
        spec = _SPEC.get(key)
        if spec is None:
            problems.append(_unknown(path, key, value, _SPEC))
        else:
            problems += _check_value(spec, value, path)
    if "range_min_km" in overrides and "range_max_km" in overrides and not problems:
        if float(overrides["range_min_km"]) >= float(overrides["range_max_km"]):
            problems.append(Problem(f"{key_prefix}.range_min_km", overrides["range_min_km"],
                                    "allowed: below range_max_km"))
    return problems


def build_radar(cfg: SensorConfig, key_prefix: str | None = None) -> Radar:
    """Build a :class:`~sensors.radar.Radar` (SI units) from a catalog entry and overrides.

    Parameters
    ----------
    cfg : sim.config.SensorConfig
        ``catalog`` names an entry of :data:`CATALOG`; ``overrides`` are
        (file key, value) pairs in file units.
    key_prefix : str, optional
        Key path used in error messages; default ``sensor[<name>]``.

    Returns
    -------
    Radar

    Raises
    ------
    sim.errors.InputError
        Unknown catalog name (closest names suggested) or any problem of
        :func:`check_overrides`, all problems at once.
    """
    prefix = key_prefix if key_prefix is not None else f"sensor[{cfg.name or cfg.catalog}]"
    if cfg.catalog not in CATALOG:
        close = difflib.get_close_matches(str(cfg.catalog), list(CATALOG), n=3)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise InputError.single(f"{prefix}.catalog", cfg.catalog,
                                f"unknown catalog name; {hint}allowed: " + ", ".join(CATALOG))
    over = dict(cfg.overrides)
    problems = check_overrides(over, prefix)
    if problems:
        raise InputError(problems)
    p = dict(CATALOG[cfg.catalog])
    p.update(over)
    if float(p["range_min_km"]) >= float(p["range_max_km"]):
        raise InputError.single(f"{prefix}.range_min_km", p["range_min_km"],
                                f"allowed: below range_max_km ({p['range_max_km']})")
    return radar_from_params(cfg.name or cfg.catalog, p)


def radar_from_params(name: str, p: Mapping[str, object]) -> Radar:
    """Convert a complete, validated parameter table in file units (a catalog row) to SI."""
    d2r = math.radians
    on = 1.0 if p.get("bias", "off") == "on" else 0.0
    lat, lon, alt = d2r(float(p["lat_deg"])), d2r(float(p["lon_deg"])), float(p["alt_m"])
    site = Site(lat, lon, alt)
    faces = tuple(
        Face(d2r(float(f["boresight_az_deg"])), d2r(float(f["half_width_deg"])),
             d2r(float(f["min_elevation_deg"])), d2r(float(f["max_elevation_deg"])))
        for f in p["faces"]
    )
    return Radar(
        name=name, nation=str(p["nation"]), system=str(p["system"]), band=str(p["band"]),
        platform=str(p["platform"]), lat=lat, lon=lon, alt=alt,
        site_ecef=np.ascontiguousarray(site.ecef), R_enu=np.ascontiguousarray(site.R_enu), faces=faces,
        range_min=float(p["range_min_km"]) * 1e3, range_max=float(p["range_max_km"]) * 1e3,
        scan_interval=float(p["scan_interval_s"]), latency=float(p["latency_s"]),
        ref_range=float(p["ref_range_km"]) * 1e3, ref_snr=10.0 ** (float(p["ref_snr_db"]) / 10.0),
        pfa=float(p["pfa"]), swerling=int(p["swerling"]), beamwidth=d2r(float(p["beamwidth_deg"])),
        bandwidth=float(p["bandwidth_mhz"]) * 1e6, wavelength=SPEED_OF_LIGHT / (float(p["frequency_ghz"]) * 1e9),
        monopulse_k=float(p["monopulse_k"]), dwell_time=float(p["dwell_time_s"]),
        range_sigma_floor=float(p["range_sigma_floor_m"]),
        angle_sigma_floor=float(p["angle_sigma_floor_mrad"]) * 1e-3,
        range_rate_sigma_floor=float(p["range_rate_sigma_floor_mps"]), range_rate=bool(p["range_rate"]),
        # bias = "off" (the default): an ideal radar (no registration error), whatever its sigmas; "on" draws
        # them. Off by default while the in-loop registration is not consistent on Hwasong-15 (issue 20:
        # trial 0 of seed 20171129 diverged to 45-53 km with it, 84-94 m on ideal radars, 2026-12-08)
        bias_range_sigma=float(p["bias_range_sigma_m"]) * on,
        bias_angle_sigma=float(p["bias_angle_sigma_mrad"]) * 1e-3 * on,
        bias_site_sigma=float(p["bias_site_sigma_m"]) * on,
        false_alarms_per_scan=float(p["false_alarms_per_scan"]), horizon_k=float(p["horizon_k"]),
        source=str(p["source"]), estimate=bool(p["estimate"]),
    )


def catalog_radar(name: str, **overrides) -> Radar:
    """Shortcut: :func:`build_radar` of catalog entry ``name`` with keyword overrides in file units."""
    return build_radar(SensorConfig(name=name, catalog=name, overrides=tuple(overrides.items())))


def _fov_text(faces) -> str:
    parts = []
    for f in faces:
        if float(f["half_width_deg"]) >= 180.0:
            az = "az 360"
        else:
            az = f"az {f['boresight_az_deg']:g}+-{f['half_width_deg']:g}"
        parts.append(f"{az}, el {f['min_elevation_deg']:g}..{f['max_elevation_deg']:g}")
    return "; ".join(parts)


def catalog_rows() -> list[dict]:
    """One plain-JSON dict per catalog entry, for ``gsomia-sim sensors [--json]``.

    Returns
    -------
    list of dict
        Keys: ``name``, then every field a scenario's ``[[sensor]]`` may override, in the
        schema's order (nation, system, band, platform, lat_deg, ..., false_alarms_per_scan,
        horizon_k, source, estimate), with ``fov`` (a text summary of the faces) before
        ``faces`` (list of dicts). Units as in the scenario file (km, deg, s, mrad, m).
        A new-user trial found six overridable fields missing, ``false_alarms_per_scan`` among them.
    """
    convert = {"float": float, "int": int, "bool": bool}
    rows = []
    for name, p in CATALOG.items():
        row = {"name": name}
        for key, spec in _SPEC.items():
            if key not in p:
                continue
            if key == "faces":
                row["fov"] = _fov_text(p["faces"])
                row["faces"] = [dict(f) for f in p["faces"]]
            else:
                row[key] = convert.get(spec["kind"], str)(p[key])
        rows.append(row)
    return rows
