"""The ``gsomia-sim`` command: one entry point per task.

User errors (bad files, bad arguments, infeasible requests) print one line
each on standard error and exit with status 2, never with a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys

from sim import __version__
from sim.errors import GsomiaError, InputError

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 1  # the output pipe closed early (e.g. ``| head``); not a user error


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line and exit 2."""

    def error(self, message):  # noqa: D401 - argparse hook
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def _lat_lon(text: str) -> tuple[float, float]:
    """Parse ``LAT,LON`` in degrees for argparse."""
    try:
        lat_s, lon_s = text.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAT,LON in degrees such as 39.25,125.86, got {text!r}") from None
    if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 180.0:
        raise argparse.ArgumentTypeError(f"latitude must be in [-90, 90] and longitude in [-180, 180], got {text!r}")
    return lat, lon


def _value(convert, allowed: str):
    """argparse type: ``convert(text)`` (``int`` or ``float``); a value it rejects is reported with what is allowed."""

    def parse(text: str):
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}; allowed: {allowed}") from None

    return parse


def _cmd_validate(args) -> int:
    from sim.engine import build_radars, check_threats
    from sim.scenario import load_scenario

    failed = False
    for path in args.scenario:
        try:
            scenario = load_scenario(path, args.overrides)
            build_radars(scenario)
            check_threats(scenario)  # every flight must be one its missile class can fly
        except GsomiaError as e:
            failed = True
            for line in str(e).splitlines():  # the prefix main() gives every other command's errors
                print(f"gsomia-sim validate: {line}", file=sys.stderr)
            continue
        print(f"{path}: ok" if len(args.scenario) > 1 else "ok")
    return EXIT_USER_ERROR if failed else 0


def _cmd_trajectory(args) -> int:
    from sim.shaping import flight_summary, target_range_problem

    shape = "minimum-energy" if args.minimum_energy else ("depressed" if args.depressed else "lofted")
    flags = {"range_km": "--range-km", "bearing_deg": "--bearing", "apogee_km": "--apogee-km", "missile": "--missile",
             "launch_lat_deg": "--launch", "launch_lon_deg": "--launch", "shape": "--depressed"}
    try:
        summary = flight_summary(
            args.missile, args.launch[0], args.launch[1],
            bearing_deg=args.bearing, range_km=args.range_km,
            target_lat_deg=None if args.target is None else args.target[0],
            target_lon_deg=None if args.target is None else args.target[1],
            shape=shape, apogee_km=args.apogee_km,
        )
    except InputError as e:  # name the flags typed, not the scenario keys behind them (new-user trial)
        problems = []
        for p in e.problems:
            if args.target is not None:
                p = target_range_problem(p, f"{args.target[0]:g},{args.target[1]:g}", "--target", "--launch")
            problems.append(dataclasses.replace(p, key_path=flags.get(p.key_path, p.key_path)))
        raise InputError(problems) from None
    if args.csv is not None:
        _write_trajectory_csv(args, shape)
    if args.json:
        print(json.dumps(summary))
    else:
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"{key:<{width}}  {value:.3f}")
        if args.csv is not None:
            print(f"time series written to {args.csv}")
    return 0


def _write_trajectory_csv(args, shape: str) -> None:
    """``trajectory --csv FILE``: the fitted flight's time series (:func:`sim.truth.nominal_series_csv`), written
    through a temporary file and a rename."""
    from pathlib import Path

    from sim.config import ThreatConfig
    from sim.report import write_atomic
    from sim.truth import nominal_series_csv

    rad = math.radians
    threat = ThreatConfig(
        name="trajectory", missile=args.missile, launch_lat=rad(args.launch[0]), launch_lon=rad(args.launch[1]),
        bearing=None if args.bearing is None else rad(args.bearing),
        range=None if args.range_km is None else args.range_km * 1e3,
        target_lat=None if args.target is None else rad(args.target[0]),
        target_lon=None if args.target is None else rad(args.target[1]),
        shape=shape, apogee=None if args.apogee_km is None else args.apogee_km * 1e3)
    text = nominal_series_csv(threat)
    path = Path(args.csv)
    if path.is_dir():
        raise InputError.single("--csv", args.csv, "a file name, not a folder")
    if not path.resolve().parent.is_dir():
        raise InputError.single("--csv", args.csv, "a file in an existing folder")
    try:
        write_atomic(path, text.encode())
    except OSError as e:
        raise InputError.single("--csv", args.csv, f"cannot be written ({e.strerror}); a writable file") from None


def _cmd_sensors(args) -> int:
    from sensors.catalog import catalog_rows

    rows = catalog_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    # The columns an analyst compares at a glance; every field (faces, noise, sources) is in --json.
    # A narrow terminal gets the ones that fit without breaking names and numbers.
    console = Console()
    wide = console.width >= 150
    cols = (("name", "nation", "system", "band", "platform", "lat_deg", "lon_deg", "range_max_km", "fov",
             "scan_interval_s", "latency_s") if wide else
            ("name", "nation", "band", "range_max_km", "scan_interval_s", "latency_s"))
    table = Table(title="Notional sensor catalog (public open-source estimates; all fields: --json)")
    short = {"range_max_km": "range km", "scan_interval_s": "scan s", "latency_s": "latency s",
             "lat_deg": "lat", "lon_deg": "lon"}
    for c in cols:
        table.add_column(short.get(c, c), overflow="fold", no_wrap=c not in ("system", "fov"))
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in cols))
    console.print(table)
    console.print("Sources (estimates):")
    for row in rows:
        console.print(f"- {row['name']}: {row.get('source', '')}", highlight=False)
    return 0


def _cmd_run(args) -> int:
    import resource
    import time

    from sim.engine import build_radars, check_run_args, check_threats, resolve_policy_names, run_scenario
    from sim.progress import TrialProgress
    from sim.report import check_out_dir, output_names, print_tables, span_sentence, trials_text, write_outputs
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario, args.overrides)
    check_out_dir(args.out, output_names(scenario))  # before the run, not after minutes of work
    start = time.perf_counter()
    # Bad arguments fail here, before the progress display starts (one line, nothing else on stderr).
    trials = scenario.info.trials if args.trials is None else args.trials
    check_run_args(trials, scenario.info.seed if args.seed is None else args.seed, args.workers, args.chunk_trials)
    policies = resolve_policy_names(scenario, args.policies)
    build_radars(scenario)
    check_threats(scenario)  # solved once, cached for the run
    label = f"{scenario.info.name}: {', '.join(policies)} x US, JP, KR trackers"
    with TrialProgress(label, trials) as progress:
        run = run_scenario(scenario, trials=args.trials, seed=args.seed, policies=args.policies,
                           chunk_trials=args.chunk_trials, workers=args.workers, progress=progress)
    wall = time.perf_counter() - start
    doc = write_outputs(args.out, scenario, run)
    print_tables(doc)
    span = span_sentence(scenario)
    if span:
        print(span)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    child_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0  # 0 if no worker ran
    if args.workers > 1 and child_mib > 0:
        memory = f"peak memory {peak_mib:.0f} MiB here, {child_mib:.0f} MiB in the largest of {args.workers} workers"
    else:
        memory = f"peak memory {peak_mib:.0f} MiB"
    n_pol = len(run.policies)
    print(f"{trials_text(run.trials)} x {n_pol} {'policy' if n_pol == 1 else 'policies'} x 3 nations in {wall:.1f} s; "
          f"{memory}; outputs in {args.out}/ (metrics.json, report.md, *.png)")
    return 0


def _cmd_view(args) -> int:
    from viz.app import main as view_main

    return view_main(args)


def _cmd_bench(args) -> int:
    from benchmarks.report import main as bench_main

    return bench_main(args)


def _add_set(p) -> None:
    """``--set KEY=VALUE``, repeatable: a scenario setting overridden (:func:`sim.scenario.load_scenario`)."""
    p.add_argument("--set", action="append", dest="overrides", default=[], metavar="KEY=VALUE",
                   help="override a scenario setting, validated like the file; KEY is a key path as in the error "
                        "messages (sharing.pair_latency_s.JP-KR=10, sensor[3].range_max_km=2500, tracker.filter=ekf); "
                        "VALUE is a TOML value, or else a string; repeatable")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gsomia-sim`` command (subcommands and their options)."""
    from sim.scenario import DEFAULT_CHUNK_TRIALS, MAX_SEED, MAX_TRIALS, MAX_WORKERS

    parser = _Parser(prog="gsomia-sim",
                     description="Trilateral (US-Japan-ROK) ballistic-missile-defense sensor-fusion concept simulator.")
    parser.add_argument("--version", action="version", version=f"gsomia-sim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("validate", help="check scenario files; print ok or every problem found")
    p.add_argument("scenario", nargs="+", help="scenario TOML file(s)")
    _add_set(p)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("run", help="run a scenario: every policy for every nation, Monte Carlo, metrics and report")
    p.add_argument("scenario", help="scenario TOML file")
    _add_set(p)
    trials = _value(int, f"a whole number of trials in [1, {MAX_TRIALS:,}]")
    p.add_argument("--trials", type=trials, help="override [scenario].trials")
    p.add_argument("--seed", type=_value(int, f"a whole number in [0, {MAX_SEED}]"), help="override [scenario].seed")
    p.add_argument("--out", default="out", help="output directory (default: out)")
    p.add_argument("--policies", nargs="+", help="policies to run (default: [sharing].policies)")
    p.add_argument("--workers", type=_value(int, f"a whole number of processes in [1, {MAX_WORKERS}]"), default=1,
                   help="processes running chunks of trials side by side (default 1; same results for any value)")
    p.add_argument("--chunk-trials", type=trials, default=DEFAULT_CHUNK_TRIALS, metavar="N",
                   help=f"trials batched together (default {DEFAULT_CHUNK_TRIALS}); memory grows with it, "
                        "results do not change")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("trajectory", help="fit a flight of a missile class to a range and apogee; print it")
    p.add_argument("--missile", required=True, help="missile class, e.g. icbm-hwasong15")
    p.add_argument("--launch", required=True, type=_lat_lon, metavar="LAT,LON", help="launch point, degrees")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--bearing", type=_value(float, "degrees from north in [0, 360]"), metavar="DEG",
                       help="launch bearing, degrees from north")
    where.add_argument("--target", type=_lat_lon, metavar="LAT,LON", help="aim point, degrees")
    p.add_argument("--range-km", type=_value(float, "a ground range, km, > 0"), metavar="R",
                   help="ground range with --bearing, km")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--apogee-km", type=_value(float, "an apogee, km, > 0"), metavar="A",
                     help="apogee, km (lofted unless --depressed)")
    how.add_argument("--minimum-energy", action="store_true", help="minimum-energy flight")
    p.add_argument("--depressed", action="store_true", help="with --apogee-km: depressed instead of lofted")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--csv", metavar="FILE", help="also write the time series (1 s steps: time, ECEF position and "
                                                 "velocity, latitude, longitude, height, speed, phase) as CSV")
    p.set_defaults(func=_cmd_trajectory)

    p = sub.add_parser("sensors", help="list the notional sensor catalog with sources")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_sensors)

    p = sub.add_parser("view", help="live pyqtgraph view of a scenario")
    p.add_argument("scenario", help="scenario TOML file")
    _add_set(p)
    p.add_argument("--trial", type=_value(int, "a trial index from 0"), default=0, help="trial to show")
    p.add_argument("--speed", type=_value(float, "simulated seconds per wall second, > 0"), default=10.0,
                   help="replay speed, simulated s per wall s")
    p.add_argument("--policy", help="sharing policy to show")
    p.add_argument("--screenshot", metavar="FILE.png", help="write a PNG of the window and exit")
    p.add_argument("--at", type=_value(float, "a scenario time, s"), metavar="T",
                   help="scenario time to start the replay at, s (with --screenshot: the frame)")
    p.add_argument("--width", type=_value(int, "a window width in pixels"), default=None, metavar="PX",
                   help="window width, px (height 5/8 of it; default 1600)")
    p.set_defaults(func=_cmd_view)

    p = sub.add_parser("bench", help="run the benchmark suites and write a report")
    p.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    p.set_defaults(func=_cmd_bench)
    return parser


def _check_trajectory_args(args) -> None:
    if args.command != "trajectory":
        return
    error = _Parser(prog="gsomia-sim trajectory").error  # the prefix argparse gives the sub-command's own errors
    if args.bearing is not None and args.range_km is None:
        error("--bearing needs --range-km")
    if args.bearing is not None and not 0.0 <= args.bearing <= 360.0:
        error(f"--bearing: got {args.bearing:g}; degrees from north in [0, 360] (as bearing_deg in a scenario)")
    if args.target is not None and args.range_km is not None:
        error("--range-km goes with --bearing, not with --target")
    if args.depressed and args.apogee_km is None:
        error("--depressed needs --apogee-km")
    if args.apogee_km is not None and not (args.apogee_km > 0 and math.isfinite(args.apogee_km)):
        error(f"--apogee-km: got {args.apogee_km:g}; an apogee, km, > 0")
    if args.range_km is not None and not (args.range_km > 0 and math.isfinite(args.range_km)):
        error(f"--range-km: got {args.range_km:g}; a ground range, km, > 0")


_LAT_LON_FLAGS = ("--launch", "--target")


def _attach_negative_points(argv: list[str]) -> list[str]:
    """``--target -39,-55`` -> ``--target=-39,-55``: argparse takes a value starting with '-' that is
    not a plain number for an option and reports "expected one argument" (new-user trial)."""
    out = []
    i = 0
    while i < len(argv):
        if argv[i] in _LAT_LON_FLAGS and i + 1 < len(argv) and argv[i + 1][:1] == "-" and "," in argv[i + 1]:
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv=None) -> int:
    """Run the command line; return the exit status (0 ok, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(_attach_negative_points(list(sys.argv[1:] if argv is None else argv)))
    _check_trajectory_args(args)
    try:
        return args.func(args)
    except GsomiaError as e:
        for line in str(e).splitlines():
            print(f"gsomia-sim {args.command}: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("gsomia-sim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as a filter does. Point stdout at devnull
        # so that the interpreter's own flush at exit does not raise again (Python docs, "Note on
        # SIGPIPE" in the signal module). Outputs already written are complete (atomic renames).
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def console_main() -> None:
    """Console-script entry point: exit with :func:`main`'s status."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console_main()
