"""Scenario files: a valid file loads; each malformed input is reported at its exact key path."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from sim.cli import main
from sim.errors import InputError
from sim.scenario import load_scenario

VALID = """\
schema_version = 1

[scenario]
name = "t"
description = "test vignette"
event_utc = 2017-11-28T18:18:00Z
seed = 7
trials = 3

[[threat]]
name = "A"
missile = "icbm-hwasong15"
launch_lat_deg = 39.25
launch_lon_deg = 125.86
bearing_deg = 76.0
range_km = 950.0
shape = "lofted"
apogee_km = 4475.0
[threat.dispersion]
launch_time_s = 1.0
azimuth_deg = 0.1

[[sensor]]
catalog = "us-tpy2-shariki"

[[sensor]]
catalog = "jp-fps5-sado"
latency_s = 1.0

[[sensor]]
catalog = "kr-greenpine-b-1"

[sharing]
policies = ["isolated", "bilateral", "trilateral", "direct"]
link_latency_s = 2.0
[[sharing.policy]]
name = "direct"
[[sharing.policy.link]]
from = "JP"
to = "KR"
latency_s = 1.0

[tracker]
filter = "ekf"
confirm_m = 3
confirm_n = 5

[metrics]
ipp_threshold_km = 50.0
"""


def sub(old: str, new: str):
    """A mutation replacing the first occurrence of ``old`` (which must exist) by ``new``."""

    def mutate(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return mutate


# (case id, mutation of VALID, exact key path expected in the error)
MALFORMED = [
    ("unknown-top-section", sub("[metrics]", "[metric]"), "metric"),
    ("missing-scenario", sub("[scenario]", "[scenarioX]"), "scenario"),
    ("unknown-scenario-key", sub('seed = 7', 'sed = 7'), "scenario.sed"),
    ("missing-seed", sub("seed = 7\n", ""), "scenario.seed"),
    ("negative-seed", sub("seed = 7", "seed = -1"), "scenario.seed"),
    ("zero-trials", sub("trials = 3", "trials = 0"), "scenario.trials"),
    ("trials-wrong-type", sub("trials = 3", 'trials = "3"'), "scenario.trials"),
    ("event-not-utc", sub("2017-11-28T18:18:00Z", "2017-11-28T18:18:00"), "scenario.event_utc"),
    ("name-wrong-type", sub('name = "t"', "name = 5"), "scenario.name"),
    ("unknown-missile", sub('"icbm-hwasong15"', '"icbm-hwasong99"'), "threat[0].missile"),
    ("missing-missile", sub('missile = "icbm-hwasong15"\n', ""), "threat[0].missile"),
    ("launch-lat-range", sub("launch_lat_deg = 39.25", "launch_lat_deg = 91.0"), "threat[0].launch_lat_deg"),
    ("launch-lon-range", sub("launch_lon_deg = 125.86", "launch_lon_deg = 181.0"), "threat[0].launch_lon_deg"),
    ("range-negative", sub("range_km = 950.0", "range_km = -5.0"), "threat[0].range_km"),
    ("range-missing", sub("range_km = 950.0\n", ""), "threat[0].range_km"),
    ("unknown-shape", sub('shape = "lofted"', 'shape = "loftd"'), "threat[0].shape"),
    ("apogee-missing", sub("apogee_km = 4475.0\n", ""), "threat[0].apogee_km"),
    ("negative-dispersion", sub("azimuth_deg = 0.1", "azimuth_deg = -0.1"), "threat[0].dispersion.azimuth_deg"),
    ("unknown-dispersion-key", sub("launch_time_s = 1.0", "launch_time = 1.0"), "threat[0].dispersion.launch_time"),
    ("pullup-non-srbm", sub('shape = "lofted"', 'shape = "lofted"\nmaneuver = "pull-up"'), "threat[0].maneuver"),
    ("unknown-catalog", sub('"us-tpy2-shariki"', '"us-tpy2-sharikii"'), "sensor[0].catalog"),
    ("missing-catalog", sub('catalog = "us-tpy2-shariki"', 'name = "x"'), "sensor[0].catalog"),
    ("sensor-lat-range", sub('catalog = "kr-greenpine-b-1"', 'catalog = "kr-greenpine-b-1"\nlat_deg = 95.0'),
     "sensor[2].lat_deg"),
    ("sensor-lon-range", sub('catalog = "kr-greenpine-b-1"', 'catalog = "kr-greenpine-b-1"\nlon_deg = -200.0'),
     "sensor[2].lon_deg"),
    ("negative-sensor-latency", sub("latency_s = 1.0\n\n[[sensor]]", "latency_s = -1.0\n\n[[sensor]]"),
     "sensor[1].latency_s"),
    ("unknown-sensor-key", sub('catalog = "kr-greenpine-b-1"', 'catalog = "kr-greenpine-b-1"\nlatitude = 36.0'),
     "sensor[2].latitude"),
    ("duplicate-sensor-name", sub('catalog = "kr-greenpine-b-1"', 'catalog = "kr-greenpine-b-1"\nname = "jp-fps5-sado"'),
     "sensor[2].name"),
    ("unknown-policy", sub('"trilateral", "direct"', '"trilateral", "gsomia"'), "sharing.policies[3]"),
    ("unknown-nation", sub('to = "KR"', 'to = "CN"'), "sharing.policy[0].link[0].to"),
    ("negative-link-latency", sub("latency_s = 1.0\n\n[tracker]", "latency_s = -3.0\n\n[tracker]"),
     "sharing.policy[0].link[0].latency_s"),
    ("negative-hub-latency", sub("link_latency_s = 2.0", "link_latency_s = -2.0"), "sharing.link_latency_s"),
    ("unknown-filter", sub('filter = "ekf"', 'filter = "pf"'), "tracker.filter"),
    ("unknown-association", sub('filter = "ekf"', 'filter = "ekf"\nassociation = "mht"'), "tracker.association"),
    ("m-greater-than-n", sub("confirm_m = 3", "confirm_m = 6"), "tracker.confirm_m"),
    ("metrics-threshold-zero", sub("ipp_threshold_km = 50.0", "ipp_threshold_km = 0.0"), "metrics.ipp_threshold_km"),
    ("threat-not-array", sub("[[threat]]", "[threat]"), "threat"),
    ("bad-schema-version", sub("schema_version = 1", "schema_version = 2"), "schema_version"),
    # new-user trial: a 1e-9 s step passed validation and asked the run for a 62 TiB array
    ("grid-step-too-fine", sub("trials = 3", "trials = 3\ndt_s = 1e-9"), "scenario.dt_s"),
    # new-user trial: a blank threat name ran and wrote 'ipp_error_.png'
    ("blank-threat-name", sub('name = "A"', 'name = ""'), "threat[0].name"),
    ("blank-scenario-name", sub('name = "t"', 'name = "  "'), "scenario.name"),
]


@pytest.mark.parametrize("case, mutate, key_path", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_names_key_path(tmp_path, capsys, case, mutate, key_path):
    path = tmp_path / f"{case}.toml"
    path.write_text(mutate(VALID), encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_scenario(path)
    paths = [p.key_path for p in err.value.problems]
    assert key_path in paths, f"{key_path!r} not among {paths}"
    for problem in err.value.problems:
        assert str(path) in str(problem)
    # The CLI prints one line per problem naming file and key path, and exits 2 without a traceback.
    assert main(["validate", str(path)]) == 2
    out, errtext = capsys.readouterr()
    assert out == ""
    lines = errtext.strip().splitlines()
    assert len(lines) == len(err.value.problems)
    assert any(f"{path}: {key_path}:" in line for line in lines)
    assert "Traceback" not in errtext


def test_bad_shape_is_one_problem_not_also_an_apogee_one(tmp_path):
    # The apogee is judged against the shape given, not against the default an unknown shape falls back to.
    path = tmp_path / "s.toml"
    path.write_text(sub('shape = "lofted"', 'shape = "loftd"')(VALID), encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert [p.key_path for p in err.value.problems] == ["threat[0].shape"]


def test_at_least_25_malformed_cases():
    assert len(MALFORMED) >= 25


def test_unknown_key_suggests_closest(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(sub("seed = 7", "sed = 7")(VALID), encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert "did you mean 'seed'" in str(err.value)


def test_every_problem_reported_not_only_first(tmp_path):
    text = sub("trials = 3", "trials = 0")(sub('filter = "ekf"', 'filter = "pf"')(VALID))
    text = sub("launch_lat_deg = 39.25", "launch_lat_deg = -99.0")(text)
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_scenario(path)
    paths = {p.key_path for p in err.value.problems}
    assert {"scenario.trials", "tracker.filter", "threat[0].launch_lat_deg"} <= paths


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"[scenario\nname = 1", "TOML"),
        (b"name = \xff\xfe", "UTF-8"),
    ],
    ids=["empty", "blank", "not-toml", "not-utf8"],
)
def test_file_level_problems(tmp_path, capsys, content, words):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert words in str(err.value)
    assert main(["validate", str(path)]) == 2
    errtext = capsys.readouterr().err
    assert len(errtext.strip().splitlines()) == 1 and str(path) in errtext


def test_byte_order_mark_is_not_content(tmp_path, capsys):
    """Windows editors may save UTF-8 with a byte-order mark; it is read as the text after it
    (new-user trial: rejected as 'not TOML ... line 1, column 1')."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode("utf-8"))
    assert load_scenario(path).info.seed == 7
    assert main(["validate", str(path)]) == 0


def test_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_valid_example_loads_in_si_units(tmp_path, capsys):
    path = tmp_path / "ok.toml"
    path.write_text(VALID, encoding="utf-8")
    sc = load_scenario(path)
    assert sc.info.trials == 3 and sc.info.seed == 7
    (threat,) = sc.threats
    assert threat.missile == "icbm-hwasong15"
    assert math.isclose(threat.launch_lat, math.radians(39.25))
    assert math.isclose(threat.range, 950e3)
    assert math.isclose(threat.apogee, 4475e3)
    assert math.isclose(threat.dispersion.azimuth, math.radians(0.1))
    assert [s.catalog for s in sc.sensors] == ["us-tpy2-shariki", "jp-fps5-sado", "kr-greenpine-b-1"]
    assert dict(sc.sensors[1].overrides) == {"latency_s": 1.0}
    assert sc.sharing.policies == ("isolated", "bilateral", "trilateral", "direct")
    assert sc.sharing.custom[0].links[0].dest == "KR"
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "ok"


def test_shipped_scenarios_validate(scenarios_dir):
    files = sorted(scenarios_dir.glob("*.toml"))
    assert files, "no scenario files shipped"
    for f in files:
        load_scenario(f)


def test_console_script_one_line_exit_2(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(sub("trials = 3", "trials = -4")(VALID), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"{path}: scenario.trials: got -4; out of range; an integer in [1, 1,000,000]"
    ]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("old, new, line", [
    ("event_utc = 2017-11-28T18:18:00Z", "event_utc = 2017-11-28T18:18:00",
     "scenario.event_utc: got 2017-11-28T18:18:00; no time zone; a UTC date-time such as 2017-11-28T18:18:00Z"),
    ("seed = 7", "seed = true", "scenario.seed: got true; wrong type; an integer in [0, "),
    ("[sharing]", "[sharin]\nfoo = 1\n[sharing]",
     "sharin: got a table with keys foo; unknown key; did you mean 'sharing'?"),
], ids=["datetime-without-zone", "bool-for-int", "misspelled-table"])
def test_bad_values_shown_as_written_in_toml(tmp_path, old, new, line):
    """The value in an error line reads as TOML (new-user trial: it was datetime.datetime(...), True, a dict)."""
    path = tmp_path / "s.toml"
    path.write_text(sub(old, new)(VALID), encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert any(p.startswith(f"{path}: {line}") for p in str(err.value).splitlines()), str(err.value)


@pytest.mark.parametrize("command", ["sensors", "validate"])
def test_closed_output_pipe_stops_quietly(scenarios_dir, command):
    """``gsomia-sim ... | head``: the reader leaves early; no traceback, exit 1 (not a user error)."""
    args = ["--json"] if command == "sensors" else [str(p) for p in sorted(scenarios_dir.glob("*.toml"))]
    proc = subprocess.Popen([sys.executable, "-m", "sim.cli", command, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize("sub_command", ["validate", "run", "trajectory", "sensors", "view", "bench"])
def test_every_subcommand_has_help(capsys, sub_command):
    with pytest.raises(SystemExit) as ex:
        main([sub_command, "--help"])
    assert ex.value.code == 0
    assert "usage: gsomia-sim " + sub_command in capsys.readouterr().out


def _kn23_minimum_energy(text: str) -> str:
    """VALID's threat as a KN-23 on a minimum-energy flight (the schema stays valid)."""
    text = sub('"icbm-hwasong15"', '"srbm-kn23"')(text)
    return sub('shape = "lofted"\napogee_km = 4475.0\n', 'shape = "minimum-energy"\n')(text)


def test_validate_rejects_a_flight_the_missile_cannot_fly(tmp_path, capsys):
    text = sub("range_km = 950.0", "range_km = 5000.0")(_kn23_minimum_energy(VALID))
    path = tmp_path / "far.toml"
    path.write_text(text, encoding="utf-8")
    load_scenario(path)  # the schema is fine ...
    assert main(["validate", str(path)]) == 2  # ... but a KN-23 cannot fly 5,000 km
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: threat[0].range_km: got 5000.0;")


@pytest.mark.parametrize("bearing", ["500", "-1"])
def test_trajectory_bearing_outside_0_360_is_one_line_exit_2(capsys, bearing):
    with pytest.raises(SystemExit) as ex:
        main(["trajectory", "--missile", "icbm-hwasong15", "--launch", "39.0,125.5", "--bearing", bearing,
              "--range-km", "900", "--apogee-km", "1000"])
    assert ex.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--bearing" in lines[0] and "[0, 360]" in lines[0]
    assert lines[0].startswith("gsomia-sim trajectory: error:")  # the sub-command's prefix, as argparse's own


def test_validate_names_the_target_point_not_a_range_key_the_file_lacks(tmp_path, capsys):
    text = sub("bearing_deg = 76.0\nrange_km = 950.0", "target_lat_deg = -33.9\ntarget_lon_deg = 151.2")(
        _kn23_minimum_energy(VALID))
    path = tmp_path / "sydney.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "threat[0].target_lat_deg/target_lon_deg" in lines[0] and "range_km" not in lines[0]


@pytest.mark.parametrize("argv_tail, flag", [
    (["--target", "39.0,125.5", "--minimum-energy"], "--target"),  # the launch point itself: 0 km
    (["--bearing", "90", "--range-km", "2000", "--minimum-energy"], "--range-km"),
    (["--bearing", "90", "--range-km", "500", "--apogee-km", "5000"], "--apogee-km"),
])
def test_trajectory_errors_name_the_flags_typed(capsys, argv_tail, flag):
    assert main(["trajectory", "--missile", "srbm-kn23", "--launch", "39.0,125.5"] + argv_tail) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gsomia-sim trajectory: {flag}: got"), lines


def test_trajectory_takes_negative_coordinates_after_a_space(capsys):
    """argparse reads '-39,-55' as an option unless attached (new-user trial: 'expected one argument')."""
    assert main(["trajectory", "--missile", "srbm-kn23", "--launch", "-33.0,-70.5", "--target", "-34.5,-68.0",
                 "--minimum-energy", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["impact_lat_deg"] + 34.5) < 0.2 and abs(out["impact_lon_deg"] + 68.0) < 0.2


@pytest.mark.parametrize("argv, flag, allowed", [
    (["run", "s.toml", "--trials", "abc"], "--trials", "[1, 1,000,000]"),
    (["run", "s.toml", "--seed", "1.5"], "--seed", "[0, 9223372036854775807]"),
    (["run", "s.toml", "--workers", "two"], "--workers", "[1, 64]"),
    (["run", "s.toml", "--chunk-trials", "2.5"], "--chunk-trials", "[1, 1,000,000]"),
    (["view", "s.toml", "--at", "noon"], "--at", "a scenario time"),
    (["trajectory", "--missile", "srbm-kn23", "--launch", "39.0,125.5", "--bearing", "x", "--range-km", "500",
      "--minimum-energy"], "--bearing", "[0, 360]"),
    (["trajectory", "--missile", "srbm-kn23", "--launch", "39.0,125.5", "--bearing", "90", "--range-km", "500",
      "--apogee-km", "-5"], "--apogee-km", "> 0"),
    (["trajectory", "--missile", "srbm-kn23", "--launch", "39.0,125.5", "--bearing", "90", "--range-km", "inf",
      "--minimum-energy"], "--range-km", "> 0"),
], ids=["trials-word", "seed-fraction", "workers-word", "chunk-fraction", "at-word", "bearing-word",
        "negative-apogee", "infinite-range"])
def test_cli_values_that_do_not_parse_say_what_is_allowed(capsys, argv, flag, allowed):
    """argparse's own 'invalid int value' names neither the range nor the unit (new-user trial)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and allowed in lines[0] and "got" in lines[0], lines
    assert "apogee_km" not in lines[0]  # the flag the user typed, not the scenario key


SECOND_THREAT = """
[[threat]]
name = "{name}"
missile = "srbm-kn23"
launch_lat_deg = 39.0
launch_lon_deg = 125.5
bearing_deg = 76.0
range_km = 600.0
shape = "minimum-energy"
"""


@pytest.mark.parametrize("first, second, words", [
    ("A/B", "A?B", "names the same figure files as threat[0] 'A/B' ('a-b')"),
    ("A", "???", "a name with at least one letter or digit"),
    ("A", "x" * 5000, "5,000 characters (5,000 bytes as a file name); a name of at most 64 characters"),
    ("A", "\U0001D400" * 60, "60 characters (240 bytes as a file name); a name of at most 64 characters and 200"),
    ("A", "a\\nb", "contains U+000A; a name without control, format or line-break characters"),
    ("A", "\\u202eHS", "contains U+202E"),
    ("hs-15", "HS-15", "not only in case, spaces or punctuation"),
], ids=["same-file-name", "no-letter-or-digit", "too-long", "too-many-bytes", "newline", "right-to-left-override",
        "case-only"])
def test_threat_names_must_make_distinct_file_names(tmp_path, first, second, words):
    """Figures are named after threats (new-user trial: 'A/B' and 'A?B' overwrote each other's figures
    silently; a 5,000-character name died with 'File name too long' after the run)."""
    text = sub('name = "A"', f'name = "{first}"')(VALID)
    text = sub("[[sensor]]", SECOND_THREAT.format(name=second) + "\n[[sensor]]")(text)
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_scenario(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: threat[1].name: got ") and words in lines[0], lines
    assert len(lines[0]) < 300  # the long name is shown cut short


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:30:00+01:00"])
def test_event_time_outside_utc_years_is_one_line(tmp_path, when):
    """A legal TOML date-time whose UTC form leaves years 1-9999 (new-user trial: OverflowError traceback)."""
    path = tmp_path / "s.toml"
    path.write_text(sub("2017-11-28T18:18:00Z", when)(VALID), encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert str(err.value).splitlines() == [
        f"{path}: scenario.event_utc: got {when}; out of range in UTC; a UTC date-time such as "
        "2017-11-28T18:18:00Z within years 1-9999 once converted to UTC"]


def test_minimum_energy_too_short_says_how_short_it_goes(capsys):
    """New-user trial: 10 km with --minimum-energy listed lofted apogees ("about [183, 461] km"), which
    say nothing about a minimum-energy flight; the lofted flight to 10 km exists and is the way out."""
    argv = ["trajectory", "--missile", "srbm-kn23", "--launch", "39.0,125.5", "--bearing", "90", "--range-km", "10"]
    assert main(argv + ["--minimum-energy"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gsomia-sim trajectory: --range-km: got 10"), lines
    shortest = float(lines[0].split("no shorter than about ")[1].split(" km")[0])
    assert 10 < shortest < 60 and "apogees" not in lines[0] and "a lofted flight reaches shorter ranges" in lines[0]
    assert main(argv + ["--apogee-km", "40", "--json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["range_km"] - 10) < 0.1
