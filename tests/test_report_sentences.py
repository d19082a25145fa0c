"""report.md's gain sentences, one table-driven case per branch, each asserting the whole sentence (issue 24,
item 9: "higher"/"lower" swapped or a sentence's ending dropped must fail a test)."""

from __future__ import annotations

import copy

import pytest

from sim.report import gain_sentence


def _summary(median, n=8, missing=0, ci=None):
    s = {"median": median, "p10": median, "p90": median, "n": n, "missing": missing}
    if ci is not None:
        s["ci95"] = list(ci)
    return s


def _paired(median, pairs=8, ci=None, only_this=0, only_isolated=0):
    return {"median": median, "ci95": None if ci is None else list(ci), "pairs": pairs, "only_this": only_this,
            "only_isolated": only_isolated}


def _doc(trials=8, **tri):
    iso = {"policy": "isolated", "nation": "JP", "target": "rv", "detect_time_s": _summary(80.0),
           "pos_err_ratio_vs_isolated": _summary(1.0), "common_steps_vs_isolated": _summary(900.0),
           "pcrlb_pos_m": _summary(900.0)}
    row = {"policy": "trilateral", "nation": "JP", "target": "rv", "detect_time_s": _summary(40.0),
           "pos_err_ratio_vs_isolated": _summary(0.46, ci=(0.40, 0.52)),
           "common_steps_vs_isolated": _summary(850.0), "pcrlb_pos_m": _summary(40.0),
           "paired_vs_isolated": {"firm_track_time_s": _paired(-41.0, ci=(-42.0, -40.0)),
                                  "completeness": _paired(0.09, ci=(0.05, 0.13)),
                                  "warning_time_s": _paired(10.0, ci=(0.0, 20.0))},
           "warning_retracted": {"trials": 0, "n": trials}}
    row.update(tri)
    return {"trials": trials, "results": [iso, row]}


BASE_TAIL = ("a firm track 41 s earlier (paired median over 8 trials, trilateral minus isolated 95 % CI -42 to "
             "-40 s); completeness 9 points higher (paired median over 8 trials, trilateral minus isolated 95 % CI "
             "+5 to +13 points); warning 10 s longer (paired median over 8 trials, trilateral minus isolated 95 % "
             "CI +0 to +20 s)")
HEAD = "For Japan, trilateral sharing: over the steps both hold a firm track (8 of 8 trials, median 850 steps per trial) "


def _with_paired(**changes):
    p = copy.deepcopy(_doc()["results"][1]["paired_vs_isolated"])
    p.update(changes)
    return {"paired_vs_isolated": p}


CASES = {
    "ratio below 1, bound falls, indicative": (
        {}, 8,
        HEAD + "it cuts Japan's position error to 0.46 of isolated (median ratio, 95 % CI 0.40 to 0.52); the bound "
        "(PCRLB) falls from 900 m to 40 m; " + BASE_TAIL + "; indicative only: 8 trials, fewer than 20."),
    "ratio above 1, bound rises, 20 trials: a full stop": (
        {"pos_err_ratio_vs_isolated": _summary(1.3, ci=(1.1, 1.5)), "pcrlb_pos_m": _summary(1200.0)}, 20,
        HEAD + "it raises Japan's position error to 1.30 times isolated (median ratio, 95 % CI 1.10 to 1.50); the "
        "bound (PCRLB) rises from 900 m to 1.2 km; " + BASE_TAIL + "."),
    "ratio 1.00, bound the same": (
        {"pos_err_ratio_vs_isolated": _summary(1.001, ci=(0.99, 1.01)), "pcrlb_pos_m": _summary(900.2)}, 8,
        HEAD + "it leaves Japan's position error unchanged at 1.00 of isolated (median ratio, 95 % CI 0.99 "
        "to 1.01); the bound (PCRLB) stays at 900 m; " + BASE_TAIL + "; indicative only: 8 trials, fewer than 20."),
    "no common step": (
        {"pos_err_ratio_vs_isolated": _summary(None, missing=8), "pcrlb_pos_m": _summary(None, missing=8),
         "paired_vs_isolated": {}}, 8,
        "For Japan, trilateral sharing: no step in any trial where both it and isolated tracking hold a firm "
        "track, so no matched error comparison; indicative only: 8 trials, fewer than 20."),
    "later firm track, lower completeness, shorter warning, retracted": (
        {**_with_paired(firm_track_time_s=_paired(12.0, ci=(10.0, 14.0)),
                        completeness=_paired(-0.2, ci=(-0.3, -0.1)),
                        warning_time_s=_paired(-30.0, ci=(-40.0, -20.0))),
         "warning_retracted": {"trials": 2, "n": 8}}, 8,
        HEAD + "it cuts Japan's position error to 0.46 of isolated (median ratio, 95 % CI 0.40 to 0.52); the bound "
        "(PCRLB) falls from 900 m to 40 m; a firm track 12 s later (paired median over 8 trials, trilateral minus "
        "isolated 95 % CI +10 to +14 s); completeness 20 points lower (paired median over 8 trials, trilateral "
        "minus isolated 95 % CI -30 to -10 points); warning 30 s shorter (paired median over 8 trials, trilateral "
        "minus isolated 95 % CI -40 to -20 s); a believed later prediction missed by more than the threshold "
        "after the warning (a retraction) in 2 of 8 trials; indicative only: 8 trials, fewer than 20."),
    "the same, with trials where only one row had it": (
        _with_paired(firm_track_time_s=_paired(0.2, pairs=6, ci=(-1.0, 1.0), only_this=2),
                     completeness=_paired(0.001, ci=(0.0, 0.01)),
                     warning_time_s=_paired(None, pairs=0, only_isolated=3)), 8,
        HEAD + "it cuts Japan's position error to 0.46 of isolated (median ratio, 95 % CI 0.40 to 0.52); the bound "
        "(PCRLB) falls from 900 m to 40 m; the same firm-track time (paired median over 6 trials, trilateral minus "
        "isolated 95 % CI -1 to +1 s; 2 trials with a firm track only under trilateral); the same completeness "
        "(paired median over 8 trials, trilateral minus isolated 95 % CI +0 to +1 points); no trial with a "
        "warning under both (3 trials with a warning only when isolated); indicative only: 8 trials, fewer than "
        "20."),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gain_sentence_branches(case):
    changes, trials, want = CASES[case]
    doc = _doc(trials=trials, **changes)
    assert gain_sentence(doc, "JP", "rv") == want


def test_gain_sentence_without_isolated_or_any_detection():
    doc = _doc()
    doc["results"] = doc["results"][1:]
    assert gain_sentence(doc, "JP", "rv") == (
        "For Japan, trilateral sharing: no matched comparison, because the isolated policy was not run (the "
        "comparison is made on the steps where both trilateral and isolated tracking hold the object; add "
        "isolated to --policies).")
    doc = _doc()
    for r in doc["results"]:
        r["detect_time_s"] = _summary(None, missing=8)
    assert gain_sentence(doc, "JP", "rv") == (
        "For Japan, trilateral sharing: nothing to compare (neither it nor isolated tracking detects rv in any "
        "trial).")
    assert gain_sentence(_doc(), "JP", "rv", policy="isolated") is None
    assert gain_sentence(_doc(), "KR", "rv") is None


def test_gain_sentence_names_the_phases_and_events_both_rows_have():
    """Per-phase RMSE and fixed-event errors, isolated first, only where both rows have them, said unmatched."""
    doc = _doc(pos_rmse_boost_m=_summary(95.0), pos_rmse_midcourse_m=_summary(1400.0),
               pos_error_m_at_120s=_summary(30.0), pos_rmse_reentry_m=_summary(None, missing=8))
    iso = doc["results"][0]
    iso.update(pos_rmse_boost_m=_summary(210.0), pos_rmse_midcourse_m=_summary(2900.0),
               pos_rmse_reentry_m=_summary(60.0), pos_error_m_at_120s=_summary(45.0))
    assert gain_sentence(doc, "JP", "rv") == (
        HEAD + "it cuts Japan's position error to 0.46 of isolated (median ratio, 95 % CI 0.40 to 0.52); the bound "
        "(PCRLB) falls from 900 m to 40 m; per phase and event, isolated to this policy (medians, each over its own "
        "firm-track steps, not matched): boost 210 m to 95 m, midcourse 2.9 km to 1.4 km, 120 s to go 45 m to "
        "30 m; " + BASE_TAIL + "; indicative only: 8 trials, fewer than 20.")
