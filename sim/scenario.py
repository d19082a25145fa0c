"""Scenario files: TOML (schema version 1) loaded and validated into frozen dataclasses.

A scenario file reads as a tabletop-exercise vignette: one real or plausible
launch (``[[threat]]``), the radars in play (``[[sensor]]``), the sharing
policies compared (``[sharing]``), the estimator (``[tracker]``) and the
figures of merit (``[metrics]``). Human units in the file, the unit in the key
name; SI inside (see :mod:`sim.config`).

Every problem in a file is reported, not only the first: :func:`load_scenario`
raises one :class:`sim.errors.InputError` carrying a :class:`sim.errors.Problem`
per bad key, each naming the file, the key path (``sensor[3].lat_deg``), the
value and what is allowed. Unknown keys get the closest valid key suggested.

Scenario loading belongs to the run layer of ``sim`` (with the engine and the
CLI), so it may check names against the sensor catalog and the sharing rules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import hashlib
import json
import math
import re
import tomllib
import unicodedata
from pathlib import Path

from sim.config import (
    BUILTIN_POLICIES,
    DEFAULT_POLICIES,
    ASSOCIATIONS,
    DELETIONS,
    WHEN_FULL,
    FILTERS,
    INITIATIONS,
    JPDA_PDS,
    REGISTRATIONS,
    MANEUVERS,
    NATION_PAIRS,
    NATIONS,
    SHAPES,
    SHARED_KINDS,
    TRACK_FUSION_RULES,
    Dispersion,
    LinkConfig,
    MetricsConfig,
    PolicyConfig,
    Scenario,
    ScenarioInfo,
    SensorConfig,
    SharingConfig,
    ThreatConfig,
    TrackerConfig,
)
from sim.errors import MISSING, InputError, Problem, did_you_mean

SCHEMA_VERSION = 1
SECTIONS = ("schema_version", "scenario", "threat", "sensor", "sharing", "tracker", "metrics")

_DEG = math.pi / 180.0


class _Reader:
    """Reads typed values out of TOML tables, collecting every problem with its key path."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def add(self, key_path: str, value, allowed: str) -> None:
        self.problems.append(Problem(key_path, value, allowed, self.file))

    def table(self, value, key_path: str) -> dict | None:
        if not isinstance(value, dict):
            self.add(key_path, value, "must be a table")
            return None
        return value

    def table_list(self, value, key_path: str) -> list[dict]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.add(key_path, value, f"must be an array of tables ([[{key_path}]])")
            return []
        return value

    def unknown_keys(self, table: dict, allowed, prefix: str) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.add(_join(prefix, key), table[key], f"unknown key; {hint}allowed: {', '.join(sorted(allowed))}")

    def get(self, table: dict, key: str, prefix: str, kind: str, *, required=False, default=None,
            lo=None, hi=None, lo_open=False, choices=None, nonblank=False):
        """Read one key; on any problem record it and return ``default``.

        ``kind`` is one of ``"str"``, ``"int"``, ``"float"``, ``"bool"``, ``"datetime"``.
        ``lo``/``hi`` bound numbers (``lo_open`` makes the lower bound strict);
        ``nonblank`` rejects a string that is empty or only spaces (names).
        """
        path = _join(prefix, key)
        if key not in table:
            if required:
                self.add(path, MISSING, f"required key ({_kind_words(kind, lo, hi, lo_open, choices)})")
            return default
        value = table[key]
        if kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and not math.isfinite(float(value)):
                self.add(path, value, "must be a finite number")
                return default
            value = float(value) if ok else value
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "str":
            ok = isinstance(value, str)
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "datetime":
            try:
                value, ok = _as_utc(value)
            except OverflowError:  # 9999-12-31T23:59:59-14:00 is in year 10000 in UTC (new-user trial: a traceback)
                self.add(path, table[key], f"out of range in UTC; {_kind_words(kind, lo, hi, lo_open, choices)} "
                                           "within years 1-9999 once converted to UTC")
                return default
        else:  # pragma: no cover - programming error
            raise ValueError(kind)
        if not ok and kind == "datetime" and isinstance(value, dt.datetime) and value.tzinfo is None:
            self.add(path, table[key], f"no time zone; {_kind_words(kind, lo, hi, lo_open, choices)}")
            return default
        if not ok:
            self.add(path, table[key], f"wrong type; {_kind_words(kind, lo, hi, lo_open, choices)}")
            return default
        if nonblank and not value.strip():
            self.add(path, value, "blank; a name with at least one visible character")
            return default
        bad = [c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")] if nonblank else []
        if bad:  # a newline split report.md's headings, U+202E reversed the terminal title (new-user trial)
            self.add(path, value, f"contains U+{ord(bad[0]):04X}; a name without control, format or line-break "
                                  "characters")
            return default
        if choices is not None and value not in choices:
            self.add(path, value, f"unknown name; {did_you_mean(value, choices)}allowed: {', '.join(map(str, choices))}")
            return default
        if lo is not None and (value < lo or (lo_open and value == lo)):
            self.add(path, value, f"out of range; {_kind_words(kind, lo, hi, lo_open, choices)}")
            return default
        if hi is not None and value > hi:
            self.add(path, value, f"out of range; {_kind_words(kind, lo, hi, lo_open, choices)}")
            return default
        return value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _kind_words(kind, lo, hi, lo_open, choices) -> str:
    if choices is not None:
        return "one of " + ", ".join(map(str, choices))
    words = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
             "datetime": "a UTC date-time such as 2017-11-28T18:18:00Z"}[kind]
    if lo is not None and hi is not None:
        return f"{words} in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}]"
    if lo is not None:
        return f"{words} {'>' if lo_open else '>='} {_num(lo)}"
    if hi is not None:
        return f"{words} <= {_num(hi)}"
    return words


def _num(v) -> str:
    """A bound as the user would type it: whole numbers with separators (1,000,000), others to 10 digits."""
    return f"{v:,}" if isinstance(v, int) else f"{v:.10g}"


def file_stem(name: str) -> str:
    """File-name form of a threat name in the report's figure names: lower case, each character other
    than a letter or digit as '-', no leading or trailing '-' ("HS-15 #2" -> "hs-15--2")."""
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _as_utc(value):
    """TOML date-time or ISO-8601 string with a UTC offset -> aware datetime."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value, False
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc), True
    return value, False


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------

MAX_TRIALS = 1_000_000  # largest Monte Carlo trial count a scenario (or --trials) may ask for
MAX_SEED = 2**63 - 1  # seeds are non-negative 64-bit integers (numpy SeedSequence entropy)
MIN_DT_S = 0.1  # s, finest truth and output grid: radar revisits are 0.1 s or longer, and the grid's memory
#                 grows as 1/dt (1e-9 s asked for a 62 TiB array: new-user trial)
MAX_THREAT_NAME_CHARS = 64  # a threat's name is part of its figures' file names (255 bytes at most on Linux;
#                            "position_error_" + 200 bytes + ".png" fits)
MAX_WORKERS = 64  # processes for run_scenario(workers=) and `run --workers`
DEFAULT_CHUNK_TRIALS = 25  # trials batched together by `run` unless --chunk-trials says otherwise (memory ~ chunk)
_SCENARIO_KEYS = ("name", "description", "event_utc", "seed", "trials", "dt_s", "duration_s", "sources")


def _read_info(r: _Reader, doc: dict) -> ScenarioInfo | None:
    if "scenario" not in doc:
        r.add("scenario", MISSING, "required table [scenario] with name, description, event_utc, seed, trials")
        return None
    t = r.table(doc["scenario"], "scenario")
    if t is None:
        return None
    r.unknown_keys(t, _SCENARIO_KEYS, "scenario")
    n0 = len(r.problems)
    name = r.get(t, "name", "scenario", "str", required=True, nonblank=True)
    description = r.get(t, "description", "scenario", "str", required=True)
    event = r.get(t, "event_utc", "scenario", "datetime", required=True)
    seed = r.get(t, "seed", "scenario", "int", required=True, lo=0, hi=MAX_SEED)
    trials = r.get(t, "trials", "scenario", "int", required=True, lo=1, hi=MAX_TRIALS)
    dt_s = r.get(t, "dt_s", "scenario", "float", default=1.0, lo=MIN_DT_S, hi=60.0)
    duration = r.get(t, "duration_s", "scenario", "float", default=None, lo=0.0, lo_open=True, hi=86400.0)
    sources = t.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        r.add("scenario.sources", sources, "wrong type; an array of strings")
        sources = []
    if len(r.problems) > n0:
        return None
    return ScenarioInfo(name, description, event, seed, trials, dt_s, duration, tuple(sources))


_THREAT_KEYS = ("name", "missile", "launch_lat_deg", "launch_lon_deg", "launch_time_s", "bearing_deg",
                "range_km", "target_lat_deg", "target_lon_deg", "shape", "apogee_km", "maneuver",
                "stage_object", "dispersion")
_DISPERSION_KEYS = ("launch_time_s", "burnout_speed_mps", "azimuth_deg", "ballistic_coeff_frac")


def _missile_names() -> tuple[str, ...]:
    from sim.missiles import MISSILES

    return tuple(MISSILES)


def _read_threats(r: _Reader, doc: dict) -> list[ThreatConfig]:
    if "threat" not in doc:
        r.add("threat", MISSING, "at least one [[threat]] table is required")
        return []
    tables = r.table_list(doc["threat"], "threat")
    if not tables and isinstance(doc["threat"], list):
        r.add("threat", doc["threat"], "at least one [[threat]] table is required")
    missiles = _missile_names()
    out = []
    names = set()
    stems = {}  # file-name form -> the threat that has it
    for i, t in enumerate(tables):
        p = f"threat[{i}]"
        n0 = len(r.problems)
        r.unknown_keys(t, _THREAT_KEYS, p)
        name = r.get(t, "name", p, "str", default=f"threat-{i}", nonblank=True)
        stem = file_stem(name)
        if name in names:
            r.add(f"{p}.name", name, "must be unique among threats")
        elif len(name) > MAX_THREAT_NAME_CHARS or len(stem.encode()) > 4 * 50:  # 4-byte letters: a byte bound too
            r.add(f"{p}.name", name[:20] + "...", f"{len(name):,} characters ({len(stem.encode()):,} bytes as a "
                  f"file name); a name of at most {MAX_THREAT_NAME_CHARS} characters and 200 bytes (figure files "
                  "are named after it)")
        elif not stem:
            r.add(f"{p}.name", name, "a name with at least one letter or digit (figure files are named after it)")
        elif stem in stems:
            r.add(f"{p}.name", name, f"names the same figure files as {stems[stem]} ('{stem}'); threat names "
                  "must differ in their letters or digits, not only in case, spaces or punctuation")
        names.add(name)
        stems.setdefault(stem, f"threat[{i}] '{name}'")
        missile = r.get(t, "missile", p, "str", required=True, choices=missiles)
        lat = r.get(t, "launch_lat_deg", p, "float", required=True, lo=-90.0, hi=90.0)
        lon = r.get(t, "launch_lon_deg", p, "float", required=True, lo=-180.0, hi=180.0)
        t0 = r.get(t, "launch_time_s", p, "float", default=0.0, lo=0.0, hi=86400.0)
        bearing = r.get(t, "bearing_deg", p, "float", lo=0.0, hi=360.0)
        rng = r.get(t, "range_km", p, "float", lo=0.0, lo_open=True, hi=20000.0)
        tlat = r.get(t, "target_lat_deg", p, "float", lo=-90.0, hi=90.0)
        tlon = r.get(t, "target_lon_deg", p, "float", lo=-180.0, hi=180.0)
        shape = r.get(t, "shape", p, "str", default="minimum-energy", choices=SHAPES)
        apogee = r.get(t, "apogee_km", p, "float", lo=0.0, lo_open=True, hi=10000.0)
        maneuver = r.get(t, "maneuver", p, "str", default="none", choices=MANEUVERS)
        stage = r.get(t, "stage_object", p, "bool", default=True)
        by_bearing = "bearing_deg" in t or "range_km" in t
        by_target = "target_lat_deg" in t or "target_lon_deg" in t
        if by_bearing and by_target:
            r.add(p, "bearing_deg/range_km and target_lat_deg/target_lon_deg",
                  "give either bearing_deg with range_km, or target_lat_deg with target_lon_deg, not both")
        elif by_bearing and ("bearing_deg" not in t or "range_km" not in t):
            missing = "range_km" if "range_km" not in t else "bearing_deg"
            r.add(f"{p}.{missing}", MISSING, "required with " + ("bearing_deg" if missing == "range_km" else "range_km"))
        elif by_target and ("target_lat_deg" not in t or "target_lon_deg" not in t):
            missing = "target_lon_deg" if "target_lon_deg" not in t else "target_lat_deg"
            r.add(f"{p}.{missing}", MISSING, "required with the other target coordinate")
        elif not by_bearing and not by_target:
            r.add(f"{p}.range_km", MISSING, "give bearing_deg with range_km, or target_lat_deg with target_lon_deg")
        # A bad shape was reported above; judging apogee_km against its default would add a wrong second error.
        shape_given = t.get("shape", "minimum-energy") in SHAPES
        if shape_given and shape in ("lofted", "depressed") and "apogee_km" not in t:
            r.add(f"{p}.apogee_km", MISSING, f"required for shape = '{shape}' (km above the ellipsoid)")
        if shape_given and shape == "minimum-energy" and "apogee_km" in t:
            r.add(f"{p}.apogee_km", t["apogee_km"], "not used with shape = 'minimum-energy'; "
                  "use shape = 'lofted' or 'depressed' to fly to an apogee")
        if maneuver == "pull-up" and missile is not None and not missile.startswith("srbm"):
            r.add(f"{p}.maneuver", maneuver, "the terminal pull-up is modelled for SRBM classes only (srbm-*)")
        disp = Dispersion()
        if "dispersion" in t:
            d = r.table(t["dispersion"], f"{p}.dispersion")
            if d is not None:
                dp = f"{p}.dispersion"
                r.unknown_keys(d, _DISPERSION_KEYS, dp)
                disp = Dispersion(
                    launch_time=r.get(d, "launch_time_s", dp, "float", default=0.0, lo=0.0, hi=3600.0),
                    burnout_speed=r.get(d, "burnout_speed_mps", dp, "float", default=0.0, lo=0.0, hi=1000.0),
                    azimuth=r.get(d, "azimuth_deg", dp, "float", default=0.0, lo=0.0, hi=30.0) * _DEG,
                    ballistic_coeff_frac=r.get(d, "ballistic_coeff_frac", dp, "float", default=0.0, lo=0.0, hi=1.0),
                )
        if len(r.problems) > n0:
            continue
        out.append(ThreatConfig(
            name=name, missile=missile, launch_lat=lat * _DEG, launch_lon=lon * _DEG, launch_time=t0,
            bearing=None if bearing is None else bearing * _DEG,
            range=None if rng is None else rng * 1e3,
            target_lat=None if tlat is None else tlat * _DEG,
            target_lon=None if tlon is None else tlon * _DEG,
            shape=shape, apogee=None if apogee is None else apogee * 1e3, maneuver=maneuver,
            stage_object=stage, dispersion=disp,
        ))
    return out


def _read_sensors(r: _Reader, doc: dict) -> list[SensorConfig]:
    from sensors.catalog import CATALOG, check_overrides

    if "sensor" not in doc:
        r.add("sensor", MISSING, "at least one [[sensor]] table is required")
        return []
    tables = r.table_list(doc["sensor"], "sensor")
    if not tables and isinstance(doc["sensor"], list):
        r.add("sensor", doc["sensor"], "at least one [[sensor]] table is required")
    out = []
    names = set()
    for i, t in enumerate(tables):
        p = f"sensor[{i}]"
        n0 = len(r.problems)
        cat = r.get(t, "catalog", p, "str", required=True, choices=tuple(CATALOG))
        name = r.get(t, "name", p, "str", default=cat, nonblank=True)
        if name is not None and name in names:
            r.add(f"{p}.name", name, "must be unique among sensors (set name = '...' to use one catalog radar twice)")
        names.add(name)
        overrides = {k: v for k, v in t.items() if k not in ("catalog", "name")}
        for prob in check_overrides(overrides, p):
            r.problems.append(Problem(prob.key_path, prob.value, prob.allowed, r.file))
        if len(r.problems) > n0:
            continue
        out.append(SensorConfig(name=name, catalog=cat, overrides=tuple(overrides.items())))
    return out


_SHARING_KEYS = ("policies", "link_latency_s", "pair_latency_s", "share", "track_interval_s", "track_fusion",
                 "policy")
_POLICY_KEYS = ("name", "link")
_LINK_KEYS = ("from", "to", "latency_s", "share", "interval_s", "relay", "relay_latency_s")
MAX_LINK_LATENCY_S = 3600.0  # s, longest latency a link or nation pair may be given


def _read_pair_latency(r: _Reader, t: dict) -> tuple[tuple[str, float], ...]:
    """``[sharing.pair_latency_s]``: ``(pair, s)`` for each nation pair given (:data:`sim.config.NATION_PAIRS`).

    A pair written the other way round (``KR-JP``) or in the wrong case gets the pair's
    spelling suggested; each value is a number of seconds in [0, 3600].
    """
    if "pair_latency_s" not in t:
        return ()
    p = "sharing.pair_latency_s"
    table = t["pair_latency_s"]
    if not isinstance(table, dict):
        r.add(p, table, "must be a table of nation pair = seconds, e.g. pair_latency_s = { JP-KR = 10 }")
        return ()
    out = []
    for key in table:
        if key not in NATION_PAIRS:
            a, _, b = key.upper().partition("-")
            turned = f"{b}-{a}" if f"{b}-{a}" in NATION_PAIRS else None
            hint = (f"did you mean '{turned}'? each pair is written once, nations in the order "
                    f"{', '.join(NATIONS)}, and holds for both directions; ") if turned else did_you_mean(key, NATION_PAIRS)
            r.add(_join(p, key), table[key], f"unknown nation pair; {hint}allowed: {', '.join(NATION_PAIRS)}")
            continue
        value = r.get(table, key, p, "float", lo=0.0, hi=MAX_LINK_LATENCY_S)
        if value is not None:
            out.append((key, value))
    return tuple(sorted(out, key=lambda kv: NATION_PAIRS.index(kv[0])))


def _read_sharing(r: _Reader, doc: dict) -> SharingConfig:
    if "sharing" not in doc:
        return SharingConfig()
    t = r.table(doc["sharing"], "sharing")
    if t is None:
        return SharingConfig()
    n0 = len(r.problems)
    r.unknown_keys(t, _SHARING_KEYS, "sharing")
    custom = []
    for i, pt in enumerate(r.table_list(t.get("policy", []), "sharing.policy")):
        pp = f"sharing.policy[{i}]"
        r.unknown_keys(pt, _POLICY_KEYS, pp)
        pname = r.get(pt, "name", pp, "str", required=True, nonblank=True)
        if pname in BUILTIN_POLICIES:
            r.add(f"{pp}.name", pname, f"must differ from the built-in policies {', '.join(BUILTIN_POLICIES)}")
        links = []
        for j, lt in enumerate(r.table_list(pt.get("link", []), f"{pp}.link")):
            lp = f"{pp}.link[{j}]"
            r.unknown_keys(lt, _LINK_KEYS, lp)
            src = r.get(lt, "from", lp, "str", required=True, choices=NATIONS)
            dst = r.get(lt, "to", lp, "str", required=True, choices=NATIONS)
            if src is not None and src == dst:
                r.add(f"{lp}.to", dst, "must differ from 'from' (a nation always has its own data)")
            relay = lt.get("relay", [])
            if not isinstance(relay, list) or not all(isinstance(x, str) for x in relay):
                r.add(f"{lp}.relay", relay, "wrong type; an array of nation codes (US, JP, KR)")
                relay = []
            for k, x in enumerate(relay):
                if x not in NATIONS:
                    r.add(f"{lp}.relay[{k}]", x, "unknown nation; allowed: " + ", ".join(NATIONS))
            links.append(LinkConfig(
                source=src, dest=dst,
                latency=r.get(lt, "latency_s", lp, "float", default=0.0, lo=0.0, hi=3600.0),
                share=r.get(lt, "share", lp, "str", default="measurements", choices=SHARED_KINDS),
                interval=r.get(lt, "interval_s", lp, "float", default=0.0, lo=0.0, hi=3600.0),
                relay=tuple(relay),
                relay_latency=r.get(lt, "relay_latency_s", lp, "float", default=0.0, lo=0.0, hi=MAX_LINK_LATENCY_S),
            ))
        custom.append(PolicyConfig(pname, tuple(links)))
    known = BUILTIN_POLICIES + tuple(c.name for c in custom if c.name)
    policies = t.get("policies", list(DEFAULT_POLICIES))
    if not isinstance(policies, list) or not policies or not all(isinstance(x, str) for x in policies):
        r.add("sharing.policies", policies, "a non-empty array of policy names")
        policies = list(DEFAULT_POLICIES)
    for k, name in enumerate(policies):
        if name not in known:
            r.add(f"sharing.policies[{k}]", name, f"unknown policy; {did_you_mean(name, known)}allowed: "
                                                  f"{', '.join(known)}")
    cfg = SharingConfig(
        policies=tuple(policies),
        link_latency=r.get(t, "link_latency_s", "sharing", "float", default=2.0, lo=0.0, hi=MAX_LINK_LATENCY_S),
        pair_latency=_read_pair_latency(r, t),
        share=r.get(t, "share", "sharing", "str", default="measurements", choices=SHARED_KINDS),
        track_interval=r.get(t, "track_interval_s", "sharing", "float", default=5.0, lo=0.0, lo_open=True, hi=3600.0),
        track_fusion=r.get(t, "track_fusion", "sharing", "str", default="covariance-intersection",
                           choices=TRACK_FUSION_RULES),
        custom=tuple(custom),
    )
    if len(r.problems) == n0:
        from fusion.network import check_sharing

        for prob in check_sharing(cfg, "sharing"):
            r.problems.append(Problem(prob.key_path, prob.value, prob.allowed, r.file))
    return cfg


_TRACKER_KEYS = ("filter", "process_noise_mps2", "gate_probability", "association", "confirm_m", "confirm_n",
                 "delete_after_missed", "deletion", "initiation", "jpda_pd", "miss_deletion_probability",
                 "max_position_sigma_km", "init_max_speed_mps", "max_tracks", "when_full", "registration")


def _read_tracker(r: _Reader, doc: dict) -> TrackerConfig:
    if "tracker" not in doc:
        return TrackerConfig()
    t = r.table(doc["tracker"], "tracker")
    if t is None:
        return TrackerConfig()
    p = "tracker"
    r.unknown_keys(t, _TRACKER_KEYS, p)
    d = TrackerConfig()
    m = r.get(t, "confirm_m", p, "int", default=d.confirm_m, lo=1, hi=50)
    n = r.get(t, "confirm_n", p, "int", default=d.confirm_n, lo=1, hi=50)
    if m > n:
        r.add("tracker.confirm_m", m, f"must be <= confirm_n ({n}) for M-of-N confirmation")
    return TrackerConfig(
        filter=r.get(t, "filter", p, "str", default=d.filter, choices=FILTERS),
        process_noise=r.get(t, "process_noise_mps2", p, "float", default=d.process_noise, lo=0.0, hi=1000.0),
        gate_probability=r.get(t, "gate_probability", p, "float", default=d.gate_probability,
                               lo=0.0, lo_open=True, hi=0.999999999),
        association=r.get(t, "association", p, "str", default=d.association, choices=ASSOCIATIONS),
        confirm_m=m,
        confirm_n=n,
        delete_after_missed=r.get(t, "delete_after_missed", p, "int", default=d.delete_after_missed, lo=1, hi=1000),
        deletion=r.get(t, "deletion", p, "str", default=d.deletion, choices=DELETIONS),
        initiation=r.get(t, "initiation", p, "str", default=d.initiation, choices=INITIATIONS),
        jpda_pd=r.get(t, "jpda_pd", p, "str", default=d.jpda_pd, choices=JPDA_PDS),
        miss_deletion_probability=r.get(t, "miss_deletion_probability", p, "float",
                                        default=d.miss_deletion_probability, lo=0.0, hi=0.5),
        registration=r.get(t, "registration", p, "str", default=d.registration, choices=REGISTRATIONS),
        max_position_sigma=r.get(t, "max_position_sigma_km", p, "float", default=d.max_position_sigma / 1e3,
                                 lo=0.0, lo_open=True, hi=10000.0) * 1e3,
        init_max_speed=r.get(t, "init_max_speed_mps", p, "float", default=d.init_max_speed,
                             lo=0.0, lo_open=True, hi=20000.0),
        max_tracks=r.get(t, "max_tracks", p, "int", default=d.max_tracks, lo=1, hi=256),
        when_full=r.get(t, "when_full", p, "str", default=d.when_full, choices=WHEN_FULL),
    )


_METRICS_KEYS = ("ipp_threshold_km", "ipp_time_to_go_s", "gospa_cutoff_km", "firm_track_hold_s")


def _read_metrics(r: _Reader, doc: dict) -> MetricsConfig:
    if "metrics" not in doc:
        return MetricsConfig()
    t = r.table(doc["metrics"], "metrics")
    if t is None:
        return MetricsConfig()
    p = "metrics"
    r.unknown_keys(t, _METRICS_KEYS, p)
    d = MetricsConfig()
    return MetricsConfig(
        ipp_threshold=r.get(t, "ipp_threshold_km", p, "float", default=d.ipp_threshold / 1e3,
                            lo=0.0, lo_open=True, hi=20000.0) * 1e3,
        ipp_time_to_go=r.get(t, "ipp_time_to_go_s", p, "float", default=d.ipp_time_to_go, lo=0.0, hi=86400.0),
        gospa_cutoff=r.get(t, "gospa_cutoff_km", p, "float", default=d.gospa_cutoff / 1e3,
                           lo=0.0, lo_open=True, hi=20000.0) * 1e3,
        firm_track_hold=r.get(t, "firm_track_hold_s", p, "float", default=d.firm_track_hold, lo=0.0, lo_open=True,
                                hi=86400.0),
    )


def _read_document(path: Path) -> tuple[dict, bytes]:
    """The parsed TOML document and the file's bytes (hashed for provenance)."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError.single("", file, "no such file; give the path of a scenario .toml file", file) from None
    except IsADirectoryError:
        raise InputError.single("", file, "is a directory; give the path of a scenario .toml file", file) from None
    except OSError as e:
        raise InputError.single("", file, f"cannot be read ({e.strerror}); give a readable .toml file", file) from None
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark (Windows editors) is not content
    except UnicodeDecodeError as e:
        raise InputError.single("", f"byte 0x{raw[e.start]:02x} at offset {e.start}",
                                "not UTF-8; scenario files must be UTF-8 text", file) from None
    if not text.strip():
        raise InputError.single("", "empty file", "a scenario needs [scenario], [[threat]] and [[sensor]] tables",
                                file)
    try:
        return tomllib.loads(text), raw
    except tomllib.TOMLDecodeError as e:
        raise InputError.single("", "not TOML", f"TOML syntax error: {e}", file) from None


def load_scenario(path, overrides=None) -> Scenario:
    """Read, validate and convert a scenario file, with settings overridden.

    Parameters
    ----------
    path : str or os.PathLike
        A UTF-8 TOML file of schema version 1.
    overrides : mapping or iterable of str, optional
        Settings that replace the file's, validated as if they were in it. Either a
        mapping ``{key path: value}`` with Python values as TOML would give them
        (``{"sharing.link_latency_s": 10.0, "tracker.filter": "ekf"}``), or the
        command line's ``"KEY=VALUE"`` texts (``--set``), each value read as a TOML
        value (``10``, ``"ekf"``, ``[1, 2]``, ``true``) and, if it is not one, as a
        string (``tracker.filter=ekf``). Key paths are those of the error messages:
        ``sensor[3].range_max_km``, ``threat[0].dispersion.azimuth_deg``,
        ``sharing.policy[0].link[1].latency_s``; indices count from zero and must
        exist in the file; a missing table on the way (``[tracker]``) is created.

    Returns
    -------
    Scenario
        Frozen configuration, SI units inside; ``file_sha256`` is the SHA-256 of the
        file's bytes and ``overrides`` the overrides as ``KEY=VALUE`` texts.

    Raises
    ------
    sim.errors.InputError
        With one :class:`sim.errors.Problem` per problem found (all of them):
        unreadable, empty, non-UTF-8 or non-TOML file; unknown keys (closest
        valid key suggested); wrong types; out-of-range values; missing
        required keys; names that refer to nothing (missile class, sensor
        catalog entry, nation, policy, filter, shape). A problem at an overridden
        key is named ``--set KEY`` instead of by the file; a malformed override
        (no ``=``, a key path that names nothing in the file) is one too.
    """
    path = Path(path)
    doc, raw = _read_document(path)
    pairs = parse_overrides(overrides)
    apply_overrides(doc, pairs)
    r = _Reader(str(path))
    r.unknown_keys(doc, SECTIONS, "")
    version = r.get(doc, "schema_version", "", "int", default=SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        r.add("schema_version", version, f"this version of gsomia-sim reads schema_version = {SCHEMA_VERSION}")
    info = _read_info(r, doc)
    threats = _read_threats(r, doc)
    sensors = _read_sensors(r, doc)
    sharing = _read_sharing(r, doc)
    tracker = _read_tracker(r, doc)
    metrics = _read_metrics(r, doc)
    keys = tuple(k for k, _ in pairs)
    if r.problems:
        raise InputError(blame_overrides(r.problems, keys))
    return Scenario(str(path), info, tuple(threats), tuple(sensors), sharing, tracker, metrics,
                    file_sha256=hashlib.sha256(raw).hexdigest(),
                    overrides=tuple(f"{k}={toml_value(v)}" for k, v in pairs))


# ---------------------------------------------------------------------------------------------
# Overrides (--set KEY=VALUE)
# ---------------------------------------------------------------------------------------------

_SET_FORM = ("KEY=VALUE with a key path as in the error messages, e.g. sharing.link_latency_s=10 or "
             "sensor[3].range_max_km=2500")
_KEY_PART = re.compile(r"([A-Za-z0-9_-]+)((?:\[\d+\])*)")


def _set_error(key: str, value, allowed: str) -> InputError:
    return InputError.single(f"--set {key}" if key else "--set", value, allowed)


def parse_overrides(overrides) -> list[tuple[str, object]]:
    """``(key path, value)`` pairs from a mapping or from ``KEY=VALUE`` texts (see :func:`load_scenario`).

    Raises
    ------
    InputError
        A text without ``=`` or with an empty key (``--set``).
    """
    if overrides is None:
        return []
    if isinstance(overrides, str):  # one text, not an iterable of characters
        overrides = [overrides]
    if isinstance(overrides, dict):
        return [(str(k).strip(), _as_toml(v)) for k, v in overrides.items()]
    pairs = []
    for text in overrides:
        key, eq, value = str(text).partition("=")
        key = key.strip()
        if not eq or not key:
            raise _set_error("", text, _SET_FORM)
        pairs.append((key, _parse_value(value.strip())))
    return pairs


def _as_toml(value):
    """A Python value as tomllib would give it: tuples as lists (``("isolated", "trilateral")``), inside too."""
    if isinstance(value, (list, tuple)):
        return [_as_toml(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_toml(v) for k, v in value.items()}
    return value


def _parse_value(text: str):
    """A TOML value (``10``, ``"ekf"``, ``[1, 2]``, ``true``, a date-time); anything else is the text itself."""
    try:
        doc = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return doc["v"] if set(doc) == {"v"} else text  # "1\nx = 2" is two keys: not one value


def _key_steps(key: str) -> list:
    """``"sensor[3].faces[0].x"`` -> ``["sensor", 3, "faces", 0, "x"]``; None if it is not a key path."""
    steps = []
    for part in key.split("."):
        m = _KEY_PART.fullmatch(part)
        if m is None:
            return None
        steps.append(m.group(1))
        steps.extend(int(i) for i in re.findall(r"\d+", m.group(2)))
    return steps


def apply_overrides(doc: dict, pairs) -> None:
    """Write each ``(key path, value)`` into the parsed TOML document, in place.

    A missing table on the way is created (``tracker.filter`` without ``[tracker]``);
    an array index must exist (``sensor[12]`` of a file with 12 sensors does not).

    Raises
    ------
    InputError
        A key path that is not one, names an unknown section, indexes past the end
        of an array, or goes through a value that is not a table or an array.
    """
    for key, value in pairs:
        steps = _key_steps(key)
        if not steps or isinstance(steps[0], int):
            raise _set_error(key, value, _SET_FORM)
        if steps[0] not in SECTIONS:
            close = difflib.get_close_matches(steps[0], SECTIONS, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise _set_error(key, value, f"unknown section '{steps[0]}'; {hint}allowed: {', '.join(SECTIONS)}")
        node = doc
        walked = ""
        for step, nxt in zip(steps[:-1], steps[1:]):
            here = f"{walked}[{step}]" if isinstance(step, int) else _join(walked, step)
            if isinstance(step, int):
                _check_index(node, step, walked, key, value)
                if not isinstance(node[step], (dict, list)):
                    raise _set_error(key, value, f"{here} is a value, not a table or an array")
                node = node[step]
            else:
                _check_table(node, walked, key, value)
                if step not in node:
                    if isinstance(nxt, int):
                        raise _set_error(key, value, f"{here} does not exist in the file (an array to index)")
                    node[step] = {}
                node = node[step]
            walked = here
        last = steps[-1]
        if isinstance(last, int):
            _check_index(node, last, walked, key, value)
        else:
            _check_table(node, walked, key, value)
        node[last] = value


def _check_index(node, index: int, walked: str, key: str, value) -> None:
    if not isinstance(node, list):
        raise _set_error(key, value, f"{walked} is not an array; give a key path without [{index}]")
    if index >= len(node):
        have = f"{walked}[0] to {walked}[{len(node) - 1}]" if node else "none"
        raise _set_error(key, value, f"{walked}[{index}] does not exist; the file has {len(node)} ({have}, "
                                     "counted from zero)")


def _check_table(node, walked: str, key: str, value) -> None:
    if isinstance(node, list):
        raise _set_error(key, value, f"{walked} is an array; pick one element, e.g. {walked}[0]"
                                     f"{key[len(walked):]}")
    if not isinstance(node, dict):
        raise _set_error(key, value, f"{walked} is a value, not a table")


def blame_overrides(problems, keys) -> list[Problem]:
    """Problems at (or inside) an overridden key path, named ``--set <key path>`` instead of by the file.

    Parameters
    ----------
    problems : iterable of Problem
    keys : sequence of str
        Overridden key paths.
    """
    out = []
    for p in problems:
        path = p.key_path
        mine = any(path == k or path.startswith((k + ".", k + "[")) for k in keys)
        out.append(dataclasses.replace(p, key_path=f"--set {path}", file="") if mine else p)
    return out


def toml_value(value) -> str:
    """A value as TOML text (for the ``KEY=VALUE`` record of an override)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if math.isfinite(value) else ("nan" if value != value else ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))
