"""Provenance of a run: the fully resolved scenario, the scenario file's hash and the code version.

Two runs of one scenario name with other radars, links or settings must be told
apart from their ``metrics.json`` alone. :func:`provenance_fields` gives what the
document records besides the results: the scenario file's SHA-256, the ``--set``
overrides, the package version, the git revision of the code when it runs from a
checkout, and :func:`resolved_scenario`: every setting after the catalog merge and
the defaults, under the scenario file's key names and units. Nothing in it depends
on the time of the run, the machine, the chunking or the worker count.
"""

from __future__ import annotations

import functools
import math
import subprocess
from pathlib import Path

from sim import __version__

_SIGNIFICANT = 12  # digits kept of values converted back to file units (rad -> deg adds noise in the 16th)


def _num(v):
    """A float as stored (file units already; None stays None)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _converted(v):
    """A value converted back to file units, rounded to 12 significant digits (39.25, not 39.250000000000014)."""
    return float(f"{v:.{_SIGNIFICANT}g}")


def _deg(v):
    return None if v is None else _converted(math.degrees(v))


def _km(v):
    return None if v is None else _converted(v / 1e3)


def threat_settings(threat) -> dict:
    """One ``[[threat]]`` as the file spells it (degrees, km, s), defaults filled in."""
    out = {"name": threat.name, "missile": threat.missile,
           "launch_lat_deg": _deg(threat.launch_lat), "launch_lon_deg": _deg(threat.launch_lon),
           "launch_time_s": _num(threat.launch_time)}
    if threat.target_lat is not None:
        out.update(target_lat_deg=_deg(threat.target_lat), target_lon_deg=_deg(threat.target_lon))
    else:
        out.update(bearing_deg=_deg(threat.bearing), range_km=_km(threat.range))
    out["shape"] = threat.shape
    if threat.apogee is not None:
        out["apogee_km"] = _km(threat.apogee)
    d = threat.dispersion
    out.update(maneuver=threat.maneuver, stage_object=bool(threat.stage_object),
               dispersion={"launch_time_s": _num(d.launch_time), "burnout_speed_mps": _num(d.burnout_speed),
                           "azimuth_deg": _deg(d.azimuth), "ballistic_coeff_frac": _num(d.ballistic_coeff_frac)})
    return out


def sensor_settings(sensor) -> dict:
    """One ``[[sensor]]`` after the catalog merge: its name, catalog entry and every field, in file units.

    The catalog entry's fields (:func:`sensors.catalog.catalog_rows`, less the ``fov``
    summary) with the scenario's overrides on top, each of the catalog's type.
    """
    from sensors.catalog import catalog_rows

    base = next(row for row in catalog_rows() if row["name"] == sensor.catalog)
    out = {"name": sensor.name, "catalog": sensor.catalog}
    merged = {k: v for k, v in base.items() if k not in ("name", "fov")}
    merged.update(dict(sensor.overrides))
    for key, value in merged.items():
        kind = type(base.get(key))
        if kind is float:
            value = _num(value)
        elif kind is int and not isinstance(value, bool):
            value = int(value)
        elif key == "faces":
            value = [{k: _num(v) for k, v in face.items()} for face in value]
        out[key] = value
    return out


def link_settings(link) -> dict:
    """One directed link as a ``[[sharing.policy.link]]`` table (``relay_latency_s``: the relayed data's extra s)."""
    return {"from": link.source, "to": link.dest, "latency_s": _num(link.latency), "share": link.share,
            "interval_s": _num(link.interval), "relay": list(link.relay),
            "relay_latency_s": _num(link.relay_latency)}


def sharing_settings(sharing, policies) -> dict:
    """``[sharing]`` with the links of every policy run, built-ins resolved (:func:`fusion.network.builtin_policy`).

    ``pair_latency_s`` holds every nation pair's latency after the defaults
    (:func:`fusion.network.pair_latencies`), whether the file gave it or not.

    Parameters
    ----------
    sharing : sim.config.SharingConfig
    policies : sequence of str
        The policies of the run (``--policies`` or ``[sharing].policies``).
    """
    import dataclasses

    from fusion.network import pair_latencies, resolve_policies

    names = tuple(dict.fromkeys(tuple(policies)))
    resolved = resolve_policies(dataclasses.replace(sharing, policies=names))
    return {"policies": list(names), "link_latency_s": _num(sharing.link_latency),
            "pair_latency_s": {pair: _num(v) for pair, v in pair_latencies(sharing).items()}, "share": sharing.share,
            "track_interval_s": _num(sharing.track_interval), "track_fusion": sharing.track_fusion,
            "links": {name: [link_settings(ln) for ln in resolved[name].links] for name in names}}


def metrics_settings(metrics) -> dict:
    """``[metrics]`` as the file spells it (km, s), defaults filled in."""
    return {"ipp_threshold_km": _km(metrics.ipp_threshold), "ipp_time_to_go_s": _num(metrics.ipp_time_to_go),
            "gospa_cutoff_km": _km(metrics.gospa_cutoff), "firm_track_hold_s": _num(metrics.firm_track_hold)}


def resolved_scenario(scenario, trials: int, seed: int, policies) -> dict:
    """Every setting a run used, under the scenario file's keys and units, defaults and catalog merged.

    Parameters
    ----------
    scenario : sim.config.Scenario
    trials, seed : int
        The run's (``--trials`` and ``--seed`` override the file's).
    policies : sequence of str
        The policies run.

    Returns
    -------
    dict
        ``scenario`` (name, description, event_utc, seed, trials, dt_s, duration_s, sources),
        ``threat`` and ``sensor`` (lists, :func:`threat_settings`, :func:`sensor_settings`),
        ``sharing`` (:func:`sharing_settings`, with ``links`` per policy), ``tracker``
        (:func:`sim.report.tracker_settings`) and ``metrics`` (:func:`metrics_settings`).
    """
    from sim.report import tracker_settings

    info = scenario.info
    return {
        "scenario": {"name": info.name, "description": info.description,
                     "event_utc": info.event_utc.strftime("%Y-%m-%dT%H:%M:%SZ"), "seed": int(seed),
                     "trials": int(trials), "dt_s": _num(info.dt), "duration_s": _num(info.duration),
                     "sources": list(info.sources)},
        "threat": [threat_settings(t) for t in scenario.threats],
        "sensor": [sensor_settings(s) for s in scenario.sensors],
        "sharing": sharing_settings(scenario.sharing, policies),
        "tracker": tracker_settings(scenario.tracker),
        "metrics": metrics_settings(scenario.metrics),
    }


@functools.lru_cache(maxsize=1)
def git_revision() -> dict | None:
    """The git revision of the code, when it runs from a checkout of the repository; else None.

    Returns
    -------
    dict or None
        ``{"revision": <40 hex digits>, "dirty": bool}`` (dirty: tracked files differ from
        the commit; untracked files do not count), or None when the package does not sit
        at the top of a git work tree (an installed copy) or git cannot be run.
    """
    root = Path(__file__).resolve().parents[1]

    def git(*args) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root:  # an installed copy inside someone else's work tree
        return None
    revision = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    if revision is None or status is None:
        return None
    return {"revision": revision, "dirty": bool(status)}


def provenance_fields(scenario, trials: int, seed: int, policies) -> dict:
    """What ``metrics.json`` records to tell runs apart, besides name, seed and results.

    Returns
    -------
    dict
        ``scenario_file`` (``name``: the file's base name, ``sha256``: of its bytes),
        ``overrides`` (the ``--set KEY=VALUE`` texts), ``git`` (:func:`git_revision`,
        only when run from a checkout) and ``resolved`` (:func:`resolved_scenario`).
    """
    out = {"scenario_file": {"name": Path(scenario.path).name, "sha256": scenario.file_sha256},
           "overrides": list(scenario.overrides)}
    rev = git_revision()
    if rev is not None:
        out["git"] = rev
    out["resolved"] = resolved_scenario(scenario, trials, seed, policies)
    return out


def provenance_line(doc: dict) -> str:
    """One sentence for report.md's header: git revision, file hash and overrides.

    The version is not repeated: the header's first line
    (:func:`sim.report.markdown_report`) states it.
    """
    parts = []
    git = doc.get("git")
    if git:
        parts.append(f"Git {git['revision'][:12]}{' (dirty: uncommitted changes)' if git['dirty'] else ''}")
    f = doc.get("scenario_file")
    if f:
        parts.append(f"scenario file {f['name']} (SHA-256 {f['sha256'][:16]}...)")
    over = doc.get("overrides")
    parts.append("overrides: " + ", ".join(f"`--set {o}`" for o in over) if over else "no overrides")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + ". Every setting, resolved, is in metrics.json (`resolved`)."
