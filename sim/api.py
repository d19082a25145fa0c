"""The public Python API: load a scenario (settings changed in code), run it, get per-trial results.

For notebooks and scripts (docs/tutorial.md)::

    from sim.api import load_scenario, run_scenario, trials_frame, write_outputs

    scenario = load_scenario("scenarios/hwasong15_2017-11-29.toml",
                             overrides={"sharing.link_latency_s": 10.0})
    run = run_scenario(scenario, trials=4)
    df = trials_frame(run)          # one row per (trial, policy, nation, target)
    write_outputs("out", scenario, run)   # metrics.json, report.md, figures (as `gsomia-sim run`)

Everything here is what the command line uses; the names below are the stable surface.
"""

from __future__ import annotations

import numpy as np

from sim.engine import METRIC_KEYS, RunOutput, run_scenario
from sim.progress import TrialProgress
from sim.report import write_outputs
from sim.scenario import load_scenario

__all__ = ["load_scenario", "run_scenario", "trials_frame", "write_outputs", "TrialProgress", "RunOutput",
           "FRAME_COLUMNS"]

FRAME_COLUMNS = ("trial", "policy", "nation", "target") + METRIC_KEYS + ("gospa_m",)
"""Columns of :func:`trials_frame`, in order."""


def trials_frame(run: RunOutput):
    """Every trial's figures of merit as a pandas DataFrame, one row per (trial, policy, nation, target).

    Parameters
    ----------
    run : sim.engine.RunOutput
        From :func:`sim.engine.run_scenario`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FRAME_COLUMNS`: ``trial`` (int, the global trial index from 0),
        ``policy``, ``nation`` (US, JP, KR), ``target`` (the threat's name; the RV is scored),
        then one float column per metric under its ``metrics.json`` key and unit
        (``detect_time_s``, ``firm_track_time_s``, ``completeness``, ``pos_rmse_m``,
        ``vel_rmse_mps``, ``anees``, ``ipp_error_km_at_120s``, ``warning_time_s``,
        ``launch_point_error_km``, ...) and ``gospa_m`` (per policy and nation, repeated
        for each target; NaN with a single object). NaN where the metric did not happen in
        that trial (no detection, no firm track, no warning): the same trials the tables
        count as ``[k none]``. Rows are ordered by policy (run order), nation, target, trial.
        The medians of ``metrics.json`` are this frame's medians over trials, NaN left out.

    Raises
    ------
    ValueError
        ``run`` carries no per-trial results (built by hand, not by :func:`run_scenario`).
    """
    import pandas as pd

    if run.per_trial is None:
        raise ValueError("trials_frame: this RunOutput has no per-trial results (use sim.engine.run_scenario)")
    values, gospa = run.per_trial.values, run.per_trial.gospa
    parts = []
    for (policy, nation, target), row in values.items():
        n = len(next(iter(row.values()))) if row else 0
        part = {"trial": np.arange(n, dtype=np.int64), "policy": [policy] * n, "nation": [nation] * n,
                "target": [target] * n}
        for key in METRIC_KEYS:
            part[key] = np.asarray(row.get(key, [np.nan] * n), dtype=float)
        g = gospa.get((policy, nation))
        part["gospa_m"] = np.asarray(g, dtype=float) if g is not None and len(g) == n else np.full(n, np.nan)
        parts.append(pd.DataFrame(part, columns=list(FRAME_COLUMNS)))
    if not parts:
        return pd.DataFrame({c: [] for c in FRAME_COLUMNS})
    return pd.concat(parts, ignore_index=True)
