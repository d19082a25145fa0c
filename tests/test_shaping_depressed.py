"""Depressed shape of the multi-stage classes: feasible apogees at a range, the flight, and honest errors.

The Hwasong-15 from the report of the defect (launch 39 N 125 E, bearing 76 deg): every depressed
request used to fail with an inverted interval ("[1817, 1015] km" at 5000 km), its low end the
full-burn apogee of the pitch-and-hold program at a 90 deg hold, whatever the range.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from sim.cli import main
from sim.earth import geodesic_inverse
from sim.errors import InputError
from sim.shaping import flight_summary

KEY, LAT, LON, BEARING = "icbm-hwasong15", 39.0, 125.0, 76.0
LAUNCH = ["--missile", KEY, "--launch", f"{LAT:g},{LON:g}", "--bearing", f"{BEARING:g}"]


def _interval(text):
    """The ``[lo, hi]`` km of an error message, as floats."""
    m = re.search(r"\[(-?\d+), (-?\d+)\] km", text)
    assert m, text
    return float(m.group(1)), float(m.group(2))


@pytest.fixture(scope="module")
def minimum_energy_5000():
    return flight_summary(KEY, LAT, LON, bearing_deg=BEARING, range_km=5000.0)


def test_hwasong15_depressed_5000km_meets_range_and_apogee(minimum_energy_5000):
    me = minimum_energy_5000
    A = 0.75 * me["apogee_km"]
    de = flight_summary(KEY, LAT, LON, bearing_deg=BEARING, range_km=5000.0, shape="depressed", apogee_km=A)
    # The contract of shaping: range within 1 %, apogee within 2 %.
    assert abs(de["range_km"] / 5000.0 - 1) < 0.01 and abs(de["apogee_km"] / A - 1) < 0.02
    # The impact lies on the requested bearing at that range (first ground contact: the flight stays up until then).
    az, d = geodesic_inverse(LAT, LON, de["impact_lat_deg"], de["impact_lon_deg"])
    assert abs(az - BEARING) < 0.3 and abs(d / 5000e3 - 1) < 0.01
    # A flatter path to the same range than the minimum-energy one needs more speed and takes less time.
    assert de["burnout_speed_mps"] > me["burnout_speed_mps"]
    assert de["flight_time_s"] < 0.95 * me["flight_time_s"]


def test_depressed_interval_is_below_the_minimum_energy_apogee_and_not_inverted(minimum_energy_5000):
    # The reported case: 1000 km is above the minimum-energy apogee at 5000 km (that flight is lofted).
    with pytest.raises(InputError) as e:
        flight_summary(KEY, LAT, LON, bearing_deg=BEARING, range_km=5000.0, shape="depressed", apogee_km=1000.0)
    p = e.value.problems[0]
    assert p.key_path == "apogee_km" and "lofted" in p.allowed
    lo, hi = _interval(p.allowed)
    # The top is the minimum-energy apogee the CLI prints for that range; the floor lies well below it
    # (it was 1817 km, from the full burn, at every range).
    assert lo < 0.7 * hi and abs(hi / minimum_energy_5000["apogee_km"] - 1) < 0.02


def test_cli_trajectory_depressed_icbm(capsys, minimum_energy_5000):
    A = round(0.75 * minimum_energy_5000["apogee_km"])
    assert main(["trajectory", *LAUNCH, "--range-km", "5000", "--apogee-km", str(A), "--depressed", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert abs(s["range_km"] / 5000 - 1) < 0.01 and abs(s["apogee_km"] / A - 1) < 0.02
    # The command of the report: one line, exit 2, naming the flag's key and an interval low < high.
    assert main(["trajectory", *LAUNCH, "--range-km", "5000", "--apogee-km", "1000", "--depressed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gsomia-sim trajectory: --apogee-km: got 1000.0;")
    lo, hi = _interval(err[0])
    assert lo < hi < 1000


def test_scenario_depressed_beyond_reach_says_so_plainly(tmp_path, capsys):
    """At 12,000 km the pitch-and-hold boost climbs above the minimum-energy apogee: no depressed flight."""
    from test_scenario import VALID, sub

    text = VALID
    for old, new in (("launch_lat_deg = 39.25", f"launch_lat_deg = {LAT}"),
                     ("launch_lon_deg = 125.86", f"launch_lon_deg = {LON}"),
                     ("range_km = 950.0", "range_km = 12000.0"),
                     ('shape = "lofted"\napogee_km = 4475.0', 'shape = "depressed"\napogee_km = 1000.0')):
        text = sub(old, new)(text)
    path = tmp_path / "hs15_depressed.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    assert f"{path}: threat[0].shape: got 'depressed';" in line
    assert "cannot fly a depressed trajectory to 12000 km" in line and not re.search(r"\[\d+, \d+\]", line)
    # It says why (the lowest apogee it can fly there against the minimum-energy one) ...
    floor, a_me = (float(x) for x in re.search(r"at least about (\d+) km .*? minimum-energy apogee of about (\d+) km", line).groups())
    assert floor > a_me
    # ... and how far it can fly depressed: beyond 5000 km (flown above), short of 12,000 km.
    reach = float(re.search(r"flies depressed only to about (\d+) km", line).group(1))
    assert 5000 < reach < 12000
    assert "'minimum-energy' and 'lofted' reach this range" in line
    # One reach per site and bearing, whatever the request (a trial saw 3,167 and 3,279 km for one site).
    assert main(["trajectory", *LAUNCH, "--range-km", "11500", "--apogee-km", "1000", "--depressed"]) == 2
    again = float(re.search(r"flies depressed only to about (\d+) km", capsys.readouterr().err).group(1))
    assert again == reach


def test_depressed_floor_as_printed_is_accepted(capsys):
    """The floor is interpolated on the scan grid and printed rounded: a request just under the printed
    value is tried, not refused (new-user trial: "[1080, 1081] km" refused 1080)."""
    assert main(["trajectory", *LAUNCH, "--range-km", "5000", "--apogee-km", "100", "--depressed"]) == 2
    lo, _ = _interval(capsys.readouterr().err)
    A = lo - 0.49
    assert main(["trajectory", *LAUNCH, "--range-km", "5000", "--apogee-km", f"{A}", "--depressed", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["apogee_km"] / A - 1) < 0.005 and abs(out["range_km"] / 5000 - 1) < 0.002


def test_lofted_refuses_an_apogee_below_the_minimum_energy_one(capsys):
    """Hwasong-14 at 8000 km: the coarse grid put the minimum-energy apogee at 682 km against 873 km
    solved, so 'lofted' took 700 km, a depressed flight that --depressed refused (new-user trial)."""
    me = flight_summary("icbm-hwasong14", LAT, LON, bearing_deg=BEARING, range_km=8000.0)
    argv = ["trajectory", "--missile", "icbm-hwasong14", "--launch", f"{LAT:g},{LON:g}", "--bearing", f"{BEARING:g}",
            "--range-km", "8000"]
    assert main(argv + ["--apogee-km", f"{0.8 * me['apogee_km']:.0f}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gsomia-sim trajectory: --apogee-km:") and "depressed" in err[0]
    lo, hi = _interval(err[0])
    assert abs(lo - me["apogee_km"]) <= 1.0 and hi > lo
    assert main(argv + ["--apogee-km", f"{1.1 * me['apogee_km']:.0f}", "--json"]) == 0


@pytest.mark.parametrize("apogee", ["50", "100000"])
def test_lofted_interval_is_the_same_whichever_side_the_request_misses(capsys, apogee):
    """Third new-user trial: Hwasong-15 at 950 km quoted [225, 6086] km below and [429, 6086] km above
    (the coarse grid's minimum-energy apogee), and 230-428 km flew. Both now quote the solved one."""
    me = flight_summary(KEY, LAT, LON, bearing_deg=BEARING, range_km=950.0)
    assert main(["trajectory", *LAUNCH, "--range-km", "950", "--apogee-km", apogee]) == 2
    lo, hi = _interval(capsys.readouterr().err)
    assert abs(lo - me["apogee_km"]) <= 1.0 and hi > 10 * lo
