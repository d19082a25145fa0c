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
    ("miss-deletion-probability-above-half", sub("confirm_m = 3", "confirm_m = 3\nmiss_deletion_probability = 0.9"),
     "tracker.miss_deletion_probability"),
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
        f"gsomia-sim validate: {path}: scenario.trials: got -4; out of range; an integer in [1, 1,000,000]"
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
    assert len(lines) == 1 and lines[0].startswith(f"gsomia-sim validate: {path}: threat[0].range_km: got 5000.0;")


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


# ------------------------------------------------------------------------------------------------
# --set KEY=VALUE (issue 23): an override is the file with that value written in it
# ------------------------------------------------------------------------------------------------

def _same_settings(a, b) -> None:
    """Two scenarios equal in every setting (their path, file hash and override record aside)."""
    import dataclasses

    strip = dict(path="", file_sha256="", overrides=())
    assert dataclasses.replace(a, **strip) == dataclasses.replace(b, **strip)


# (override text, the same change written into the file)
SET_AS_FILE = [
    ("sharing.link_latency_s=10", sub("link_latency_s = 2.0", "link_latency_s = 10")),
    ("sensor[1].range_max_km=2500", sub("latency_s = 1.0\n\n[[sensor]]", "latency_s = 1.0\nrange_max_km = 2500\n\n[[sensor]]")),
    ("sensor[2].latency_s=0.5", sub('catalog = "kr-greenpine-b-1"', 'catalog = "kr-greenpine-b-1"\nlatency_s = 0.5')),
    ("tracker.filter=imm", sub('filter = "ekf"', 'filter = "imm"')),
    ('tracker.filter="ukf"', sub('filter = "ekf"', 'filter = "ukf"')),
    ("threat[0].dispersion.azimuth_deg=0.5", sub("azimuth_deg = 0.1", "azimuth_deg = 0.5")),
    ("sharing.policy[0].link[0].latency_s=7.5", sub("latency_s = 1.0\n\n[tracker]", "latency_s = 7.5\n\n[tracker]")),
    ('sharing.policies=["isolated", "direct"]', sub('policies = ["isolated", "bilateral", "trilateral", "direct"]',
                                                   'policies = ["isolated", "direct"]')),
    ("scenario.event_utc=2017-11-28T19:00:00Z", sub("2017-11-28T18:18:00Z", "2017-11-28T19:00:00Z")),
    ("threat[0].stage_object=false", sub('shape = "lofted"', 'shape = "lofted"\nstage_object = false')),
    ("metrics.gospa_cutoff_km=20", sub("ipp_threshold_km = 50.0", "ipp_threshold_km = 50.0\ngospa_cutoff_km = 20")),
]


@pytest.mark.parametrize("text, mutate", SET_AS_FILE, ids=[s[0] for s in SET_AS_FILE])
def test_set_equals_the_value_written_in_the_file(tmp_path, text, mutate):
    base = tmp_path / "base.toml"
    base.write_text(VALID)
    edited = tmp_path / "edited.toml"
    edited.write_text(mutate(VALID))
    with_set = load_scenario(base, [text])
    _same_settings(with_set, load_scenario(edited))
    assert with_set != load_scenario(base)  # the override changed something
    # The record (metrics.json's "overrides") is TOML text that loads to the same scenario.
    assert len(with_set.overrides) == 1 and with_set.overrides[0].startswith(text.partition("=")[0] + "=")
    assert load_scenario(base, with_set.overrides) == with_set


def test_set_a_table_the_file_lacks_and_the_python_mapping_form(tmp_path):
    import hashlib

    path = tmp_path / "s.toml"
    path.write_text(VALID.replace('[tracker]\nfilter = "ekf"\nconfirm_m = 3\nconfirm_n = 5\n', ""))
    plain = load_scenario(path)
    assert plain.tracker.filter == "imm"  # the default without [tracker]
    sc = load_scenario(path, ["tracker.filter=ekf", "tracker.confirm_m=2"])
    assert (sc.tracker.filter, sc.tracker.confirm_m, sc.tracker.confirm_n) == ("ekf", 2, 5)
    assert sc.overrides == ('tracker.filter="ekf"', "tracker.confirm_m=2")
    same = load_scenario(path, {"tracker.filter": "ekf", "tracker.confirm_m": 2})
    assert same == sc  # the mapping form and the texts give one scenario, override record included
    assert sc.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert plain.overrides == ()


def test_set_sensor_field_reaches_the_radar(tmp_path):
    from sim.engine import build_radars

    path = tmp_path / "s.toml"
    path.write_text(VALID)
    radars = build_radars(load_scenario(path, ["sensor[1].range_max_km=2500", "sensor[1].latency_s=3"]))
    base = build_radars(load_scenario(path))
    assert radars[1].range_max == 2_500_000.0 and radars[1].latency == 3.0
    assert base[1].range_max != 2_500_000.0 and base[1].latency == 1.0  # the file's own value
    assert [r.range_max for r in radars[::2]] == [r.range_max for r in base[::2]]  # the other radars unchanged


# (override, text the one error line must hold)
SET_ERRORS = [
    ("tracker.filter=EKF", "--set tracker.filter: got 'EKF'; unknown name; did you mean 'ekf'? names are case-sensitive"),
    ("tracker.filtr=ekf", "--set tracker.filtr: got 'ekf'; unknown key; did you mean 'filter'?"),
    ("trackr.filter=ekf", "--set trackr.filter: got 'ekf'; unknown section 'trackr'; did you mean 'tracker'?"),
    ("sensor[3].range_max_km=1000", "--set sensor[3].range_max_km: got 1000; sensor[3] does not exist; the file has 3 "
                                    "(sensor[0] to sensor[2], counted from zero)"),
    ("sensor[1].range_max_km=far", "--set sensor[1].range_max_km: got 'far'; allowed: instrumented range, km"),
    ("sharing.link_latency_s=-1", "--set sharing.link_latency_s: got -1.0; out of range; a number in [0, 3600]"),
    ("sharing.link_latency_s", "--set: got 'sharing.link_latency_s'; KEY=VALUE with a key path"),
    ("=3", "--set: got '=3'; KEY=VALUE"),
    ("sensor.latency_s=1", "--set sensor.latency_s: got 1; sensor is an array; pick one element, e.g. sensor[0].latency_s"),
    ("scenario.trials=0", "--set scenario.trials: got 0; out of range"),
    ("sharing.policies=[\"isolated\", \"trilat\"]",
     "--set sharing.policies[1]: got 'trilat'; unknown policy; did you mean 'trilateral'?"),
    ("threat[0].range_km=19000", "--set threat[0].range_km: got 19000.0;"),
]


@pytest.mark.parametrize("text, line", SET_ERRORS, ids=[s[0] for s in SET_ERRORS])
def test_bad_set_is_one_line_naming_the_set_exit_2(tmp_path, capsys, text, line):
    path = tmp_path / "s.toml"
    path.write_text(VALID)
    assert main(["validate", str(path), "--set", text]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gsomia-sim validate: " + line), lines


def test_set_problems_name_the_set_file_problems_name_the_file(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(sub("confirm_m = 3", "confirm_m = 9")(VALID))  # a problem in the file itself
    assert main(["validate", str(path), "--set", "tracker.filter=pf"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert sorted(lines) == sorted([
        f"gsomia-sim validate: {path}: tracker.confirm_m: got 9; must be <= confirm_n (5) for M-of-N confirmation",
        "gsomia-sim validate: --set tracker.filter: got 'pf'; unknown name; allowed: ekf, ukf, imm"])


def test_wrong_case_in_the_file_is_refused_with_the_name_suggested(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(sub('filter = "ekf"', 'filter = "EKF"')(VALID))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"gsomia-sim validate: {path}: tracker.filter: got 'EKF'; unknown name; did you mean 'ekf'? names are "
        "case-sensitive; allowed: ekf, ukf, imm")


def test_run_policies_typo_gets_did_you_mean(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(VALID)
    assert main(["run", str(path), "--policies", "trilat", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (
        "gsomia-sim run: --policies: got 'trilat'; unknown policy; did you mean 'trilateral'? allowed: "
        "isolated, bilateral, trilateral, direct")


def test_trajectory_unknown_missile_gets_did_you_mean(capsys):
    assert main(["trajectory", "--missile", "hwasong15", "--launch", "39.25,125.86", "--bearing", "76",
                 "--range-km", "950", "--apogee-km", "4475"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "gsomia-sim trajectory: --missile: got 'hwasong15'; unknown name; did you mean 'icbm-hwasong15'? allowed: "
        "srbm-kn23, mrbm-nodong, irbm-hwasong12, icbm-hwasong14, icbm-hwasong15, icbm-hwasong17, icbm-hwasong18, "
        "icbm-hwasong19, slbm-pukguksong3"]


def test_validate_lines_carry_the_prefix_of_every_other_command(tmp_path, capsys):
    """validate's error lines start 'gsomia-sim validate: ' as run's start 'gsomia-sim run: ' (new-user trial)."""
    path = tmp_path / "s.toml"
    path.write_text(VALID)
    bad = ["--set", "tracker.filter=pf"]
    assert main(["validate", str(path)] + bad) == 2
    validate = capsys.readouterr().err.strip()
    assert main(["run", str(path), "--out", str(tmp_path / "out")] + bad) == 2
    run = capsys.readouterr().err.strip()
    assert validate.removeprefix("gsomia-sim validate: ") == run.removeprefix("gsomia-sim run: ") == (
        "--set tracker.filter: got 'pf'; unknown name; allowed: ekf, ukf, imm")

def test_trajectory_csv_is_the_flight_in_ecef_geodetic_speed_and_phase(tmp_path, capsys):
    """The CSV's geodetic columns are pymap3d's of its ECEF ones, its speed the velocity's norm, its apogee,
    burnout and flight time those the summary prints (solved apart, by sim.shaping)."""
    import csv

    import numpy as np
    import pymap3d

    path = tmp_path / "hs15.csv"
    assert main(["trajectory", "--missile", "icbm-hwasong15", "--launch", "39.25,125.86", "--bearing", "76",
                 "--range-km", "950", "--apogee-km", "4475", "--json", "--csv", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hs15.csv"]  # no temporary file left
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["time_s", "x_m", "y_m", "z_m", "vx_mps", "vy_mps", "vz_mps", "lat_deg", "lon_deg",
                             "alt_km", "speed_mps", "phase"]
    t = np.array([float(r["time_s"]) for r in rows])
    X = np.array([[float(r[k]) for k in ("x_m", "y_m", "z_m", "vx_mps", "vy_mps", "vz_mps")] for r in rows])
    lat, lon, alt = pymap3d.ecef2geodetic(X[:, 0], X[:, 1], X[:, 2])
    np.testing.assert_allclose([float(r["lat_deg"]) for r in rows], lat, atol=1e-6)
    np.testing.assert_allclose([float(r["lon_deg"]) for r in rows], lon, atol=1e-6)
    np.testing.assert_allclose([float(r["alt_km"]) for r in rows], alt / 1e3, atol=1e-3)
    np.testing.assert_allclose([float(r["speed_mps"]) for r in rows], np.linalg.norm(X[:, 3:], axis=1), atol=1e-3)
    np.testing.assert_array_equal(np.diff(t), 1.0)
    assert t[0] == 0.0 and (float(rows[0]["lat_deg"]), float(rows[0]["lon_deg"])) == (39.25, 125.86)
    assert t[-1] <= summary["flight_time_s"] < t[-1] + 1.0
    # The truth sampler (Hermite between integrator steps) against the solver's own flight: 14 m apart measured
    # (2026-12-07), 3 ppm of the apogee; the 1 s grid itself costs under a metre there (vertical speed ~ 0).
    assert abs(max(alt) / 1e3 - summary["apogee_km"]) < 0.02
    phases = [r["phase"] for r in rows]
    n_boost = phases.count("boost")
    assert phases == ["boost"] * n_boost + ["midcourse"] * phases.count("midcourse") + ["re-entry"] * phases.count("re-entry")
    assert n_boost == int(np.floor(summary["burnout_time_s"])) + 1  # every step before burnout, t = 0 included
    assert phases.count("re-entry") > 0
    # re-entry: descending below 100 km (sim.truth.REENTRY_HEIGHT)
    first_reentry = phases.index("re-entry")
    assert alt[first_reentry] < 100e3 <= alt[first_reentry - 1]


def test_trajectory_csv_into_a_missing_folder_is_one_line(tmp_path, capsys):
    code = main(["trajectory", "--missile", "srbm-kn23", "--launch", "39.4,127.54", "--bearing", "80",
                 "--range-km", "400", "--minimum-energy", "--csv", str(tmp_path / "no" / "x.csv")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"gsomia-sim trajectory: --csv: got '{tmp_path / 'no' / 'x.csv'}'; a file in an existing folder"]


@pytest.mark.parametrize("command", ["run", "view"])
def test_set_on_run_and_view_is_validated_before_any_work(tmp_path, capsys, command):
    path = tmp_path / "s.toml"
    path.write_text(VALID)
    argv = [command, str(path), "--set", "sharing.link_latency_s=10", "--set", "sensor[2].range_max_km=-5"]
    assert main(argv + (["--out", str(tmp_path / "out")] if command == "run" else [])) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"gsomia-sim {command}: --set sensor[2].range_max_km: got -5; allowed: instrumented range, km, (0, 10000]"]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------ [sharing.pair_latency_s] (issue 23)

def test_pair_latency_table_in_the_file_and_by_set_give_the_same_scenario(tmp_path, capsys):
    from fusion.network import builtin_policy, nation_latency

    path = tmp_path / "s.toml"
    path.write_text(sub("[[sharing.policy]]", "[sharing.pair_latency_s]\nJP-KR = 10\n[[sharing.policy]]")(VALID))
    in_file = load_scenario(path)
    assert in_file.sharing.pair_latency == (("JP-KR", 10.0),)
    plain = tmp_path / "plain.toml"
    plain.write_text(VALID)
    by_set = load_scenario(plain, ["sharing.pair_latency_s.JP-KR=10"])
    assert by_set.sharing == in_file.sharing and by_set.overrides == ("sharing.pair_latency_s.JP-KR=10",)
    tri = builtin_policy("trilateral", by_set.sharing)
    assert (nation_latency(tri, "KR", "JP"), nation_latency(tri, "JP", "KR"), nation_latency(tri, "US", "JP"),
            nation_latency(tri, "KR", "US")) == (10.0, 10.0, 2.0, 2.0)
    # the custom policy keeps its own links: the pair latency is for the built-ins
    assert by_set.sharing.custom == load_scenario(plain).sharing.custom
    assert main(["validate", str(plain), "--set", "sharing.pair_latency_s.JP-KR=10",
                 "--set", "sharing.pair_latency_s.US-JP=2.5"]) == 0
    assert capsys.readouterr().out.strip() == "ok"


# (text in [sharing.pair_latency_s] or of a link, the one error line after "gsomia-sim validate: FILE: ")
PAIR_ERRORS = [
    ("JP-KR = -1", "sharing.pair_latency_s.JP-KR: got -1.0; out of range; a number in [0, 3600]"),
    ('JP-KR = "ten"', "sharing.pair_latency_s.JP-KR: got 'ten'; wrong type; a number in [0, 3600]"),
    ("JP-KR = inf", "sharing.pair_latency_s.JP-KR: got inf; must be a finite number"),
    ("KR-JP = 10", "sharing.pair_latency_s.KR-JP: got 10; unknown nation pair; did you mean 'JP-KR'? each pair is "
                   "written once, nations in the order US, JP, KR, and holds for both directions; allowed: US-JP, "
                   "US-KR, JP-KR"),
    ("jp-kr = 10", "sharing.pair_latency_s.jp-kr: got 10; unknown nation pair; did you mean 'JP-KR'? names are "
                   "case-sensitive; allowed: US-JP, US-KR, JP-KR"),
    ("JP-RU = 10", "sharing.pair_latency_s.JP-RU: got 10; unknown nation pair; did you mean 'JP-KR'? allowed: "
                   "US-JP, US-KR, JP-KR"),
    ("JP-KR = 3\nUS-KR = 1.5", "sharing.pair_latency_s.JP-KR: got 3.0; at least US-JP + US-KR = 2 + 1.5 = 3.5 s: "
                               "trilateral relays JP<->KR data through the US hub; a direct JP-KR link is a custom "
                               "policy ([[sharing.policy]])"),
]


@pytest.mark.parametrize("table, line", PAIR_ERRORS, ids=[p[0].split()[0] + p[0][-3:] for p in PAIR_ERRORS])
def test_bad_pair_latency_is_one_line_with_file_key_value_allowed(tmp_path, capsys, table, line):
    path = tmp_path / "s.toml"
    path.write_text(sub("[[sharing.policy]]", f"[sharing.pair_latency_s]\n{table}\n[[sharing.policy]]")(VALID))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"gsomia-sim validate: {path}: {line}"]


@pytest.mark.parametrize("text, line", [
    ("sharing.pair_latency_s.JP-KR=-1", "--set sharing.pair_latency_s.JP-KR: got -1.0; out of range; a number in "
                                        "[0, 3600]"),
    ("sharing.pair_latency_s.JP-KR=ten", "--set sharing.pair_latency_s.JP-KR: got 'ten'; wrong type; a number in "
                                         "[0, 3600]"),
    ("sharing.pair_latency_s.CN-KR=1", "--set sharing.pair_latency_s.CN-KR: got 1; unknown nation pair; did you "
                                       "mean 'US-KR'? allowed: US-JP, US-KR, JP-KR"),
    ("sharing.pair_latency_s.JP-KR=1", "--set sharing.pair_latency_s.JP-KR: got 1.0; at least US-JP + US-KR = 2 + 2 "
                                       "= 4 s: trilateral relays JP<->KR data through the US hub; a direct JP-KR link "
                                       "is a custom policy ([[sharing.policy]])"),
    ("sharing.pair_latency_s=10", "--set sharing.pair_latency_s: got 10; must be a table of nation pair = seconds, "
                                  "e.g. pair_latency_s = { JP-KR = 10 }"),
], ids=["negative", "not-a-number", "unknown-pair", "shorter-than-the-hops", "not-a-table"])
def test_bad_pair_latency_set_is_one_line_naming_the_set(tmp_path, capsys, text, line):
    path = tmp_path / "s.toml"
    path.write_text(VALID)
    assert main(["validate", str(path), "--set", text]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"gsomia-sim validate: {line}"]


def test_custom_link_relay_latency(tmp_path, capsys):
    path = tmp_path / "s.toml"
    hub = ('[[sharing.policy.link]]\nfrom = "KR"\nto = "US"\nlatency_s = 1.0\n[[sharing.policy.link]]\nfrom = "US"\n'
           'to = "JP"\nlatency_s = 1.0\nrelay = ["KR"]\nrelay_latency_s = 4.0\n[tracker]')
    path.write_text(sub("[tracker]", hub)(VALID))
    links = load_scenario(path).sharing.custom[0].links
    assert (links[2].relay, links[2].relay_latency, links[0].relay_latency) == (("KR",), 4.0, 0.0)
    path.write_text(sub("latency_s = 1.0\n\n[tracker]", "latency_s = 1.0\nrelay_latency_s = 2.0\n\n[tracker]")(VALID))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"gsomia-sim validate: {path}: sharing.policy[0].link[0].relay_latency_s: got 2.0; 0 on a link that relays "
        "nothing (relay = []): it delays relayed data only"]

