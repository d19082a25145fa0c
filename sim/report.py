"""Outputs of a run: the terminal table, ``metrics.json``, ``report.md`` and its PNG figures.

Every file is written to a temporary file in the output folder and renamed
into place (``os.replace`` is atomic on POSIX), so an interrupted or failed run
never leaves a half-written output. ``metrics.json`` is a pure function of the
scenario and the seed: same inputs, byte-identical file.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from sim import __version__
from sim.scenario import file_stem

NATION_NAMES = {"US": "the United States", "JP": "Japan", "KR": "the Republic of Korea"}

# metrics.json key -> (column title, unit text, format, smaller is better)
COLUMNS = {
    "detect_time_s": ("detect", "s", "{:.0f}", True),
    "firm_track_time_s": ("firm track", "s", "{:.0f}", True),
    "completeness": ("complete", "", "{:.2f}", False),
    "scored_steps": ("scored steps", "", "{:.0f}", False),
    "pos_err_ratio_vs_isolated": ("matched ratio", "", "{:.2f}", True),
    "common_steps_vs_isolated": ("common steps", "", "{:.0f}", None),
    "pos_rmse_m": ("pos RMSE", "m", "{:.0f}", True),
    "pcrlb_pos_m": ("PCRLB", "m", "{:.0f}", True),
    "efficiency": ("efficiency", "", "{:.1f}", True),
    "vel_rmse_mps": ("vel RMSE", "m/s", "{:.1f}", True),
    "anees": ("ANEES", "", "{:.2f}", None),
    "pos_rmse_boost_m": ("RMSE boost", "m", "{:.0f}", True),
    "pos_rmse_midcourse_m": ("RMSE midcourse", "m", "{:.0f}", True),
    "pos_rmse_reentry_m": ("RMSE re-entry", "m", "{:.0f}", True),
    "pos_error_m_at_120s": ("pos err @120s", "m", "{:.0f}", True),
    "pos_error_m_at_burnout_60s": ("pos err @burnout+60s", "m", "{:.0f}", True),
    "ipp_error_km_at_120s": ("IPP err @120s", "km", "{:.1f}", True),
    "warning_time_s": ("warning", "s to go", "{:.0f}", False),
    "launch_point_error_km": ("launch pt err", "km", "{:.1f}", True),
    "gospa_m": ("GOSPA", "m", "{:.0f}", True),
}
# The headline (terminal and report.md's first table): custody, the matched comparison, accuracy against the
# bound, and the warning (issue 24).
TABLE_KEYS = ("firm_track_time_s", "completeness", "pos_err_ratio_vs_isolated", "pos_rmse_m", "efficiency",
              "warning_time_s")
# report.md's second table: everything else a row has.
DETAIL_KEYS = ("detect_time_s", "scored_steps", "common_steps_vs_isolated", "pcrlb_pos_m", "vel_rmse_mps", "anees",
               "nees_consistency", "pos_rmse_boost_m", "pos_rmse_midcourse_m", "pos_rmse_reentry_m",
               "pos_error_m_at_120s", "pos_error_m_at_burnout_60s", "ipp_error_km_at_120s", "warning_retracted",
               "launch_point_error_km", "gospa_m")
SPECIAL_COLUMNS = {"nees_consistency": ("NEES inside", ""), "warning_retracted": ("warning retracted", "")}
REFERENCE_POLICY = "isolated"  # the matched comparison's reference (sim.engine.REFERENCE_POLICY)
INDICATIVE_TRIALS = 20  # fusion.metrics.INDICATIVE_TRIALS: below it a comparison is only indicative


def _stage(path: Path, data: bytes) -> str:
    """Write ``data`` to a temporary file beside ``path`` (synced, usual file mode); return its name.

    Raises
    ------
    OSError
        The folder cannot be written; the temporary file is removed.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual file mode
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename.

    Raises
    ------
    OSError
        The folder cannot be written; the temporary file is removed.
    """
    path = Path(path)
    tmp = _stage(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _round(v):
    """Floats rounded to 6 significant digits for a stable, readable JSON file; None stays None."""
    if v is None:
        return None
    v = float(v)
    if not math.isfinite(v):
        return None
    return float(f"{v:.6g}")


def metrics_document(scenario, trials: int, seed: int, rows: list[dict]) -> dict:
    """The ``metrics.json`` document.

    Parameters
    ----------
    scenario : sim.config.Scenario
    trials, seed : int
    rows : list of dict
        Each with ``policy``, ``nation``, ``target`` and per metric the summary of
        :func:`fusion.metrics.summarize` (``median``, ``p10``, ``p90`` None where no
        trial had the metric; ``n`` trials, ``n_missing`` of them without it).

    Returns
    -------
    dict
        Top level ``scenario``, ``version``, ``seed``, ``trials``, ``event_utc``, ``tracker``,
        the provenance of :func:`sim.provenance.provenance_fields` (``scenario_file``,
        ``overrides``, ``git`` when run from a checkout, ``resolved``) and ``results``.
    """
    from sim.provenance import provenance_fields

    results = []
    for row in rows:
        out = {"policy": row["policy"], "nation": row["nation"], "target": row["target"]}
        for key in COLUMNS:
            if key in row:
                s = row[key]
                out[key] = {"median": _round(s["median"]), "p10": _round(s["p10"]), "p90": _round(s["p90"]),
                            "n": int(s["n"]), "missing": int(s["n_missing"])}
                if "ci95" in s:
                    out[key]["ci95"] = None if s["ci95"] is None else [_round(v) for v in s["ci95"]]
                if s.get("bimodal"):
                    out[key]["bimodal"] = True
        if "bias_error" in row:  # per radar the nation fuses: {radar: {key: summary}} (fusion.metrics.bias_errors)
            out["bias_error"] = {
                radar: {k: {"median": _round(s["median"]), "p10": _round(s["p10"]), "p90": _round(s["p90"]),
                            "n": int(s["n"]), "missing": int(s["n_missing"])} for k, s in comps.items()}
                for radar, comps in row["bias_error"].items()}
        if "warning_retracted" in row:
            out["warning_retracted"] = {"trials": int(row["warning_retracted"]["trials"]),
                                        "n": int(row["warning_retracted"]["n"])}
        if "nees_consistency" in row:
            out["nees_consistency"] = {ph: {k: (int(v) if k == "steps" else _round(v)) for k, v in c.items()}
                                       for ph, c in row["nees_consistency"].items()}
        if "paired_vs_isolated" in row:
            out["paired_vs_isolated"] = {
                k: {"median": _round(p["median"]),
                    "ci95": None if p["ci95"] is None else [_round(v) for v in p["ci95"]],
                    "pairs": int(p["pairs"]), "only_this": int(p["only_a"]), "only_isolated": int(p["only_b"])}
                for k, p in row["paired_vs_isolated"].items()}
        results.append(out)
    return {
        "scenario": scenario.info.name,
        "version": __version__,
        "seed": int(seed),
        "trials": int(trials),
        "event_utc": scenario.info.event_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tracker": tracker_settings(scenario.tracker),
        # the resolved scenario, file hash, overrides and code revision (sim.provenance)
        **provenance_fields(scenario, trials, seed, list(dict.fromkeys(r["policy"] for r in rows))),
        "results": results,
    }


def tracker_settings(tracker) -> dict:
    """The ``[tracker]`` table as the scenario file spells it (keys and units), for ``metrics.json``.

    Parameters
    ----------
    tracker : sim.config.TrackerConfig

    Returns
    -------
    dict
        ``filter``, ``association``, ``process_noise_mps2``, ``gate_probability``,
        ``confirm_m``, ``confirm_n``, ``delete_after_missed``, ``deletion``, ``initiation``, ``jpda_pd``,
        ``max_position_sigma_km``, ``init_max_speed_mps``, ``max_tracks``, ``when_full``,
        ``miss_deletion_probability``, ``registration``.
    """
    return {
        "filter": tracker.filter,
        "association": tracker.association,
        "process_noise_mps2": float(tracker.process_noise),
        "gate_probability": float(tracker.gate_probability),
        "confirm_m": int(tracker.confirm_m),
        "confirm_n": int(tracker.confirm_n),
        "delete_after_missed": int(tracker.delete_after_missed),
        "deletion": tracker.deletion,
        "initiation": tracker.initiation,
        "jpda_pd": tracker.jpda_pd,
        "max_position_sigma_km": float(tracker.max_position_sigma) / 1e3,
        "init_max_speed_mps": float(tracker.init_max_speed),
        "max_tracks": int(tracker.max_tracks),
        "when_full": tracker.when_full,
        "miss_deletion_probability": float(tracker.miss_deletion_probability),
        "registration": tracker.registration,
    }


def _cell(summary, key, ranges: bool) -> str:
    """One table cell: the median (and p10-p90), ``in k/n`` when the metric happened in only k of n trials
    (the median is over those k), ``bimodal`` when the trials fall in two clusters."""
    if key == "nees_consistency":
        inside = None if summary is None else summary.get("all", {}).get("inside")
        return "none" if inside is None else f"{inside:.0%} of {summary['all']['steps']}"
    if key == "warning_retracted":
        return "none" if summary is None else f"{summary['trials']}/{summary['n']}"
    if summary is None or summary["median"] is None:
        return "none"
    fmt = COLUMNS[key][2]
    text = fmt.format(summary["median"])
    if ranges and summary["p10"] is not None:
        text += f" ({fmt.format(summary['p10'])}-{fmt.format(summary['p90'])})"
    if summary.get("missing"):
        text += f" in {summary['n'] - summary['missing']}/{summary['n']}"
    if summary.get("bimodal"):
        text += " bimodal"
    return text


def _title(key) -> str:
    title, unit = SPECIAL_COLUMNS.get(key) or COLUMNS[key][:2]
    return title + (f" [{unit}]" if unit else "")


def table_rows(doc: dict, target: str, ranges: bool = False,
               keys=TABLE_KEYS) -> tuple[list[str], list[list[str]]]:
    """Header and rows (nation, policy, metric cells) of one target's table of ``keys`` (those the run has)."""
    keys = [k for k in keys if any(k in r for r in doc["results"])]
    header = ["nation", "policy"] + [_title(k) for k in keys]
    rows = []
    for r in doc["results"]:
        if r["target"] != target:
            continue
        rows.append([r["nation"], r["policy"]] + [_cell(r.get(k), k, ranges) for k in keys])
    policy_order = {p: i for i, p in enumerate(dict.fromkeys(r["policy"] for r in doc["results"]))}
    rows.sort(key=lambda x: (x[0], policy_order[x[1]]))  # by nation, policies in the run's order
    return header, rows


def targets(doc: dict) -> list[str]:
    """Target names in order of first appearance."""
    return list(dict.fromkeys(r["target"] for r in doc["results"]))


def undetected_sentence(doc: dict, target: str) -> str | None:
    """Which rows never saw ``target``: every cell of such a row is ``none`` (or 0), and this says why.

    Returns None when every row detected the target in some trial. New-user trial: a scenario
    whose only radar could not see the flight ran and reported "completeness 0% vs 0%" without
    saying that nothing was ever detected.
    """
    rows = [r for r in doc["results"] if r["target"] == target]
    never = [r for r in rows if _never_detected(r)]
    if not never:
        return None
    if len(never) == len(rows):
        return (f"No radar detected {target} in any trial, so no row has tracking data (GOSPA then charges "
                f"the missed objects only): check the radars' positions, faces and ranges against the flight "
                f"(coverage.png; gsomia-sim view), or the scenario's duration_s.")
    names = ", ".join(f"{r['nation']} {r['policy']}" for r in never)
    return (f"Never detected {target} in any trial: {names} (none of the radars whose data reach the nation "
            f"under that policy sees the flight within the simulated span), so those rows are empty.")


def silent_radars_sentence(radar_names, coverage) -> str | None:
    """Which radars detected no object of any threat in trial 0 (``coverage`` as kept by the engine:
    ``(sensor, object, time, n_sensors)``), or None when every radar did.

    New-user trial: in the Aegis Ashore what-if, the Araya site saw nothing of the depressed KN-23 (its
    glide stays below that radar's horizon) and the report never said so.
    """
    if coverage is None:
        return None
    seen = set(np.unique(np.asarray(coverage[0])).tolist())
    silent = [name for k, name in enumerate(radar_names) if k not in seen]
    if not silent:
        return None
    return (f"No detection of any threat object in trial 0 by {', '.join(silent)} (below the horizon, out of "
            f"range or outside the faces for this flight within the simulated span; coverage.png).")


def span_sentence(scenario) -> str | None:
    """What a run cut short by ``duration_s`` does not cover, or None for a run over the whole flights.

    Second new-user trial: a 60-s run reported "none of the radars ... sees the flight" and a 300-s
    run a warning of 2,870 s to go, both read as findings rather than as the cut.
    """
    from sim.shaping import nominal_for_threat

    d = scenario.info.duration
    if d is None:
        return None
    first = min(th.launch_time for th in scenario.threats)
    end = max(th.launch_time + nominal_for_threat(th).flight_time for th in scenario.threats) - first
    if d >= end:
        return None
    return (f"This run covers only duration_s = {d:g} s from the first launch; the flights last until about "
            f"{end:,.0f} s (nominal). Every figure covers that span only: a target or radar with no detection "
            f"may simply not be reached by then, completeness counts the span's steps, and a warning time is the "
            f"time to go when the IPP error settled below the threshold within the span, not a warning seen to "
            f"hold until impact.")


def print_tables(doc: dict, console=None) -> None:
    """Print one table per target (median over trials, 10th-90th percentile range in brackets).

    On a terminal the table fits its width: when the ranges would make it wider than
    the terminal, it shows the medians alone and says where the ranges are
    (``report.md``), rather than fold numbers across lines; below about 120
    columns the metric columns go into two or more tables, each with the nation and
    policy columns. Into a pipe or a log it is 240 characters wide, with the ranges.
    """
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else 240)

    def widths(header, rows):
        """Fixed column widths that fit the console, or None: each column as wide as its longest cell and
        its whole header, else its longest header word (the header wraps between words)."""
        cells = [max(len(r[k]) for r in rows) if rows else 0 for k in range(len(header))]
        for head in ([len(h) for h in header], [max(map(len, h.split())) for h in header]):
            w = [max(c, hw) for c, hw in zip(cells, head)]
            if sum(w) + 3 * len(w) + 1 <= console.width:  # + borders and padding
                return w
        return None

    def groups(header, rows):
        """Metric columns split into consecutive groups that each fit beside the (nation, policy) columns,
        with their widths; None when even one metric column does not fit."""
        out, start = [], 2
        while start < len(header):
            stop, best = start + 1, None
            while stop <= len(header):
                cols = [0, 1] + list(range(start, stop))
                w = widths([header[c] for c in cols], [[r[c] for c in cols] for r in rows])
                if w is None:
                    break
                best, stop = (cols, w), stop + 1
            if best is None:
                return None
            out.append(best)
            start = best[0][-1] + 1
        return out

    for target in targets(doc):
        header, rows = table_rows(doc, target, ranges=True)
        w = widths(header, rows)
        ranges = w is not None
        parts = [(list(range(len(header))), w)]
        if not ranges:
            header, rows = table_rows(doc, target, ranges=False)
            w = widths(header, rows)
            # Narrower still: the metric columns in two or more tables, each with the nation and policy
            # (new-user trial: at 80 columns "134.0" printed as "134." over "0"); only when one metric
            # column cannot fit either do the cells fold (rich crops a table whose widths cannot fit).
            parts = ([(list(range(len(header))), w)] if w is not None else
                     groups(header, rows) or [(list(range(len(header))), [None] * len(header))])
        # Units in brackets ("[s]", "[m/s]") are rich markup tags unless escaped: they would vanish.
        what = "median (p10-p90)" if ranges else "median"
        for i, (cols, w) in enumerate(parts):
            part = f" ({i + 1} of {len(parts)})" if len(parts) > 1 else ""
            last = i == len(parts) - 1
            table = Table(title=escape(f"{doc['scenario']}: {target} — {what} over {trials_text(doc['trials'])}"
                                       f"{part}"),
                          caption=None if ranges or not last else escape("p10-p90 ranges: report.md, or a wider "
                                                                          "terminal"))
            for c, width in zip(cols, w):
                table.add_column(escape(header[c]), overflow="fold", width=width)
            for row in rows:
                table.add_row(*(escape(row[c]) for c in cols))
            console.print(table)
        note = undetected_sentence(doc, target)
        if note:
            console.print(escape(note))


def _find(doc, policy, nation, target):
    for r in doc["results"]:
        if (r["policy"], r["nation"], r["target"]) == (policy, nation, target):
            return r
    return None


def _median(row, key):
    if row is None or key not in row or row[key]["median"] is None:
        return None
    return row[key]["median"]


def _never_detected(row) -> bool:
    """The row has a detection-time summary and no trial detected the target."""
    return row is not None and "detect_time_s" in row and row["detect_time_s"]["median"] is None


def _gaps(row, key) -> str:
    """`` [k of n trials none]`` when the metric did not happen in k of the row's n trials, else ``""``."""
    summary = None if row is None else row.get(key)
    if not summary or not summary.get("missing"):
        return ""
    return f" [{summary['missing']} of {summary['n']} trials none]"


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


def _ci(ci, fmt) -> str:
    return "" if not ci else f", 95 % CI {fmt(ci[0])} to {fmt(ci[1])}"


def _paired_bit(p, policy, fmt, prefix, more, less, same, only_word) -> str | None:
    """One paired comparison (:func:`fusion.metrics.paired_difference` of this row minus isolated) in words.

    ``prefix`` then the size then ``more``/``less`` for a positive/negative difference ("a firm track
    12 s earlier"); ``same`` the words for a zero one (at the printed precision).
    """
    if p is None:
        return None
    extra = []
    if p.get("only_this"):
        extra.append(f"{_trials(p['only_this'])} with {only_word} only under {policy}")
    if p.get("only_isolated"):
        extra.append(f"{_trials(p['only_isolated'])} with {only_word} only when isolated")
    if not p.get("pairs"):
        return f"no trial with {only_word} under both ({'; '.join(extra)})" if extra else None
    d = p["median"]
    text = fmt(abs(d))
    if text == fmt(0.0):
        core = f"{same}"
    else:
        core = f"{prefix} {text} {more if d > 0 else less}"
    ci = p.get("ci95")
    notes = [f"paired median over {_trials(p['pairs'])}"
             + ("" if not ci else f", {policy} minus isolated 95 % CI {fmt(ci[0], True, False)} to {fmt(ci[1], True)}")]
    return f"{core} ({'; '.join(notes + extra)})"


def _trials(n: int) -> str:
    return f"{n} trial" + ("" if n == 1 else "s")


def _seconds(v, signed=False, unit=True) -> str:
    return (f"{v:+.0f}" if signed else f"{v:.0f}") + (" s" if unit else "")


def _points(v, signed=False, unit=True) -> str:
    """A difference of two fractions in percentage points ("1 point", "9 points"; an interval's end "+1 points")."""
    p = round(100 * v) + 0  # an integer: no "-0" for a change that rounds to nothing (new-user trial)
    text = f"{p:+d}" if signed else f"{p:d}"
    if not unit:
        return text
    return text + (" point" if text == "1" else " points")


PHASE_KEYS = (("pos_rmse_boost_m", "boost"), ("pos_rmse_midcourse_m", "midcourse"),
              ("pos_rmse_reentry_m", "re-entry"), ("pos_error_m_at_burnout_60s", "60 s after burnout"),
              ("pos_error_m_at_120s", "120 s to go"))


def _phase_bit(row: dict, iso: dict) -> str | None:
    """Per-phase RMSE and fixed-event errors of a row beside isolated's, each over its own firm-track steps.

    These medians are not matched (each row over the steps it holds), so the clause says so; only
    the phases and events both rows have appear. None when there is none.
    """
    def trials(r, key):  # ' (k of n trials)' when the event happened in only some trials (new-user trial)
        summary = r[key]
        return f" ({summary['n'] - summary['missing']} of {summary['n']} trials)" if summary.get("missing") else ""

    parts = []
    for key, label in PHASE_KEYS:
        a, b = _median(iso, key), _median(row, key)
        if a is not None and b is not None:
            parts.append(f"{label} {_metres(a)}{trials(iso, key)} to {_metres(b)}{trials(row, key)}")
    if not parts:
        return None
    return ("per phase and event, isolated to this policy (medians, each over its own firm-track steps, not "
            "matched): " + ", ".join(parts))


def gain_sentence(doc: dict, nation: str, target: str, policy: str = "trilateral") -> str | None:
    """One sentence with the measured gain of a sharing policy over the same nation's isolated tracking.

    Built from paired, matched quantities only (issues 23 and 24): the position error
    over the steps both rows hold a firm track (``pos_err_ratio_vs_isolated``, its
    median over trials and seeded bootstrap 95 % interval), the bound on those
    errors (``pcrlb_pos_m`` medians, when the run has it), the per-phase RMSE and the errors at
    fixed events of both rows (:func:`_phase_bit`, unmatched and said so), and the firm-track time,
    completeness and warning time as paired differences over the trials where both
    rows had them (``paired_vs_isolated``), with the trials where only one had them
    counted. Below :data:`INDICATIVE_TRIALS` trials the sentence says the comparison
    is indicative. Returns None when the run has no ``policy`` row for the nation or
    ``policy`` is the reference itself.
    """
    row = _find(doc, policy, nation, target)
    if row is None or policy == REFERENCE_POLICY:
        return None
    name = NATION_NAMES.get(nation, nation)
    head = f"For {name}, {policy} sharing"
    iso = _find(doc, REFERENCE_POLICY, nation, target)
    if iso is None:
        return (f"{head}: no matched comparison, because the isolated policy was not run (the comparison is "
                f"made on the steps where both {policy} and isolated tracking hold the object; add isolated to "
                f"--policies).")
    if _never_detected(row) and _never_detected(iso):
        return f"{head}: nothing to compare (neither it nor isolated tracking detects {target} in any trial)."
    bits = []
    mr = row.get("pos_err_ratio_vs_isolated")
    cs = row.get("common_steps_vs_isolated")
    if mr is None or mr.get("median") is None:
        bits.append("no step in any trial where both it and isolated tracking hold a firm track, so no matched "
                    "error comparison")
    else:
        r = mr["median"]
        rt = f"{r:.2f}"
        who = f"{_possessive(name)} position error"
        ci = mr.get("ci95")
        if rt == "1.00":
            core = f"leaves {who} unchanged at {rt} of isolated"
        elif ci is not None and ci[0] <= 1.0 <= ci[1] and 0.5 <= r <= 2.0:  # the interval holds 1: no measurable change
            core = f"leaves {who} within noise of isolated at {rt}"
        elif ci is not None and ci[0] <= 1.0 <= ci[1]:  # holds 1 but far from it: a few wild trials (new-user trial:
            core = f"changes {who} by an amount the trials cannot pin down, {rt} of isolated"  # 122x 'within noise')
        elif r < 1:
            core = f"cuts {who} to {rt} of isolated"
        else:
            core = f"raises {who} to {rt} times isolated"
        n_with = mr["n"] - mr.get("missing", 0)
        steps = "" if cs is None or cs.get("median") is None else f", median {cs['median']:.0f} steps per trial"
        bits.append(f"over the steps both hold a firm track ({n_with} of {_trials(mr['n'])}{steps}) it {core} "
                    f"(median ratio{_ci(mr.get('ci95'), lambda v: f'{v:.2f}')})")
    b_t, b_o = _median(row, "pcrlb_pos_m"), _median(iso, "pcrlb_pos_m")
    if b_t is not None and b_o is not None:
        if _metres(b_t) == _metres(b_o):
            bits.append(f"the bound (PCRLB) stays at {_metres(b_t)}")
        else:
            bits.append(f"the bound (PCRLB) {'falls' if b_t < b_o else 'rises'} from {_metres(b_o)} to "
                        f"{_metres(b_t)}")
    phases = _phase_bit(row, iso)
    if phases:
        bits.append(phases)
    paired = row.get("paired_vs_isolated", {})
    for key, what, fmt, prefix, more, less, same, only in (
            ("firm_track_time_s", "firm track", _seconds, "a firm track", "later", "earlier",
             "the same firm-track time", "a firm track"),
            ("completeness", "track", _points, "completeness", "higher", "lower", "the same completeness",
             "a track"),
            ("warning_time_s", "warning", _seconds, "warning", "longer", "shorter", "the same warning time",
             "a warning")):
        bit = _paired_bit(paired.get(key), policy, fmt, prefix, more, less, same, only)
        if bit:
            bits.append(bit)
    ret = row.get("warning_retracted")
    if ret and ret.get("trials"):
        bits.append(f"a believed later prediction missed by more than the threshold after the warning (a "
                    f"retraction) in {ret['trials']} of {ret['n']} trials")
    n = doc.get("trials") or (mr or {}).get("n")
    end = "." if n is None or n >= INDICATIVE_TRIALS else (f"; indicative only: {n} trial{'s' if n != 1 else ''}, "
                                                          f"fewer than {INDICATIVE_TRIALS}.")
    return f"{head}: " + "; ".join(bits) + end


# ANEES medians called "close to consistent": within a factor 4/3 of 6. A time average over correlated steps has no
# sharp chi-square bound (the nominal one, chi2(6N)/N over hundreds of steps, is far narrower than the
# spread of consistent filters), so the band is a reading aid, not a test (the tests use per-step bounds).
CONSISTENT_BAND = (4.5, 8.0)


def _metres(v: float) -> str:
    """A distance in m as printed in sentences: "310 m", "1.8 km"."""
    return f"{v:,.0f} m" if v < 1000.0 else f"{v / 1e3:,.1f} km"


def consistency_sentence(doc: dict, target: str) -> str | None:
    """A reading of the ANEES column for one target: its range of medians against the consistent value 6."""
    from fusion.metrics import anees_bounds

    rows = [r for r in doc["results"]
            if r["target"] == target and isinstance(r.get("anees"), dict) and r["anees"]["median"] is not None]
    if not rows:
        return None
    medians = [r["anees"]["median"] for r in rows]
    lo, hi = min(medians), max(medians)
    parts = []
    if hi > 12.0:
        # Name the rows (new-user trial: sharing gave US ANEES 84 against 6 isolated, and no sentence said where).
        which = ", ".join(f"{r['nation']} {r['policy']} {r['anees']['median']:.0f}" for r in rows
                          if r["anees"]["median"] > 12.0)
        parts.append(f"values well above 6 ({which}) mean covariances smaller than the errors (overconfident "
                     "tracks: their sigma bounds and gates are too tight)")
    elif hi > CONSISTENT_BAND[1]:
        parts.append(f"values above {CONSISTENT_BAND[1]:g} lean overconfident")
    if lo < 3.0:
        parts.append("values well below 6 mean covariances larger than the errors (conservative tracks)")
    elif lo < CONSISTENT_BAND[0]:
        parts.append(f"values below {CONSISTENT_BAND[0]:g} lean conservative")
    verdict = "; ".join(parts) or (f"all within {CONSISTENT_BAND[0]:g}-{CONSISTENT_BAND[1]:g}, close to consistent")
    if any(f"{v:g}" in verdict for v in CONSISTENT_BAND):  # say where the cut-offs come from (new-user trial)
        verdict += f" ({CONSISTENT_BAND[0]:g}-{CONSISTENT_BAND[1]:g} is 6 within a factor of 4/3, a reading band)"
    b_lo, b_hi = anees_bounds(600)
    return (f"Filter consistency: median ANEES from {lo:.2f} to {hi:.2f} across nations and policies, where a "
            f"consistent 6-state filter gives about 6; {verdict}. This is a reading, not a test: the nominal "
            f"chi-square 95 % bounds of one trial's time average over N steps, chi2(6N)/N (README), are narrow "
            f"(for example {b_lo:.2f}-{b_hi:.2f} at N = 600), but they assume independent steps, and successive "
            f"filter errors are not.")


def ensemble_consistency_sentence(doc: dict, target: str) -> str | None:
    """The ensemble NEES test per row: on what fraction of its scored steps the NEES averaged over the trials
    (Bar-Shalom, Li & Kirubarajan 2001, sec. 5.4.2) is inside, below and above its chi-square 95 % bounds."""
    rows = [r for r in doc["results"] if r["target"] == target and r.get("nees_consistency", {}).get("all", {})
            .get("inside") is not None]
    if not rows:
        return None
    parts = []
    for r in rows:
        c = r["nees_consistency"]["all"]
        parts.append(f"{r['nation']} {r['policy']} {c['inside']:.0%} inside, {c['above']:.0%} above, "
                     f"{c['below']:.0%} below ({c['steps']} steps)")
    return ("Ensemble NEES against its 95 % bounds, per step over the trials holding a firm track (above: errors "
            "larger than the covariance claims, overconfident; below: conservative; a consistent filter is "
            "inside on about 95 % of steps): " + "; ".join(parts) + ".")


# The true state's own IPP error at or above this share of the tracks' median error: the error is the
# predictor's model against the flight (a perfect track would have it), not tracking.
FLOOR_DOMINATES = 0.5


def ipp_floor_json(floor: list) -> dict:
    """The ``ipp_floor`` entry of ``metrics.json`` (see :func:`sim.engine.ipp_floor_rows`)."""
    from sim.engine import IPP_FLOOR_KEYS

    return {"ipp_floor": [{"target": r["target"], "time_to_go_s": _round(r["time_to_go_s"]),
                           **{k: _summary_json(r[k]) for k in IPP_FLOOR_KEYS},
                           "lift_glide": _round(r["lift_glide"]), "lift_pullup": _round(r["lift_pullup"]),
                           "ballistic_coeff": _round(r["ballistic_coeff"]),
                           "nominal_ballistic_coeff": _round(r["nominal_ballistic_coeff"])} for r in floor]}


def ipp_floor_sentence(doc: dict, target: str) -> str | None:
    """What the IPP error at the warning time is made of: the true state's own IPP error against the tracks'.

    Reads ``doc["ipp_floor"]`` (:func:`ipp_floor_json`) and the rows' ``ipp_error_km_at_120s``
    medians. When the true state's error (the trackers' predictor: nominal drag in the air) is at
    least :data:`FLOOR_DOMINATES` of the median of the rows' medians, the sentence says the error is
    the predictor's model against the flight and names what the flight has that the model lacks
    (lift, a ballistic coefficient other than the nominal); else that tracking dominates. Every
    number is the run's own.
    """
    entry = next((e for e in doc.get("ipp_floor", []) if e["target"] == target), None)
    if entry is None or entry["truth_ipp_error_km"]["median"] is None:
        return None
    fl = entry["truth_ipp_error_km"]
    free = entry["truth_ipp_error_drag_free_km"]["median"]
    tgo = entry["time_to_go_s"]
    head = (f"Impact prediction from the true state: {tgo:g} s before impact, {target}'s true state propagated to "
            f"the ground with the trackers' model (drag of the nominal ballistic coefficient, "
            f"{entry['nominal_ballistic_coeff']:,.0f} kg/m^2) misses the true impact point by "
            f"{_metres(fl['median'] * 1e3)} (median of {_trials(fl['n'] - fl['missing'])}"
            + (f"; drag-free: {_metres(free * 1e3)}" if free is not None else "") + ")")
    meds = [r["ipp_error_km_at_120s"]["median"] for r in doc["results"]
            if r["target"] == target and isinstance(r.get("ipp_error_km_at_120s"), dict)
            and r["ipp_error_km_at_120s"]["median"] is not None]
    if not meds:
        return head + "; no row had a firm-track IPP then."
    lo, hi = min(meds), max(meds)
    rows = (f"the tracks' IPP errors there (row medians {_metres(lo * 1e3)}" +
            (f" to {_metres(hi * 1e3)}" if hi > lo else "") + ")")
    if fl["median"] < FLOOR_DOMINATES * float(np.median(meds)):
        return f"{head}; {rows} are mostly tracking error: a perfect track would predict within that."
    why = []
    if entry["lift_glide"] > 0:
        why.append(f"a glide with lift at L/D {entry['lift_glide']:g}")
    if entry["lift_pullup"] > 0:
        why.append(f"a terminal pull-up at L/D {entry['lift_pullup']:g}")
    if why:
        cause = f"the flight has lift that a ballistic predictor does not model ({' and '.join(why)})"
    elif entry["ballistic_coeff"] != entry["nominal_ballistic_coeff"]:
        cause = (f"the RV's ballistic coefficient ({entry['ballistic_coeff']:,.0f} kg/m^2) is not the trackers' "
                 "nominal")
    else:
        cause = "the flight differs from the trackers' model"
    gap = max(abs(m - fl["median"]) for m in meds)
    return (f"{head}; {rows} are within {_metres(gap * 1e3)} of it, so the error is the predictor's model "
            f"against this flight, not tracking: {cause}.")


def markdown_report(doc: dict, figures: list[tuple[str, str]], extra: str = "", notes=(), intro=()) -> str:
    """``report.md``: ``intro`` paragraphs (e.g. :func:`span_sentence`), per-target tables (median and
    p10-p90), gain sentences per nation, ``notes`` (one paragraph each, e.g. :func:`silent_radars_sentence`),
    figures, then ``extra`` Markdown."""
    out = io.StringIO()
    out.write(f"# {doc['scenario']}\n\n")
    out.write(f"gsomia-sim {doc['version']}, seed {doc['seed']}, {trials_text(doc['trials'])}, "
              f"event {doc['event_utc']}.\n\n")
    if "resolved" in doc:
        from sim.provenance import provenance_line

        out.write(f"{provenance_line(doc)}\n\n")
    for para in intro:
        out.write(f"**{para}**\n\n")
    out.write("Cells: median over trials, 10th-90th percentile in brackets; `in k/n` = the metric happened in "
              "only k of the n trials (no detection, no firm track, no warning) and the median is over those k; "
              "`none` = it happened in no trial; `bimodal` = the trials fall in two clusters (Sarle's coefficient "
              "above 5/9), so read the range, not the median. Accuracy and consistency are scored only on steps "
              "where the nation holds a firm track (confirmed and held on the object for firm_track_hold_s), "
              "so a fresh track's first seconds do not count. The matched ratio compares a row with the same "
              "nation's isolated row on the steps where both hold a firm track in the same trial (1 for isolated). "
              "Efficiency is RMSE over the posterior Cramer-Rao bound on the same steps (1 is the best any tracker "
              "could do with that data). NEES inside: fraction of steps whose ensemble NEES (over the trials "
              "holding a firm track then) is inside its chi-square 95 % bounds. Warning time is the time to go "
              "of the first prediction whose impact point was within the threshold and whose own 2-sigma "
              "uncertainty was too (a warning the nation could issue); a later miss does not cancel it but is "
              "counted as a retraction. GOSPA, where shown, is over all objects at once, so each target's table "
              "repeats it. Every metric is defined in the README.\n\n")
    policies = list(dict.fromkeys(r["policy"] for r in doc["results"]))
    for target in targets(doc):
        out.write(f"## {target}\n\n")
        for keys in (TABLE_KEYS, DETAIL_KEYS):
            header, rows = table_rows(doc, target, ranges=True, keys=keys)
            out.write("| " + " | ".join(header) + " |\n")
            out.write("|" + "---|" * len(header) + "\n")
            for row in rows:
                out.write("| " + " | ".join(row) + " |\n")
            out.write("\n")
        for nation in dict.fromkeys(r["nation"] for r in doc["results"]):
            for policy in policies:
                s = gain_sentence(doc, nation, target, policy)
                if s:
                    out.write(f"- {s}\n")
        for s in (ensemble_consistency_sentence(doc, target), consistency_sentence(doc, target),
                  ipp_floor_sentence(doc, target), undetected_sentence(doc, target)):
            if s:
                out.write(f"- {s}\n")
        out.write("\n")
    for note in notes:
        out.write(f"{note}\n\n")
    if figures:
        out.write("## Figures\n\n")
        for title, name in figures:
            out.write(f"### {title}\n\n![{title}]({name})\n\n")
    if extra:
        out.write(extra)
    return out.getvalue()


def _summary_json(s: dict) -> dict:
    return {"median": _round(s["median"]), "p10": _round(s["p10"]), "p90": _round(s["p90"]),
            "n": int(s["n"]), "missing": int(s["n_missing"])}


def shared_estimates_json(shared: list, spread: list) -> dict:
    """The ``shared_estimates`` and ``ipp_spread`` entries of ``metrics.json`` (see :class:`sim.engine.RunOutput`)."""
    from fusion.shared_estimates import SHARED_KEYS

    return {
        "shared_estimates": [{"policy": r["policy"], "nation": r["nation"], "sender": r["sender"], "target": r["target"],
                              **{k: _summary_json(r[k]) for k in SHARED_KEYS if k in r}} for r in shared],
        "ipp_spread": [{"policy": r["policy"], "target": r["target"], "spread_km": _summary_json(r["spread_km"]),
                        "disagree": r["disagree"], "compared": r["compared"]} for r in spread],
    }


def _km_cell(summary) -> str:
    if not summary or summary.get("median") is None:
        return "none"
    cell = f"{summary['median']:.1f} [{summary['p10']:.1f}-{summary['p90']:.1f}]"
    # in-memory summaries (fusion.metrics) count "n_missing", metrics.json's "missing" (new-user trial: a
    # KR-sent IPP over 1 of 2 trials showed no count)
    missing = summary.get("n_missing", summary.get("missing", 0))
    return cell + (f" [{missing} none]" if missing else "")


def _pct_smaller(a, b):
    """How much smaller ``a`` is than ``b``, in percent of ``b`` (negative: larger)."""
    return 100.0 * (b - a) / b if b else float("nan")


def measurement_vs_tracks_sentence(doc: dict, nation: str, target: str,
                                   meas: str = "trilateral", tracks: str = "trilateral-tracks") -> str | None:
    """By how much measurement sharing beats track sharing for one nation (medians), or None without both rows."""
    m, t = _find(doc, meas, nation, target), _find(doc, tracks, nation, target)
    if m is None or t is None:
        return None
    parts = []
    rm, rt = _median(m, "pos_rmse_m"), _median(t, "pos_rmse_m")
    if rm is not None and rt is not None:
        pct = _pct_smaller(rm, rt)
        parts.append(f"position RMSE {_metres(rm)} against {_metres(rt)} "
                     f"({abs(pct):.0f} % {'smaller' if pct >= 0 else 'larger'} with measurements)")
    fm, ft = _median(m, "firm_track_time_s"), _median(t, "firm_track_time_s")
    if fm is not None and ft is not None:
        d = ft - fm  # one sign convention for both: how much better measurement sharing does
        parts.append(f"firm track {fm:.0f} s against {ft:.0f} s after launch ("
                     + ("the same" if round(d) == 0 else
                        f"measurements {abs(d):.0f} s {'earlier' if d > 0 else 'later'}") + ")")
    wm, wt = _median(m, "warning_time_s"), _median(t, "warning_time_s")
    if wm is not None and wt is not None:
        d = wm - wt
        parts.append(f"warning {wm:.0f} s against {wt:.0f} s to go ("
                     + ("the same" if round(d) == 0 else
                        f"measurements {abs(d):.0f} s {'more' if d > 0 else 'less'}") + ")")
    am, at = _median(m, "anees"), _median(t, "anees")
    if am is not None and at is not None:
        parts.append(f"ANEES {am:.2f} against {at:.2f}")
    if not parts:
        return None
    return (f"{NATION_NAMES.get(nation, nation)}: measurement sharing ({meas}) against track sharing ({tracks}), "
            "medians over trials: " + "; ".join(parts) + ".")


def shared_estimates_section(doc: dict, shared: list, spread: list, threshold_km: float,
                             time_to_go_s: float) -> str:
    """Markdown section: what the track reports tell each nation, and public-warning disagreements.

    Per receiving nation and sender (track-level routes): the error of the sender's
    reported IPP at ``time_to_go_s`` before impact, its distance from the receiver's own
    IPP then, and the error of the reported launch point; per policy, the trials in
    which two nations' IPPs at that time were more than ``threshold_km`` apart (a
    public-warning disagreement, as on 2024-01-14: Japan reported more than 500 km,
    the ROK about 1,000 km); per nation, measurement against track sharing.
    Empty string when the run has none of these.
    """
    out = io.StringIO()
    if shared:
        out.write("## What the track reports share\n\n")
        out.write(f"A track report carries the sender's state and covariance, its impact point (IPP) and its "
                  f"launch point. Per receiving nation and sender: the error of the sender's latest reported IPP "
                  f"that had reached the receiver {time_to_go_s:.0f} s before impact, its distance from the "
                  f"receiver's own IPP then (from the receiver's own picture before fusion), and the error of "
                  f"the launch point the sender reported first; km, median [10th-90th percentile], "
                  f"`[k none]` = trials without it.\n\n")
        out.write("| policy | target | receiver | sender | reported IPP error | from receiver's own IPP "
                  "| reported launch-point error |\n|---|---|---|---|---|---|---|\n")
        for r in shared:
            out.write(f"| {r['policy']} | {r['target']} | {r['nation']} | {r['sender']} | "
                      f"{_km_cell(r.get('shared_ipp_error_km'))} | {_km_cell(r.get('shared_ipp_vs_own_km'))} | "
                      f"{_km_cell(r.get('shared_launch_error_km'))} |\n")
        out.write("\n")
    if spread:
        out.write("## Public-warning disagreement\n\n")
        out.write(f"Two nations' IPPs {time_to_go_s:.0f} s before impact farther apart than the "
                  f"{threshold_km:g} km threshold would give two public warnings that disagree (on 2024-01-14 "
                  f"Japan reported a flight of more than 500 km, the ROK about 1,000 km).\n\n")
        for r in spread:
            if not r["compared"]:  # new-user trial: "no disagreement in 0 of 0 trials ..." read as a finding
                out.write(f"- {r['policy']}, {r['target']}: nothing to compare (in no trial did two nations "
                          f"have an IPP {time_to_go_s:.0f} s before impact).\n")
                continue
            med = r["spread_km"]["median"]
            if r["disagree"]:
                out.write(f"- {r['policy']}, {r['target']}: **disagreement** in {r['disagree']} of {r['compared']} "
                          f"trials with two or more IPPs (median largest spread {med:.1f} km).\n")
            else:  # new-user trial: "no disagreement in 0 of 2 trials" read as a double negative
                out.write(f"- {r['policy']}, {r['target']}: no disagreement: the IPPs were within "
                          f"{threshold_km:g} km of each other in all {r['compared']} trials with two or more "
                          f"(median largest spread {med:.1f} km).\n")
        out.write("\n")
    lines = []
    for target in targets(doc):
        for nation in dict.fromkeys(r["nation"] for r in doc["results"]):
            sentence = measurement_vs_tracks_sentence(doc, nation, target)
            if sentence:
                lines.append(f"- {target}: {sentence}\n")
    if lines:
        out.write("## Measurement sharing against track sharing\n\n" + "".join(lines) + "\n")
    return out.getvalue()


def json_bytes(doc: dict) -> bytes:
    """Canonical bytes of ``metrics.json`` (stable key order, fixed indentation, trailing newline)."""
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure (fixed metadata, so reruns give the same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


def _figures(run, scenario) -> list[tuple[str, str, bytes]]:
    """The report's PNG figures as (title, file name, bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = run.curves
    figs = []
    keys = list(curves.pos)
    target_names = list(dict.fromkeys(k[2] for k in keys))
    nations = list(dict.fromkeys(k[1] for k in keys))
    styles = {p: ls for p, ls in zip(run.policies, ["-", "--", ":", "-."] * 4)}
    colors = {"US": "tab:blue", "JP": "tab:red", "KR": "tab:green"}
    policy_colors = {p: c for p, c in zip(run.policies, ["tab:gray", "tab:orange", "tab:purple", "tab:cyan",
                                                          "tab:brown", "tab:olive"] * 4)}
    pcrlb = getattr(curves, "pcrlb", {})
    for target in target_names:
        fig, axes = plt.subplots(len(nations), 1, figsize=(9, 2.6 * len(nations)), sharex=True, squeeze=False)
        for ax, nation in zip(axes[:, 0], nations):
            for policy in run.policies:
                key = (policy, nation, target)
                if key not in curves.pos:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no firm track then
                    rms = np.sqrt(np.nanmean(curves.stacked(curves.pos, key) ** 2, axis=0))
                color = policy_colors[policy]
                ax.semilogy(curves.t, rms, "-", color=color, lw=1.6, label=policy)
                if key in pcrlb:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        bound = np.sqrt(np.nanmean(curves.stacked(pcrlb, key), axis=0))
                    ax.semilogy(curves.t, bound, "-", color=color, lw=0.6, label=f"{policy} PCRLB")
            _say_if_empty(ax, f"{nation}: no firm track on {target} in any trial", curves.t)
            ax.set_ylabel(f"{nation} RMS error [m]")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(loc="upper right", fontsize=7, ncol=2)
        axes[-1, 0].set_xlabel("time since the scenario epoch, event_utc [s]")
        fig.suptitle(f"{target}: Monte Carlo RMS position error over the trials holding a firm track\n"
                     "(thick: the tracker; thin, same colour: the posterior Cramer-Rao bound)", fontsize=10)
        fig.tight_layout()
        figs.append((f"Position error versus time, {target}", f"position_error_{file_stem(target)}.png",
                     figure_png(fig)))
        plt.close(fig)

        fig = _nees_figure(plt, run, target, nations, policy_colors)
        figs.append((f"Ensemble NEES versus time, {target}", f"nees_{file_stem(target)}.png", figure_png(fig)))
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(9, 4))
        for nation in nations:
            for policy in run.policies:
                key = (policy, nation, target)
                if key not in curves.ipp:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    med = np.nanmedian(curves.stacked(curves.ipp, key), axis=0)
                ax.semilogy(curves.tau, med, styles[policy], color=colors.get(nation), label=f"{nation} {policy}")
        _say_if_empty(ax, f"no predicted impact point for {target}: no confirmed track on it in any trial", curves.tau)
        ax.axhline(scenario.metrics.ipp_threshold / 1e3, color="k", lw=0.8, alpha=0.5)
        ax.invert_xaxis()
        ax.set_xlabel("time to go [s]")
        ax.set_ylabel("IPP error [km]")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=3)
        ax.set_title(f"{target}: median predicted-impact-point error "
                     f"(line: warning threshold, {scenario.metrics.ipp_threshold / 1e3:g} km)")
        fig.tight_layout()
        figs.append((f"IPP error versus time to go, {target}", f"ipp_error_{file_stem(target)}.png", figure_png(fig)))
        plt.close(fig)

    if curves.coverage is not None:
        sensor, obj, time, n_sensors = curves.coverage
        fig, ax = plt.subplots(figsize=(9, 0.35 * n_sensors + 1.2))
        # Each radar's band is [k - 0.25, k + 0.25], one sub-row per object in it, bands ruled apart; a fixed
        # 0.15 per object spilled into the next radars' bands with five threats (new-user trial, salvo).
        n_obj = sum(2 if th.stage_object else 1 for th in scenario.threats)  # truth's object order
        step = 0.5 / max(n_obj - 1, 1)
        for k, radar in enumerate(run.radars):
            for o in np.unique(obj[sensor == k]):
                tt = time[(sensor == k) & (obj == o)]
                ax.plot(tt, np.full(tt.shape, k - 0.25 + step * o), "|", ms=max(2.0, min(6.0, 30.0 * step)),
                        color=colors.get(radar.nation), alpha=0.7)
            ax.axhline(k + 0.5, color="0.85", lw=0.6)
        if sensor.size == 0:
            ax.text(0.5, 0.5, "no radar detected any threat in trial 0", transform=ax.transAxes, ha="center",
                    va="center")
        ax.set_yticks(range(len(run.radars)), [f"{r.name} ({r.nation})" for r in run.radars], fontsize=7)
        ax.set_xlabel("time since the scenario epoch, event_utc [s]")
        ax.set_title("Coverage timeline of trial 0: detections per radar\n"
                     "(within a radar's band, bottom to top: each threat's RV, then its spent stage)", fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        figs.append(("Coverage timeline per sensor", "coverage.png", figure_png(fig)))
        plt.close(fig)
    return figs


def _nees_figure(plt, run, target, nations, policy_colors):
    """Ensemble NEES per step (over the trials holding a firm track) with its chi-square 95 % bounds, one
    panel per nation, one line per policy; the bounds drawn for the policy with the most trials per step."""
    from fusion.metrics import ensemble_nees

    t0 = np.asarray(run.curves.t, float)
    dt = float(t0[1] - t0[0]) / max(run.curves.step, 1) if t0.size > 1 else 1.0
    fig, axes = plt.subplots(len(nations), 1, figsize=(9, 2.4 * len(nations)), sharex=True, squeeze=False)
    for ax, nation in zip(axes[:, 0], nations):
        for policy in run.policies:
            key = (policy, nation, target)
            if key not in getattr(run, "nees", {}):
                continue
            total, count = run.nees[key]
            mean, lo, hi = ensemble_nees(total[0], count[0])
            t = (t0[0] if t0.size else 0.0) + dt * np.arange(mean.size)
            color = policy_colors[policy]
            ax.semilogy(t, mean, "-", color=color, lw=0.9, label=policy)
            ax.semilogy(t, lo, ":", color=color, lw=0.6)
            ax.semilogy(t, hi, ":", color=color, lw=0.6)
        ax.axhline(6.0, color="k", lw=0.6, alpha=0.5)
        _say_if_empty(ax, f"{nation}: no firm track on {target} in any trial", t0)
        ax.set_ylabel(f"{nation} NEES")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("time since the scenario epoch, event_utc [s]")
    fig.suptitle(f"{target}: ensemble NEES over the trials holding a firm track (6-state, consistent = 6)\n"
                 "dotted, same colour: its chi-square 95 % bounds for that many trials", fontsize=10)
    fig.tight_layout()
    return fig


def _say_if_empty(ax, text: str, x) -> None:
    """Write ``text`` across an axes none of whose lines has a finite point (a blank plot says nothing),
    over the span of ``x`` (s) rather than matplotlib's default of 0 +- 0.05."""
    if not any(np.isfinite(line.get_ydata()).any() for line in ax.get_lines()):
        ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9)
        x = np.asarray(x, dtype=float)
        x = x[np.isfinite(x)]
        if x.size and x.min() < x.max():
            ax.set_xlim(x.min(), x.max())


def trials_text(n: int) -> str:
    """``"1 trial"``, ``"1,000 trials"``: a trial count in words."""
    return f"{n:,} trial" + ("" if n == 1 else "s")


def output_names(scenario) -> list[str]:
    """File names :func:`write_outputs` may write for ``scenario``: metrics, report, coverage, and two
    figures per threat (named by :func:`sim.scenario.file_stem`)."""
    names = ["metrics.json", "report.md", "coverage.png"]
    for threat in scenario.threats:
        names += [f"position_error_{file_stem(threat.name)}.png", f"ipp_error_{file_stem(threat.name)}.png",
                  f"nees_{file_stem(threat.name)}.png"]
    return names


def check_out_dir(out_dir, names=()) -> Path:
    """Check, before any work, that ``out_dir`` is a folder or a path where one can be made.

    Nothing is left behind. The path must be non-empty; it must be a folder if it
    exists, otherwise its nearest existing ancestor must be a folder. That folder is
    probed by creating and removing a temporary file in it, the only test that also
    holds for root and for read-only or virtual file systems (``os.access`` says yes
    to root everywhere, even under ``/proc``). Each of ``names`` (e.g.
    :func:`output_names`) that already exists in the folder must be a file the run
    can replace, not a folder.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    sim.errors.InputError
        Empty, an existing non-folder, under a non-folder, a folder where this
        process cannot create a file, or one of ``names`` taken by a non-file.
    """
    import tempfile

    from sim.errors import InputError

    if not str(out_dir).strip():
        raise InputError.single("--out", str(out_dir), "a folder path (not empty)")
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise InputError.single("--out", str(out), "must be a folder (or a path where one can be made)")
        where = out
    else:
        where = out.absolute().parent
        while not where.exists():
            where = where.parent
        if not where.is_dir():
            raise InputError.single("--out", str(out), f"must be a folder (or a path where one can be made); "
                                    f"{where} is a file")
    try:
        with tempfile.TemporaryFile(dir=where, prefix=".gsomia-probe-"):
            pass
    except OSError as e:
        raise InputError.single("--out", str(out), f"no file can be created in {where} ({e.strerror or e})") from None
    for name in names:
        _check_replaceable(out / name)
    return out


def _check_replaceable(path: Path) -> None:
    from sim.errors import InputError

    if path.exists() and not path.is_file():
        raise InputError.single("--out", str(path), "a file the run can replace (this is a folder or a special file)")


def write_outputs(out_dir, scenario, run, extra_markdown: str = "") -> dict:
    """Write ``metrics.json``, the figures and ``report.md`` into ``out_dir`` (created), each atomically.

    Returns
    -------
    dict
        The ``metrics.json`` document.

    Raises
    ------
    sim.errors.InputError
        ``out_dir`` is empty, exists and is not a folder, or cannot be created (:func:`check_out_dir`);
        an output name is taken by a folder; the files cannot be written (nothing is renamed then).
    """
    from sim.errors import InputError

    out = check_out_dir(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError.single("--out", str(out), "must be a folder (or a path where one can be made)") from None
    except OSError as e:
        raise InputError.single("--out", str(out), f"cannot be created ({e.strerror})") from None
    doc = metrics_document(scenario, run.trials, run.seed, run.rows)
    shared, spread = getattr(run, "shared", []), getattr(run, "ipp_spread", [])
    if shared or spread:
        doc.update(shared_estimates_json(shared, spread))
    if getattr(run, "ipp_floor", None):
        doc.update(ipp_floor_json(run.ipp_floor))
    extra_markdown = shared_estimates_section(doc, shared, spread, scenario.metrics.ipp_threshold / 1e3,
                                              scenario.metrics.ipp_time_to_go) + extra_markdown
    with warnings.catch_warnings():
        # A threat name with an emoji: matplotlib draws a box and warns per glyph on stderr (new-user trial)
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        figs = _figures(run, scenario)
    # Render everything, then write every file to a temporary name, then rename them all: a failure
    # before the renames (a full disk, a folder where a file goes) leaves the folder as it was.
    payload = [("metrics.json", json_bytes(doc))] + [(name, data) for _, name, data in figs]
    silent = silent_radars_sentence([r.name for r in run.radars], run.curves.coverage)
    span = span_sentence(scenario)
    payload.append(("report.md", markdown_report(doc, [(t, n) for t, n, _ in figs], extra_markdown,
                                                 notes=[silent] if silent else [],
                                                 intro=[span] if span else []).encode()))
    for name, _ in payload:
        _check_replaceable(out / name)
    staged = []
    try:
        for name, data in payload:
            staged.append((_stage(out / name, data), out / name))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException as e:  # a full disk, a permission error, Ctrl-C: no temporary file stays behind
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if isinstance(e, OSError):
            raise InputError.single("--out", str(out), f"its files cannot be written ({e.strerror})") from None
        raise
    return doc
