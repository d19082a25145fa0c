"""Every publicly reported flight of a catalog class flies through ``trajectory`` (issue 21).

Right values: the reported apogee, range and flight time of each row of
``tests/data/published_flights.csv`` (Japan MoD, ROK JCS and KCNA releases; each row names its
sources and which one it used where they disagree). The contract of ``trajectory``: ground range
within 1 %, apogee within 2 %, flight time within 5 % where one is reported, and a median
flight-time error over the record of at most 3 %. A reported apogee below the minimum-energy
apogee at that range is a depressed flight (``trajectory --depressed``).

Two levels, because solving a row costs 3-10 s (a batch of full flights per iteration):

- fast: the steering of every row (aim azimuth, kick, cut-off), solved once by the function behind
  ``trajectory`` and stored in ``tests/data/published_flights_steering.csv``, is flown through the
  class's equations of motion, one flight per row; a change to a class (mass, burn time, payload)
  that moves any recorded flight out of tolerance fails here.
- slow: :func:`sim.shaping.flight_summary` (what ``trajectory`` prints) fits every row from scratch,
  choosing the shape from the minimum-energy apogee, and agrees with the stored steering. After a
  class changes, regenerate the steering with ``python tests/test_published_flights.py`` (it refuses
  to write if a row does not fit) and rerun ``pytest -m slow tests/test_published_flights.py``.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.earth import geodesic_inverse  # noqa: E402
from sim.missiles import MISSILES  # noqa: E402
from sim.shaping import _fly_batch, flight_summary, solve_nominal  # noqa: E402

DATA = Path(__file__).parent / "data" / "published_flights.csv"
STEERING = Path(__file__).parent / "data" / "published_flights_steering.csv"
RANGE_TOL, APOGEE_TOL, TIME_TOL, MEDIAN_TIME_TOL = 0.01, 0.02, 0.05, 0.03
# deg, impact azimuth seen from the launch point against the bearing: sim.shaping re-aims until 0.02 deg
# but keeps a miss under 1 deg that its unit-slope passes leave (Hwasong-14 2017-07-04: 0.9 deg).
BEARING_TOL = 1.0
DEFAULT_BEARING = 90.0  # deg, rows whose bearing is not published: east, into the Sea of Japan (assumption)


def _rows():
    with open(DATA, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _row_id(r):
    return f"{r['date_local']}_{r['class']}_{r['range_km']}km"


def _geometry(r):
    """Launch point (deg), bearing (deg), reported range and apogee (km), reported flight time (s or None)."""
    b = float(r["bearing_deg"]) if r["bearing_deg"] else DEFAULT_BEARING
    t = float(r["flight_time_s"]) if r["flight_time_s"] else None
    return float(r["launch_lat_deg"]), float(r["launch_lon_deg"]), b, float(r["range_km"]), float(r["apogee_km"]), t


ROWS = _rows()
TIMED = [r for r in ROWS if r["flight_time_s"]]


# --- the record -----------------------------------------------------------------------------

def test_record_is_sourced_and_names_catalog_classes():
    assert len(ROWS) == 27 and len(TIMED) == 14
    ids = [_row_id(r) for r in ROWS]
    assert len(set(ids)) == len(ids)
    for r in ROWS:
        assert r["class"] in MISSILES, r["class"]
        assert r["date_local"] >= "2017-01-01"
        # Every row names at least one reporting organisation and the date of its release.
        assert any(org in r["source"] for org in ("Japan MoD", "ROK JCS", "KCNA")), r["source"]
        assert r["date_local"][:4] in r["source"], r["source"]
        lat, lon, b, R, A, T = _geometry(r)
        assert 37 < lat < 43 and 124 < lon < 131 and 0 <= b < 360 and R > 0 and A > 0 and (T is None or T > 0)
    # Every class of the catalog has its record, except the Nodong: no flight of it since 2017 has a
    # public identification with an apogee and a range (see the README).
    assert {r["class"] for r in ROWS} == set(MISSILES) - {"mrbm-nodong"}


# --- fast: the stored steering flies every row ------------------------------------------------

def _stored():
    with open(STEERING, newline="", encoding="utf-8") as f:
        return {r["row"]: r for r in csv.DictReader(f)}


def _fly(row, st):
    """Fly one row with its stored steering; (range km, apogee km, flight time s, impact azimuth deg)."""
    m = MISSILES[row["class"]]
    lat, lon, *_ = _geometry(row)
    depressed = st["shape"] == "depressed"
    lift = m.glide_lift_to_drag if depressed else 0.0
    rng, apo, tof, azi, _ = _fly_batch(m, np.radians(lat), np.radians(lon), np.radians(float(st["azimuth_deg"])),
                                       np.radians(float(st["kick_deg"])), float(st["t_cut_s"]), lift, 0.0, depressed)
    return rng[0] / 1e3, apo[0] / 1e3, tof[0], azi[0]


@pytest.fixture(scope="module")
def stored_flights():
    st = _stored()
    assert set(st) == {_row_id(r) for r in ROWS}, "regenerate: python tests/test_published_flights.py"
    return {_row_id(r): (st[_row_id(r)], _fly(r, st[_row_id(r)])) for r in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_class_flies_the_reported_flight(row, stored_flights):
    st, (R_f, A_f, T_f, az_f) = stored_flights[_row_id(row)]
    _, _, b, R, A, T = _geometry(row)
    assert abs(R_f / R - 1) <= RANGE_TOL, (R_f, R)
    # On the bearing: a high loft drifts west as the Earth turns under it, and the aim must allow for it
    # (the Hwasong-19 row landed 51 deg off its bearing before the secant re-aim of sim.shaping).
    assert abs((az_f - b + 180.0) % 360.0 - 180.0) <= BEARING_TOL, (az_f, b)
    assert abs(A_f / A - 1) <= APOGEE_TOL, (A_f, A)
    if T is not None:
        assert abs(T_f / T - 1) <= TIME_TOL, (T_f, T)
    # The depressed rows are exactly those below the minimum-energy apogee (stored with the steering).
    assert st["shape"] == ("depressed" if A < float(st["minimum_energy_apogee_km"]) else "lofted")


def test_median_flight_time_error_over_the_record(stored_flights):
    err = [abs(stored_flights[_row_id(r)][1][2] / float(r["flight_time_s"]) - 1) for r in TIMED]
    assert statistics.median(err) <= MEDIAN_TIME_TOL, err


# --- slow: trajectory's solver fits every row from scratch -------------------------------------

def _solve(row):
    """Fit a row as ``trajectory`` does; (summary dict, Nominal, shape, minimum-energy apogee km)."""
    key = row["class"]
    lat, lon, b, R, A, _ = _geometry(row)
    me = flight_summary(key, lat, lon, bearing_deg=b, range_km=R)
    shape = "lofted" if A > me["apogee_km"] else "depressed"
    s = flight_summary(key, lat, lon, bearing_deg=b, range_km=R, shape=shape, apogee_km=A)
    # The same call flight_summary made (cached): the steering behind the summary.
    nom = solve_nominal(key, float(np.radians(lat)), float(np.radians(lon)), float(np.radians(b)), R * 1e3,
                        shape, A * 1e3, "none")
    return s, nom, shape, me["apogee_km"]


_FITS: dict = {}


def _fit(row):
    if _row_id(row) not in _FITS:
        _FITS[_row_id(row)] = _solve(row)
    return _FITS[_row_id(row)]


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_trajectory_fits_the_reported_flight(row):
    s, nom, shape, _ = _fit(row)
    lat, lon, b, R, A, T = _geometry(row)
    assert abs(s["range_km"] / R - 1) <= RANGE_TOL and abs(s["apogee_km"] / A - 1) <= APOGEE_TOL, s
    az, _ = geodesic_inverse(lat, lon, s["impact_lat_deg"], s["impact_lon_deg"])
    assert abs((az - b + 180.0) % 360.0 - 180.0) <= BEARING_TOL, (az, b)
    if T is not None:
        assert abs(s["flight_time_s"] / T - 1) <= TIME_TOL, (s["flight_time_s"], T)
    # The stored steering is the one the solver finds today (else regenerate it).
    st = _stored()[_row_id(row)]
    assert st["shape"] == shape
    assert abs(float(st["flight_time_s"]) / s["flight_time_s"] - 1) < 0.002


@pytest.mark.slow
def test_trajectory_median_flight_time_error():
    err = [abs(_fit(r)[0]["flight_time_s"] / float(r["flight_time_s"]) - 1) for r in TIMED]
    assert statistics.median(err) <= MEDIAN_TIME_TOL, err


# --- the command itself -------------------------------------------------------------------------

def _argv(row, *extra):
    lat, lon, b, R, A, _ = _geometry(row)
    return ["trajectory", "--missile", row["class"], "--launch", f"{lat},{lon}", "--bearing", f"{b:g}",
            "--range-km", f"{R:g}", "--apogee-km", f"{A:g}", "--json", *extra]


def test_cli_flies_the_hwasong12_over_aomori(capsys):
    """The issue's example: 4,600 km (Japan MoD, 2022-10-04) was refused as beyond 4,500 km."""
    from sim.cli import main

    row = next(r for r in ROWS if r["date_local"] == "2022-10-04")
    assert main(_argv(row)) == 0
    s = json.loads(capsys.readouterr().out)
    assert abs(s["range_km"] / 4600 - 1) <= RANGE_TOL and abs(s["apogee_km"] / 1000 - 1) <= APOGEE_TOL
    assert abs(s["flight_time_s"] / 1320 - 1) <= TIME_TOL


@pytest.mark.slow
def test_cli_flies_a_depressed_row_only_with_depressed(capsys):
    """2017-08-29: 550 km is below the minimum-energy apogee at 2,700 km: the lofted request is refused
    naming the depressed shape, and --depressed flies it."""
    from sim.cli import main

    row = next(r for r in ROWS if r["date_local"] == "2017-08-29")
    assert main(_argv(row)) == 2
    assert "depressed" in capsys.readouterr().err
    assert main(_argv(row, "--depressed")) == 0
    s = json.loads(capsys.readouterr().out)
    assert abs(s["apogee_km"] / 550 - 1) <= APOGEE_TOL and abs(s["flight_time_s"] / 840 - 1) <= TIME_TOL


# --- the scenario files of published events still fly their rows ---------------------------------

# Scenario file -> (date of its row, threats flying it). The Hwasong-18 of 2023-04-13 has no row: its
# apogee was not published (the scenario assumes 3,000 km); the salvo is notional.
_SCENARIO_ROWS = {"hwasong12_2017-08-29.toml": "2017-08-29", "hwasong15_2017-11-29.toml": "2017-11-29",
                  "kn23_2019-07-25.toml": "2019-07-25", "pukguksong3_2019-10-02.toml": "2019-10-02",
                  "whatif_aegis_ashore.toml": "2019-07-25"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_SCENARIO_ROWS))
def test_scenario_flies_its_published_row(name, scenarios_dir):
    from sim.scenario import load_scenario
    from sim.shaping import nominal_for_threat

    row = next(r for r in ROWS if r["date_local"] == _SCENARIO_ROWS[name])
    _, _, _, R, A, T = _geometry(row)
    threats = [t for t in load_scenario(scenarios_dir / name).threats if t.missile == row["class"]]
    assert threats
    for th in threats:
        nom = nominal_for_threat(th)
        assert abs(nom.range / 1e3 / R - 1) <= RANGE_TOL and abs(nom.apogee / 1e3 / A - 1) <= APOGEE_TOL
        if T is not None:
            assert abs(nom.flight_time / T - 1) <= TIME_TOL, (nom.flight_time, T)


# --- regenerate the stored steering -------------------------------------------------------------

def write_steering(path: Path = STEERING) -> None:
    """Solve every row and write its steering (temporary file, then rename); refuse if a row does not fit."""
    out = []
    for r in ROWS:
        s, nom, shape, a_me = _solve(r)
        lat, lon, b, R, A, T = _geometry(r)
        ok = abs(s["range_km"] / R - 1) <= RANGE_TOL and abs(s["apogee_km"] / A - 1) <= APOGEE_TOL
        az, _ = geodesic_inverse(lat, lon, s["impact_lat_deg"], s["impact_lon_deg"])
        ok &= abs((az - b + 180.0) % 360.0 - 180.0) <= BEARING_TOL
        ok &= T is None or abs(s["flight_time_s"] / T - 1) <= TIME_TOL
        print(f"{_row_id(r):45s} {shape:9s} A {s['apogee_km']:8.1f}/{A:<8g} T {s['flight_time_s']:6.0f}/{T or '-'}",
              flush=True)
        if not ok:
            raise SystemExit(f"{_row_id(r)} does not fit: {s}")
        out.append({"row": _row_id(r), "shape": shape, "azimuth_deg": repr(float(np.degrees(nom.azimuth))),
                    "kick_deg": repr(float(np.degrees(nom.kick))), "t_cut_s": repr(nom.t_cut),
                    "minimum_energy_apogee_km": f"{a_me:.1f}", "range_km": f"{s['range_km']:.1f}",
                    "apogee_km": f"{s['apogee_km']:.1f}", "flight_time_s": f"{s['flight_time_s']:.1f}"})
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)
    os.replace(tmp, path)


if __name__ == "__main__":
    write_steering()
