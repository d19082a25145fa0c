"""The engine: runs a scenario through truth, sensors, sharing, trackers and metrics.

Data flows one way (README, "What happens, in words")::

    scenario -> truth -> detections -> sharing network -> trackers per nation x policy -> metrics

Trials run in chunks: truth, detections and the bounds of a chunk are batched
numpy (no Python loop over trials inside a time step); the trackers and metrics
then take the chunk in batches of a few trials (:data:`BATCH_TRIALS`), each
reduced to per-trial figures of merit and dropped before the next, so memory
stays bounded as trials and chunks grow. Every trial draws from its
own random streams (:mod:`sim.rng`), so trial k gives the same numbers whatever
the chunk size, and the same scenario and seed give the same results.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from fusion.metrics import TRIAL_METRIC_KEYS
from sim.config import NATIONS, Scenario
from sim.errors import InputError, did_you_mean
from sim.scenario import DEFAULT_CHUNK_TRIALS, MAX_WORKERS, blame_overrides

# Per-trial, per-object figures of merit (GOSPA is per trial, gathered apart).
METRIC_KEYS = tuple(k for k in TRIAL_METRIC_KEYS if k != "gospa_m") + ("pcrlb_pos_m", "efficiency")
# Matched comparison against the same nation's isolated row, computed per chunk (every policy runs on the
# same chunk); present only when the isolated policy is run.
MATCHED_KEYS = ("pos_err_ratio_vs_isolated", "common_steps_vs_isolated")
BOUND_KEYS = ("pcrlb_pos_m", "efficiency")  # fusion.metrics.bound_metrics over each row's scored steps
REFERENCE_POLICY = "isolated"
# Paired comparisons against the isolated row in metrics.json (issue 23: over the same trials, with a CI).
PAIRED_KEYS = ("firm_track_time_s", "completeness", "warning_time_s")
PHASE_NAMES = ("all", "boost", "midcourse", "reentry")  # rows of fusion.metrics.nees_sums
WORK_KEYS = ("tracker_runs", "track_steps", "updates")
CURVE_POINTS = 400  # samples per trial and curve kept for the report's figures
# Trials per tracker batch inside a chunk (run_chunk): the track histories of one batch are held at a time
# (about 7 MiB per trial and history on the Hwasong-15 flight, most of it the (T, 6, 6) covariances), while
# the metrics' batched IPP propagation costs mostly per call, so larger batches cost less per trial.
BATCH_TRIALS = 8


@dataclass(frozen=True)
class Replay:
    """Everything about one trial of a scenario, for the live view.

    Attributes
    ----------
    scenario : Scenario
    radars : tuple of sensors.radar.Radar
    truth : sim.truth.Truth
        One trial (trials axis of length 1).
    detections : sensors.detections.Detections
        That trial's detections.
    tracks : dict
        ``{(policy, nation): fusion.tracker.TrackHistory}``, trials axis of length 1.
    """

    scenario: Scenario
    radars: tuple
    truth: object
    detections: object
    tracks: dict


@dataclass
class TrialResults:
    """Per-trial figures of merit gathered over chunks.

    Attributes
    ----------
    values : dict
        ``{(policy, nation, target): {metric: list of float}}``; NaN where the
        metric did not happen in a trial (no track, no warning).
    gospa : dict
        ``{(policy, nation): list of float}`` mean GOSPA per trial (several objects only).
    nees : dict
        ``{(policy, nation, target): (total, count)}``: :func:`fusion.metrics.nees_sums`
        summed over trials, int64 arrays of shape (4, T) (integers, so the sum does not
        depend on the chunking).
    shared : dict
        ``{(policy, receiver, sender, target): {key: list of float}}`` per trial, km, for
        :data:`fusion.shared_estimates.SHARED_KEYS` (track-level routes only; see
        :func:`nation_tracks`).
    ipp_spread : dict
        ``{(policy, target): list of float}`` per trial: the largest distance between two
        nations' IPPs at the warning time under the policy, km (NaN: fewer than two IPPs).
    ipp_floor : dict
        ``{target: {key: list of float}}`` per trial, km, for :data:`IPP_FLOOR_KEYS`: the IPP
        error of the RV's true state at ``ipp_time_to_go`` with the trackers' predictor and
        with the drag-free one (:func:`fusion.metrics.truth_ipp_error_km`).
    trials : int
        Trials gathered so far.
    work : dict
        Work done, summed over chunks: ``tracker_runs`` (one per distinct data
        feed of a tracker batch, :func:`run_chunk`), ``track_steps`` (live track slots x output times x
        trials of those runs) and ``updates`` (measurement updates).
    """

    values: dict = dataclasses.field(default_factory=dict)
    gospa: dict = dataclasses.field(default_factory=dict)
    nees: dict = dataclasses.field(default_factory=dict)
    shared: dict = dataclasses.field(default_factory=dict)
    ipp_spread: dict = dataclasses.field(default_factory=dict)
    ipp_floor: dict = dataclasses.field(default_factory=dict)
    trials: int = 0
    work: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(WORK_KEYS, 0))

    def merge(self, other: "TrialResults") -> None:
        """Append the trials of ``other`` (a later chunk) to these, in order."""
        for key, row in other.values.items():
            mine = self.values.setdefault(key, {k: [] for k in row})
            for k, v in row.items():
                mine.setdefault(k, []).extend(v)
        for key, v in other.gospa.items():
            self.gospa.setdefault(key, []).extend(v)
        for key, (total, count) in other.nees.items():
            self.add_nees(key, total, count)
        for key, row in other.shared.items():
            mine = self.shared.setdefault(key, {k: [] for k in row})
            for k, v in row.items():
                mine[k].extend(v)
        for key, v in other.ipp_spread.items():
            self.ipp_spread.setdefault(key, []).extend(v)
        for key, row in other.ipp_floor.items():
            mine = self.ipp_floor.setdefault(key, {k: [] for k in row})
            for k, v in row.items():
                mine[k].extend(v)
        self.trials += other.trials
        for k in WORK_KEYS:
            self.work[k] += other.work[k]


    def add_nees(self, key, total, count) -> None:
        """Add per-step NEES sums (:func:`fusion.metrics.nees_sums`) of some trials to row ``key``."""
        if key not in self.nees:
            self.nees[key] = (total.copy(), count.copy())
            return
        mine_t, mine_c = self.nees[key]
        T = max(mine_t.shape[-1], total.shape[-1])  # a chunk may have had to extend the grid
        if mine_t.shape[-1] < T:
            pad = ((0, 0), (0, T - mine_t.shape[-1]))
            mine_t, mine_c = np.pad(mine_t, pad), np.pad(mine_c, pad)
        mine_t[:, :total.shape[-1]] += total
        mine_c[:, :count.shape[-1]] += count
        self.nees[key] = (mine_t, mine_c)


def build_radars(scenario: Scenario) -> tuple:
    """The scenario's radars, in file order (:func:`sensors.catalog.build_radar`)."""
    from sensors.catalog import build_radar

    radars = []
    problems = []
    for i, cfg in enumerate(scenario.sensors):
        try:
            radars.append(build_radar(cfg, key_prefix=f"sensor[{i}]"))
        except InputError as e:
            problems.extend(dataclasses.replace(p, file=scenario.path,
                                                key_path=p.key_path or f"sensor[{i}]") for p in e.problems)
    if problems:
        raise InputError(blame_overrides(problems, _override_keys(scenario)))
    return tuple(radars)


def check_threats(scenario: Scenario) -> None:
    """Solve every threat's nominal flight once, so an infeasible request fails before any trial runs.

    Raises
    ------
    InputError
        Every infeasible threat, with the scenario file and the key path
        (``threat[i].range_km``, ...) and the feasible interval in words.
    """
    from sim.shaping import nominal_for_threat, target_range_problem

    problems = []
    for i, threat in enumerate(scenario.threats):
        try:
            nominal_for_threat(threat)  # cached: the run reuses it
        except InputError as e:
            for p in e.problems:
                if threat.target_lat is not None:  # the file gave a target point, not range_km
                    point = tuple(round(float(np.degrees(a)), 6) for a in (threat.target_lat, threat.target_lon))
                    p = target_range_problem(p, point, "target_lat_deg/target_lon_deg", "the launch point")
                problems.append(dataclasses.replace(p, file=scenario.path, key_path=f"threat[{i}].{p.key_path}"))
    if problems:
        raise InputError(blame_overrides(problems, _override_keys(scenario)))


def _override_keys(scenario: Scenario) -> tuple[str, ...]:
    """Key paths of the scenario's ``--set`` overrides (their problems are named by the ``--set``)."""
    return tuple(text.partition("=")[0] for text in scenario.overrides)


def resolve_policy_names(scenario: Scenario, policies: Sequence[str] | None) -> tuple[str, ...]:
    """Policies to run: ``policies`` if given (checked against the scenario's), else ``[sharing].policies``.

    Raises
    ------
    InputError
        A name that is neither built in nor defined in the scenario.
    """
    from fusion.network import resolve_policies

    known = resolve_policies(dataclasses.replace(
        scenario.sharing, policies=tuple(dict.fromkeys(
            scenario.sharing.policies + tuple(c.name for c in scenario.sharing.custom)))))
    if policies is None:
        return tuple(scenario.sharing.policies)
    for name in policies:
        if name not in known:
            raise InputError.single("--policies", name, f"unknown policy; {did_you_mean(name, known)}allowed: "
                                                        + ", ".join(known))
    return tuple(dict.fromkeys(policies))


def chunks(n_trials: int, chunk_trials: int) -> list[np.ndarray]:
    """Global trial indices split into consecutive chunks of at most ``chunk_trials``."""
    idx = np.arange(n_trials)
    return [idx[i:i + chunk_trials] for i in range(0, n_trials, chunk_trials)]


def feed_plan(radars, policy, nation: str):
    """What one nation receives under one policy: the tracker feeds it needs, before any is run.

    Parameters
    ----------
    radars : sequence of Radar
    policy : fusion.network.Policy
    nation : str

    Returns
    -------
    own : ndarray, shape (S,)
        Delay of each sensor's detections to the nation's own tracker, s (inf: never).
    routes : list of (ndarray (S,), float, float, str)
        Per track-level sender: the delays of the sender's own tracker (the
        detections it tracks with under the policy: its own sensors' after their
        reporting latency, and those it receives over measurement links after
        theirs; inf elsewhere), the route latency (s), the report interval (s) and
        the sender's nation code. A sender reports the tracks of its own picture,
        never its track-fused one, so a report holds another nation's data only
        where that nation's measurements reached the sender (its ``sensors``
        bitmask says whose: :func:`fusion.track_fusion.fuse_track_histories` then
        fuses it as correlated).
    arrival_delay : ndarray, shape (S,)
        When each sensor's detections first reach the nation, directly or
        inside a reported track, s after measurement (for the detection-time metrics).
    """
    from fusion.network import sensor_latency_to_nation, track_routes

    sensor_nations = np.array([r.nation for r in radars])
    sensor_latency = np.array([r.latency for r in radars], dtype=float)
    own = np.asarray(sensor_latency_to_nation(policy, nation, list(sensor_nations), list(sensor_latency)),
                     dtype=float)
    routes = []
    arrival_delay = own.copy()
    for src, latency, interval in track_routes(policy, nation):
        src_own = np.asarray(sensor_latency_to_nation(policy, src, list(sensor_nations), list(sensor_latency)),
                             dtype=float)
        routes.append((src_own, latency, interval, src))
        # A nation learns of detections only through the tracks reported to it.
        arrival_delay = np.minimum(arrival_delay, src_own + latency)
    return own, routes, arrival_delay


def feed_key(delay: np.ndarray) -> tuple:
    """Cache key of a tracker feed: its per-sensor delays (rounded to 1 ns)."""
    return tuple(np.round(delay, 9).tolist())


def nation_tracks(scenario, radars, truth, dets, policy_name: str, policy, nation: str, cache: dict,
                  shared: dict | None = None):
    """Track history of one nation under one policy for a chunk of trials.

    Measurement-level sharing feeds the nation's tracker every detection that
    reaches it, at its arrival time (radar reporting latency plus link
    latency); track-level sharing fuses the senders' own-sensor tracks into the
    nation's own (:func:`fusion.track_fusion.fuse_track_histories`). The feeds
    come from :func:`feed_plan`.

    ``cache`` maps a :func:`feed_key` to the history already computed for it in
    this chunk: two (policy, nation) pairs that receive the same data after the
    same delays get the same tracks, computed once. Its ``progress`` (a
    :class:`ChunkProgress` or None) is credited when a history is stored; a tracker
    that runs trial by trial may report each trial through
    ``cache.progress.trial_callback(key, n_trials)``.

    ``shared``, if given, receives per track-level sender and RV object what the
    sender's reports tell this nation besides the state
    (:mod:`fusion.shared_estimates`): ``shared[(sender, o)] = {key: (N,) km}`` for
    :data:`fusion.shared_estimates.SHARED_KEYS`, i.e. the error of the sender's
    reported IPP at the warning time (``ipp_time_to_go`` before impact), its distance
    from this nation's own IPP then (from the nation's own picture before track
    fusion), and the error of the sender's reported launch point.

    Returns
    -------
    tracks : fusion.tracker.TrackHistory
    arrival_mask : ndarray of bool, shape (K,)
        Detections that reach the nation.
    arrival : ndarray, shape (K,)
        Their arrival times, s (inf where they never arrive).
    """
    from fusion.track_fusion import fuse_track_histories
    from fusion.tracker import run_tracker
    from sensors.detections import bias_sigmas, effective_scan_interval

    site_ecef = np.stack([r.site_ecef for r in radars])
    sigma_b = bias_sigmas(radars)  # the registration prior: the catalog's bias sigmas (fusion.registration_kernels)
    R_enu = np.stack([r.R_enu for r in radars])
    # The revisit the radars keep on the grid (a scan interval shorter than dt_s scans once per step):
    # the tracker counts missed scans in it.
    dt = float(truth.t[1] - truth.t[0]) if truth.t.size > 1 else float(scenario.info.dt)
    revisit = effective_scan_interval(np.array([r.scan_interval for r in radars]), dt)
    # each radar's own detection probability model, for the JPDA weights of the tracks (fusion.loop._track_pd)
    have_model = all(hasattr(r, k) for r in radars for k in ("ref_snr", "ref_range", "pfa", "swerling"))
    detection_model = (np.array([[r.ref_snr * r.ref_range**4, r.pfa, r.swerling] for r in radars], dtype=float)
                       if have_model else None)
    # beams, for the looks that held a track and missed it (fusion.loop._look_misses)
    beamwidth = (np.array([r.beamwidth for r in radars], dtype=float)
                 if all(hasattr(r, "beamwidth") for r in radars) else None)

    def tracker_for(delay: np.ndarray):
        key = feed_key(delay)
        if key not in cache:
            d = delay[dets.sensor]
            keep = np.isfinite(d)
            sub = _take(dets, keep)
            # every feed's latency, not the delays seen in this chunk's detections: a trial's output clock
            # must not depend on which sensors other trials of its chunk happened to detect with
            latency = np.where(np.isfinite(delay), delay, 0.0)
            cache[key] = run_tracker(sub, dets.time[keep] + d[keep], site_ecef, R_enu, truth.t,
                                     truth.trial_index, scenario.tracker, revisit=revisit, latency=latency,
                                     detection_model=detection_model, beamwidth=beamwidth,
                                     bias_sigma=sigma_b * np.isfinite(delay)[:, None])
        return cache[key]

    own, routes, arrival_delay = feed_plan(radars, policy, nation)
    tracks = tracker_for(own)
    if routes:
        remote = [(tracker_for(src_own), latency, interval) for src_own, latency, interval, _ in routes]
        if shared is not None:
            _shared_points(scenario, truth, tracks, remote, [r[3] for r in routes], shared)
        tracks = fuse_track_histories(tracks, remote, scenario.sharing.track_fusion,
                                      scenario.tracker.gate_probability, q=scenario.tracker.process_noise**2)
    d = arrival_delay[dets.sensor]
    return tracks, np.isfinite(d), dets.time + d


def _shared_points(scenario, truth, own_tracks, remote, senders, shared: dict) -> None:
    """Fill ``shared`` (see :func:`nation_tracks`) from the reports of each sender, per RV object."""
    from fusion.shared_estimates import ground_distance_km, ipp_at_warning, reported_points

    tgo = float(scenario.metrics.ipp_time_to_go)
    for o, kind in enumerate(truth.object_kind):
        if kind != "rv":
            continue
        own_ipp = ipp_at_warning(truth, own_tracks, o, tgo)
        for (hist, latency, interval), src in zip(remote, senders):
            ipp, launch = reported_points(truth, hist, latency, interval, o, tgo)
            shared[(src, o)] = {
                "shared_ipp_error_km": ground_distance_km(ipp, np.asarray(truth.impact_ecef, float)[:, o]),
                "shared_ipp_vs_own_km": ground_distance_km(ipp, own_ipp),
                "shared_launch_error_km": ground_distance_km(launch, np.asarray(truth.launch_ecef, float)[:, o]),
            }


class _CountingCache(dict):
    """The per-batch tracker-history cache; counts the work of each history stored in it and reports progress.

    Parameters
    ----------
    work : dict
        :attr:`TrialResults.work`, updated in place.
    progress : ChunkProgress, optional
        Advanced by each tracker run's share of the chunk once its history is stored.
    n_trials, trials_done : int
        Trials of the chunk, and trials through once this batch's runs are done (the run of a
        feed is credited ``trials_done / n_trials`` of the feed's share).
    """

    def __init__(self, work: dict, progress: "ChunkProgress | None" = None, n_trials: int = 1,
                 trials_done: int = 1):
        super().__init__()
        self.work = work
        self.progress = progress
        self.n_trials = n_trials
        self.trials_done = trials_done

    def __setitem__(self, key, hist):
        self.work["tracker_runs"] += 1
        self.work["track_steps"] += int(np.count_nonzero(np.isfinite(hist.x[..., 0])))
        self.work["updates"] += int(np.sum(hist.stats.get("updates", 0)))
        super().__setitem__(key, hist)
        if self.progress is not None:
            # the chunk runs in batches of trials: a feed's tracker is through the batches done so far
            self.progress.trial_callback(key, self.n_trials)(self.trials_done)


# Share of a chunk's wall time spent outside the trackers (truth, detections, metrics): 10 % measured on the
# Hwasong-15 scenario (4 trials, 900 s span, 2026-12-07: 27 s of 280 s); the rest is split over the tracker runs.
_PRE_TRACKER_SHARE = 0.05  # truth and detections, reported once they are done
_TRACKER_SHARE = 0.9


class ChunkProgress:
    """Progress through one chunk of trials, as a fraction of its work, for an honest rate and ETA.

    A chunk's truth and detections are made for all its trials together, then its
    trials go through the trackers and metrics in batches (:func:`run_chunk`). The
    chunk's work is split: truth and detections first, then one share per data feed's
    tracker (:func:`feed_key`), weighted by the (time, radar) groups of detections it
    is fed and credited batch by batch in proportion to the trials through it, then
    the end of the chunk.

    Parameters
    ----------
    report : callable
        ``report(fraction)`` with the fraction of the chunk done, in [0, 1], never decreasing.

    Notes
    -----
    A tracker that runs trial by trial can report inside its run:
    ``done = progress.trial_callback(key, n_trials)`` then ``done(k)`` after its k-th
    trial; :meth:`run_done` completes the run's share.
    """

    def __init__(self, report: Callable[[float], None]):
        self.report = report
        self.fraction = 0.0
        self.weights: dict = {}
        self.credited: dict = {}

    def _advance_to(self, fraction: float) -> None:
        fraction = min(1.0, fraction)
        if fraction > self.fraction:
            self.fraction = fraction
            self.report(fraction)

    def plan(self, dets, delays: dict) -> None:
        """Weight each tracker run by the (time, radar) groups it is fed; report truth and detections done.

        ``delays`` maps each :func:`feed_key` to its per-sensor delay array (inf: not fed).
        """
        pairs = np.column_stack([dets.time, dets.sensor.astype(float)])
        groups = {}
        for key, delay in delays.items():
            fed = np.isfinite(np.asarray(delay)[dets.sensor])
            groups[key] = 1 + (np.unique(pairs[fed], axis=0).shape[0] if fed.any() else 0)
        total = sum(groups.values())
        self.weights = {k: _TRACKER_SHARE * g / total for k, g in groups.items()}
        self._advance_to(_PRE_TRACKER_SHARE)

    def trial_callback(self, key, n_trials: int) -> Callable[[int], None]:
        """``done(k)``: k of the run's ``n_trials`` trials are through the tracker of feed ``key``."""

        def done(k: int) -> None:
            share = self.weights.get(key, 0.0) * min(k, n_trials) / max(n_trials, 1)
            extra = share - self.credited.get(key, 0.0)
            if extra > 0:
                self.credited[key] = share
                self._advance_to(self.fraction + extra)

        return done

    def run_done(self, key) -> None:
        """The tracker of feed ``key`` has finished: its whole share is done."""
        self.trial_callback(key, 1)(1)

    def finish(self) -> None:
        """The chunk is done (metrics included)."""
        self._advance_to(1.0)


def _take(dets, mask):
    """Subset of a columnar Detections record."""
    fields = {}
    for f in dataclasses.fields(dets):
        v = getattr(dets, f.name)
        fields[f.name] = v[mask] if isinstance(v, np.ndarray) and v.shape[:1] == mask.shape else v
    return dataclasses.replace(dets, **fields)


def trial_rows(truth, dets, rows):
    """The trials ``rows`` of a chunk: their truth and their detections (false alarms included).

    Parameters
    ----------
    truth : sim.truth.Truth
        A chunk's truth (trials axis first).
    dets : sensors.detections.Detections
        The chunk's detections.
    rows : ndarray of int
        Rows of the trials axis to keep, ascending.

    Returns
    -------
    truth : sim.truth.Truth
        Trials axis of length ``rows.size``; the grid and the objects unchanged.
    dets : sensors.detections.Detections
        The detections of those trials, in their original order.

    Raises
    ------
    TypeError
        ``truth`` has a field this function does not know to be per trial or shared (a
        programming error: a new :class:`sim.truth.Truth` field must be added here).
    """
    rows = np.asarray(rows, dtype=np.int64)
    per_trial = ("state", "phase", "launch_time", "impact_time", "launch_ecef", "impact_ecef", "trial_index")
    unknown = {f.name for f in dataclasses.fields(truth)} - set(per_trial) - {"t", "object_threat", "object_kind"}
    if unknown:  # a new Truth field must be classed here as per trial or shared, or batches would go wrong
        raise TypeError(f"trial_rows: Truth field(s) {sorted(unknown)} not classed as per trial or shared")
    sub = dataclasses.replace(truth, **{name: np.asarray(getattr(truth, name))[rows] for name in per_trial})
    return sub, _take(dets, np.isin(dets.trial, sub.trial_index))


def _batch_size(batch_trials) -> int:
    """``batch_trials`` checked (a whole number >= 1), or :data:`BATCH_TRIALS` for None."""
    if batch_trials is None:
        return BATCH_TRIALS
    if isinstance(batch_trials, bool) or not isinstance(batch_trials, (int, np.integer)) or batch_trials < 1:
        raise InputError.single("batch_trials", batch_trials, "a whole number of trials >= 1")
    return int(batch_trials)


def run_chunk(scenario: Scenario, radars, trial_indices, seed: int, policies: Sequence[str], results: TrialResults,
              keep: Callable | None = None, curves: "Curves | None" = None,
              progress: Callable[[float], None] | None = None, batch_trials: int | None = None):
    """Run one chunk of trials through every stage and add its per-trial metrics to ``results``.

    Truth, detections and the posterior Cramer-Rao bounds are computed for the
    whole chunk (batched numpy, cheaper per trial as the chunk grows); the trackers,
    the track fusion and the metrics then run on batches of at most
    ``batch_trials`` trials, each reduced to its per-trial figures of merit before
    the next starts, so the (trials, tracks, T, 6, 6) track histories are held for
    one batch, not for the chunk. Every trial's results are the same whatever the
    chunk and the batch (trials are computed apart at every stage).

    Parameters
    ----------
    scenario : Scenario
    radars : tuple of Radar
    trial_indices : ndarray of int
        Global trial numbers of this chunk.
    seed : int
        Root seed.
    policies : sequence of str
        Policy names to run.
    results : TrialResults
        Accumulator, updated in place.
    keep : callable, optional
        ``keep(policy, nation, truth, dets, tracks, arrival_mask, arrival, metrics)``, called for each
        (policy, nation) and batch with the batch's arrays; must not keep references it does not need.
    curves : Curves, optional
        Accumulator of the decimated error curves for the report's figures.
    progress : callable, optional
        ``progress(fraction)``: the fraction of this chunk's work done, in (0, 1], never
        decreasing; called after truth and detections, after each tracker run and at the
        end (:class:`ChunkProgress`).
    batch_trials : int, optional
        Trials per tracker batch (default :data:`BATCH_TRIALS`); memory grows with it.

    Returns
    -------
    sim.truth.Truth
        The chunk's truth.

    Raises
    ------
    InputError
        ``batch_trials`` not a whole number >= 1.
    """
    from fusion.bounds import TruthDynamics
    from fusion.network import resolve_policies
    from sensors.detections import generate_detections, registration_biases
    from sim.truth import generate_truth

    batch_trials = _batch_size(batch_trials)
    info = scenario.info
    truth = generate_truth(scenario.threats, trial_indices, seed, info.dt, info.duration)
    dets = generate_detections(truth, radars, seed, rcs_m2=object_rcs(scenario, truth))
    true_bias = registration_biases(radars, seed, truth.trial_index)
    all_policies = resolve_policies(dataclasses.replace(
        scenario.sharing, policies=tuple(dict.fromkeys(
            tuple(policies) + tuple(c.name for c in scenario.sharing.custom)))))
    rv = [i for i, kind in enumerate(truth.object_kind) if kind == "rv"]
    targets = [scenario.threats[truth.object_threat[i]].name for i in rv]
    _add_ipp_floor(results, truth, rv, targets, float(scenario.metrics.ipp_time_to_go))
    # Plan the feeds first, so each cached tracker history is dropped after its last use (memory).
    plans = {}
    uses: dict = {}
    delays: dict = {}
    for policy_name in policies:
        for nation in NATIONS:
            own, routes, arrival_delay = feed_plan(radars, all_policies[policy_name], nation)
            feeds = [own] + [r[0] for r in routes]
            keys = [feed_key(d) for d in feeds]
            delays.update(zip(keys, feeds))
            plans[(policy_name, nation)] = (keys, arrival_delay)
            for key in keys:
                uses[key] = uses.get(key, 0) + 1
    chunk_progress = None
    if progress is not None:
        chunk_progress = ChunkProgress(progress)
        chunk_progress.plan(dets, delays)
    site_ecef = np.stack([r.site_ecef for r in radars])
    R_enu = np.stack([r.R_enu for r in radars])
    # The bound depends on the data a nation receives (its arrival delays), not on its tracker: policies that
    # deliver the same data share it, and every call shares the truth's boost and atmosphere transitions.
    dynamics = TruthDynamics(truth, scenario.threats)
    bounds: dict = {}

    def bound_of(arrival_delay):
        from fusion.bounds import pcrlb_position_variance

        key = feed_key(arrival_delay)
        if key not in bounds:
            arrival = dets.time + arrival_delay[dets.sensor]
            bounds[key] = pcrlb_position_variance(truth, dets, arrival, site_ecef, R_enu, scenario.threats,
                                                  dynamics=dynamics)
        return bounds[key]

    n = len(trial_indices)
    for start in range(0, n, batch_trials):
        rows = np.arange(start, min(n, start + batch_trials))
        sub_truth, sub_dets = (truth, dets) if rows.size == n else trial_rows(truth, dets, rows)
        cache = _CountingCache(results.work, chunk_progress, n_trials=n, trials_done=int(rows[-1]) + 1)
        _run_batch(scenario, radars, sub_truth, sub_dets, rows, policies, all_policies, plans, dict(uses), cache,
                   bound_of, results, keep, curves, true_bias=true_bias[rows])
    if curves is not None and curves.coverage is None:
        curves.set_coverage(truth, dets, len(radars))
    results.trials += n
    if chunk_progress is not None:
        chunk_progress.finish()
    return truth


def _run_batch(scenario, radars, truth, dets, rows, policies, all_policies, plans, uses, cache, bound_of, results,
               keep, curves, true_bias=None):
    """Trackers, track fusion and metrics of one batch of a chunk's trials (:func:`run_chunk`).

    ``true_bias`` (trials, S, 6): the radars' registration biases in these trials; each
    row then gets ``bias_error/<radar>/<key>`` values (:func:`fusion.metrics.bias_errors`).

    ``rows`` are the batch's rows in the chunk (for the chunk-wide bounds of ``bound_of``);
    ``uses`` counts the remaining uses of each feed in this batch and is consumed.
    """
    from fusion.metrics import bias_errors, bound_metrics, matched_ratio, nees_sums, trial_metrics
    from fusion.shared_estimates import ipp_at_warning, pairwise_spread_km

    rv = [i for i, kind in enumerate(truth.object_kind) if kind == "rv"]
    targets = [scenario.threats[truth.object_threat[i]].name for i in rv]
    pos_err = {}  # (policy, nation) -> (N, O, T) error on the scored steps, for the matched comparison
    tgo = float(scenario.metrics.ipp_time_to_go)
    # Rows fed the same data after the same delays with no track-level routes (on the Hwasong-15 scenario the
    # US under bilateral and trilateral sharing) have the same tracks, so the same metrics: computed once.
    same = {row: _row_signature(*plans[row]) for row in plans if row[0] in policies}
    left = {}
    for sig in same.values():
        if sig is not None:
            left[sig] = left.get(sig, 0) + 1
    done: dict = {}  # signature -> (tracks, mask, arrival, m, steps, got, shared) of the row computed first
    for policy_name in policies:
        policy = all_policies[policy_name]
        ipps: dict = {}  # RV index in rv -> nation -> IPP at the warning time (the public-warning comparison)
        for nation in NATIONS:
            sig = same[(policy_name, nation)]
            if sig in done:
                tracks, mask, arrival, m, steps, got, shared = done[sig]
            else:
                shared = {}
                tracks, mask, arrival = nation_tracks(scenario, radars, truth, dets, policy_name, policy, nation,
                                                      cache, shared=shared)
            for (src, obj), vals in shared.items():
                j = rv.index(obj)
                row = results.shared.setdefault((policy_name, nation, src, targets[j]), {k: [] for k in vals})
                for k, v in vals.items():
                    row[k].extend(np.asarray(v).tolist())
            for j, obj in enumerate(rv):
                ipps.setdefault(j, {})[nation] = ipp_at_warning(truth, tracks, obj, tgo)
            keys, arrival_delay = plans[(policy_name, nation)]
            bias_err = {}
            if true_bias is not None and np.any(true_bias != 0):
                errs = bias_errors(tracks.bias, true_bias, np.isfinite(np.array(keys[0], dtype=float)))
                for s, radar in enumerate(radars):
                    for k, v in errs.items():
                        if np.isfinite(v[:, s]).any():
                            bias_err[f"bias_error/{radar.name}/{k}"] = v[:, s]
            for key in keys:
                uses[key] -= 1
                if uses[key] == 0:
                    del cache[key]
            if sig not in done:
                arrivals = _arrivals(dets, mask, arrival)
                got = {}
                steps = {}
                m = trial_metrics(truth, tracks, arrivals, scenario.metrics, curves=got, steps=steps,
                                  hold_s=scenario.metrics.firm_track_hold)
                bound = bound_of(arrival_delay)[rows]
                m.update(bound_metrics(bound, steps["pos_err_m"]))
                steps["pcrlb_var_m2"] = np.where(np.isfinite(steps["pos_err_m"]), bound, np.nan)
            if sig is not None:
                left[sig] -= 1
                if left[sig] > 0:
                    done[sig] = (tracks, mask, arrival, m, steps, got, shared)
                else:
                    done.pop(sig, None)
            if curves is not None:
                curves.add(policy_name, nation, truth, steps, rv, targets, got["ipp"])
            if REFERENCE_POLICY in policies:
                pos_err[(policy_name, nation)] = steps["pos_err_m"][:, rv]
            for j, obj in enumerate(rv):
                row = results.values.setdefault((policy_name, nation, targets[j]), {k: [] for k in METRIC_KEYS})
                for k in METRIC_KEYS:
                    row[k].extend(np.asarray(m[k])[:, obj].tolist())
                for k, v in bias_err.items():
                    row.setdefault(k, []).extend(v.tolist())
                results.add_nees((policy_name, nation, targets[j]), *nees_sums(steps["nees"][:, obj],
                                                                               truth.phase[:, obj]))
            if "gospa_m" in m and len(truth.object_kind) > 1:
                results.gospa.setdefault((policy_name, nation), []).extend(np.asarray(m["gospa_m"]).ravel().tolist())
            if keep is not None:
                keep(policy_name, nation, truth, dets, tracks, mask, arrival, m)
            del tracks, steps
        for j, points in ipps.items():
            results.ipp_spread.setdefault((policy_name, targets[j]), []).extend(pairwise_spread_km(points).tolist())
    if REFERENCE_POLICY in policies:  # every policy ran on this batch's trials: compare step by step
        for (policy_name, nation), err in pos_err.items():
            ratio, common = matched_ratio(err, pos_err[(REFERENCE_POLICY, nation)])
            for j in range(len(rv)):
                row = results.values[(policy_name, nation, targets[j])]
                row.setdefault(MATCHED_KEYS[0], []).extend(ratio[:, j].tolist())
                row.setdefault(MATCHED_KEYS[1], []).extend(common[:, j].astype(float).tolist())


def _row_signature(keys, arrival_delay):
    """What determines a (policy, nation) row's tracks and metrics in :func:`_run_batch`: its feed and its
    arrival delays; None for a row with track-level routes (its fusion is not keyed here)."""
    if len(keys) != 1:
        return None
    return keys[0], feed_key(arrival_delay)


class Curves:
    """Per-trial error curves, decimated in time, gathered over chunks for the report's figures.

    Position error (m) of the nation's estimate on each RV on its scored steps (a
    firm track, :func:`fusion.metrics.trial_metrics`) versus time, NaN elsewhere, and
    the RMS radius the filter claims there, :math:`\sqrt{\operatorname{tr}P_{rr}}`;
    IPP error (km) versus time to go; and the coverage timeline (which radar detects
    which object, when) of the first trial; and the posterior Cramer-Rao bound's
    position variance (m^2) on the same scored steps (:mod:`fusion.bounds`).

    Parameters
    ----------
    step : int
        Keep every ``step``-th output time (:func:`curve_step`: the same for every
        chunk, so chunks run apart can be merged).
    """

    def __init__(self, step: int):
        self.step = int(step)
        self.pos: dict = {}  # (policy, nation, target) -> list of (trials, G) arrays
        self.bound: dict = {}
        self.pcrlb: dict = {}  # PCRLB position variance on the scored steps, m^2
        self.ipp: dict = {}
        self.t = None
        self.tau = None
        self.coverage = None

    def add(self, policy, nation, truth, steps, rv, targets, ipp) -> None:
        """Keep one (policy, nation)'s curves of a chunk: ``steps`` as filled by
        :func:`fusion.metrics.trial_metrics`, ``ipp`` its ``(time_to_go, error_km)``."""
        t = np.asarray(truth.t, float)
        err = steps["pos_err_m"]
        bound = np.sqrt(steps["pos_var_m2"])
        step = self.step
        # Every chunk has the same grid (fixed by the threats); keep the longest in case a chunk had to extend it.
        if self.t is None or t[::step].size > self.t.size:
            self.t = t[::step]
        tau, ipp_err = ipp
        if self.tau is None or tau.size > self.tau.size:
            self.tau = tau
        # Copies, not views: a view would keep the whole (trials, objects, T) array of the batch alive for the
        # rest of the run (measured: 0.4 MiB per trial on a 600-s span, about 2 MiB on the whole flight).
        for j, obj in enumerate(rv):
            key = (policy, nation, targets[j])
            self.pos.setdefault(key, []).append(err[:, obj, ::step].copy())
            self.bound.setdefault(key, []).append(bound[:, obj, ::step].copy())
            if "pcrlb_var_m2" in steps:
                self.pcrlb.setdefault(key, []).append(steps["pcrlb_var_m2"][:, obj, ::step].copy())
            self.ipp.setdefault(key, []).append(ipp_err[:, obj, :].copy())

    def merge(self, other: "Curves") -> None:
        """Append the curves of ``other`` (a later chunk, same ``step``) to these, in order."""
        if other.step != self.step:
            raise ValueError(f"Curves.merge: step {other.step} differs from {self.step}")
        for mine, theirs in ((self.pos, other.pos), (self.bound, other.bound), (self.ipp, other.ipp),
                             (self.pcrlb, other.pcrlb)):
            for key, parts in theirs.items():
                mine.setdefault(key, []).extend(parts)
        if other.t is not None and (self.t is None or other.t.size > self.t.size):
            self.t = other.t
        if other.tau is not None and (self.tau is None or other.tau.size > self.tau.size):
            self.tau = other.tau
        if self.coverage is None:
            self.coverage = other.coverage

    def set_coverage(self, truth, dets, n_sensors: int) -> None:
        """Keep (sensor, object, time) of the real detections of the first trial of the first chunk."""
        first = dets.trial == truth.trial_index[0]
        real = first & (dets.object >= 0)
        self.coverage = (dets.sensor[real].copy(), dets.object[real].copy(), dets.time[real].copy(), n_sensors)

    def stacked(self, store: dict, key):
        """All trials' rows of one curve, shape (trials, G), NaN-padded where a chunk's grid ended earlier."""
        parts = store[key]
        width = max(p.shape[1] for p in parts)
        out = np.full((sum(p.shape[0] for p in parts), width), np.nan)
        row = 0
        for p in parts:
            out[row:row + p.shape[0], :p.shape[1]] = p
            row += p.shape[0]
        return out


def curve_step(scenario: Scenario, max_points: int = CURVE_POINTS) -> int:
    """Decimation step of the report's curves: about ``max_points`` samples over the nominal flight.

    The span is ``[scenario].duration_s`` if set, else from the earliest launch to
    the latest nominal impact (:func:`sim.shaping.nominal_for_threat`); it does not
    depend on the trials, so every chunk decimates alike.
    """
    from sim.shaping import nominal_for_threat

    info = scenario.info
    if info.duration is not None:
        span = info.duration
    else:
        span = (max(th.launch_time + nominal_for_threat(th).flight_time for th in scenario.threats)
                - min(th.launch_time for th in scenario.threats))
    return max(1, int(np.ceil(span / info.dt / max_points)))


def object_rcs(scenario: Scenario, truth) -> np.ndarray:
    """Radar cross-section of every object at every step from its missile class, m^2.

    Returns
    -------
    ndarray, shape (trials, objects, T)
        :meth:`sim.missiles.MissileClass.rcs` by object kind and phase; 0 out of flight.
    """
    from sim.missiles import MISSILES

    out = np.zeros(truth.phase.shape)
    for o, kind in enumerate(truth.object_kind):
        missile = MISSILES[scenario.threats[truth.object_threat[o]].missile]
        out[:, o, :] = missile.rcs(kind, truth.phase[:, o, :])
    return out


def _arrivals(dets, mask, arrival):
    """The detection-arrival record the metrics read: trial, object, arrival time of what reached the nation."""
    from types import SimpleNamespace

    return SimpleNamespace(trial=dets.trial[mask], object=dets.object[mask], time=dets.time[mask],
                           arrival=arrival[mask], sensor=dets.sensor[mask])


@dataclass(frozen=True)
class RunOutput:
    """What :func:`run_scenario` returns.

    Attributes
    ----------
    rows : list of dict
        One per (policy, nation, target): ``policy``, ``nation``, ``target`` and,
        per metric key, the summary of :func:`fusion.metrics.summarize`.
    trials, seed : int
    policies : tuple of str
    radars : tuple of Radar
    curves : Curves
    work : dict
        :attr:`TrialResults.work` summed over all chunks.
    nees : dict
        :attr:`TrialResults.nees`: per-step NEES sums of every row, for the ensemble NEES figure.
    shared : list of dict
        One per (policy, receiver, sender, target) of the track-level routes:
        ``policy``, ``nation`` (receiver), ``sender``, ``target`` and per key of
        :data:`fusion.shared_estimates.SHARED_KEYS` the :func:`fusion.metrics.summarize`
        over trials, km.
    ipp_spread : list of dict
        One per (policy, target): ``policy``, ``target``, ``spread_km`` (summary of the
        per-trial largest distance between two nations' IPPs at the warning time) and
        ``disagree`` / ``compared`` (trials with a spread above ``ipp_threshold_km`` /
        trials where at least two nations had an IPP).
    ipp_floor : list of dict
        One per target (:func:`ipp_floor_rows`): the IPP error of its true state at the
        warning time, with the trackers' predictor and drag-free, and what the flight has
        that a ballistic predictor does not (lift, its ballistic coefficient).
    per_trial : TrialResults or None
        Every trial's figures of merit, in trial order (:func:`sim.api.trials_frame` makes a table of them).
    """

    rows: list
    trials: int
    seed: int
    policies: tuple
    radars: tuple
    curves: Curves
    work: dict
    shared: list = dataclasses.field(default_factory=list)
    ipp_spread: list = dataclasses.field(default_factory=list)
    per_trial: TrialResults | None = None
    nees: dict = dataclasses.field(default_factory=dict)
    ipp_floor: list = dataclasses.field(default_factory=list)


def check_run_args(trials, seed, workers, chunk_trials) -> None:
    """Check a run's trials, seed, workers and chunk size (the CLI calls it before its progress display starts).

    Raises
    ------
    InputError
        Trials or chunk_trials outside [1, MAX_TRIALS], seed outside [0, MAX_SEED], workers
        outside [1, MAX_WORKERS], or any of them not a whole number.
    """
    from sim.scenario import MAX_SEED, MAX_TRIALS

    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise InputError.single("--trials", trials, f"a whole number of trials in [1, {MAX_TRIALS:,}]")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputError.single("--seed", seed, f"a whole number in [0, {MAX_SEED}]")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise InputError.single("--workers", workers, f"a whole number of processes in [1, {MAX_WORKERS}]")
    if isinstance(chunk_trials, bool) or not isinstance(chunk_trials, int) or not 1 <= chunk_trials <= MAX_TRIALS:
        raise InputError.single("--chunk-trials", chunk_trials, f"a whole number of trials in [1, {MAX_TRIALS:,}]")


def run_scenario(scenario: Scenario, trials: int | None = None, seed: int | None = None,
                 policies: Sequence[str] | None = None, chunk_trials: int = DEFAULT_CHUNK_TRIALS, workers: int = 1,
                 progress: Callable[[int, int], None] | None = None, batch_trials: int | None = None) -> RunOutput:
    """Run every policy for every nation over all trials, in chunks, and summarize over trials.

    Parameters
    ----------
    scenario : Scenario
    trials, seed : int, optional
        Override ``[scenario].trials`` / ``.seed``.
    policies : sequence of str, optional
        Override ``[sharing].policies``.
    chunk_trials : int
        Trials batched together; bounds memory (results do not depend on it, to the bit).
    workers : int
        Processes that run chunks side by side (1: all in this process). Chunks are
        independent and their results are gathered in chunk order, so the results do
        not depend on ``workers``; memory is about ``workers`` times one chunk's. The
        workers are spawned (:mod:`multiprocessing`), so a script calling this with
        ``workers > 1`` must guard its entry point with ``if __name__ == "__main__":``.
    progress : callable, optional
        ``progress(done, total)``: ``done`` trials of ``total`` are through, a float that
        never decreases and ends at ``total``. It advances inside a chunk too, by each
        chunk's share of work done (:class:`ChunkProgress`: truth and detections, then
        each tracker run weighted by the detections it is fed, then the metrics), with
        ``workers > 1`` as well (the workers report through a queue), so
        ``done / elapsed`` is an honest rate and ``(total - done) / rate`` an ETA.
    batch_trials : int, optional
        Trials per tracker batch inside a chunk (default :data:`BATCH_TRIALS`, see
        :func:`run_chunk`); memory grows with it, results do not change.

    Returns
    -------
    RunOutput

    Raises
    ------
    InputError
        Bad overrides (trials or chunk_trials outside [1, MAX_TRIALS], seed outside [0, MAX_SEED],
        workers outside [1, MAX_WORKERS], batch_trials not a whole number >= 1, unknown policy) or
        sensor overrides.
    """
    from fusion.metrics import summarize

    trials = scenario.info.trials if trials is None else trials
    seed = scenario.info.seed if seed is None else seed
    check_run_args(trials, seed, workers, chunk_trials)
    batch_trials = _batch_size(batch_trials)
    names = resolve_policy_names(scenario, policies)
    radars = build_radars(scenario)
    check_threats(scenario)
    step = curve_step(scenario)
    results = TrialResults()
    curves = Curves(step)
    parts = chunks(trials, chunk_trials)
    if workers == 1 or len(parts) == 1:
        for idx in parts:
            before = results.trials

            def within(fraction, before=before, size=len(idx)):
                if progress is not None:
                    progress(before + fraction * size, trials)

            run_chunk(scenario, radars, idx, seed, names, results, curves=curves, progress=within,
                      batch_trials=batch_trials)
    else:
        import multiprocessing
        import queue as queue_module

        # spawn: a fresh interpreter per worker (no forked BLAS threads or locks). imap hands the chunks
        # out in order and returns them in order, so the merge is the serial run's. Leaving the block
        # (done, an error, or Ctrl-C, which only this process hears) terminates the workers.
        ctx = multiprocessing.get_context("spawn")
        jobs = [(scenario, idx, seed, names, step, c, batch_trials) for c, idx in enumerate(parts)]
        reports = ctx.Queue()  # (chunk, fraction) from the workers, read here between results
        fractions = [0.0] * len(parts)

        def tell():
            while True:
                try:
                    c, f = reports.get_nowait()
                except queue_module.Empty:
                    break
                fractions[c] = max(fractions[c], f)
            if progress is not None:
                progress(sum(f * len(idx) for f, idx in zip(fractions, parts)), trials)

        n_proc = min(workers, len(parts))
        # the tracker loop's threads (fusion.loop) share the cores with the other workers: never more in all
        threads = max(1, (os.cpu_count() or 1) // n_proc)
        with ctx.Pool(processes=n_proc, initializer=_worker_init, initargs=(reports, threads)) as pool:
            pending = pool.imap(_chunk_job, jobs)
            for c in range(len(parts)):
                while True:
                    try:
                        part_results, part_curves = pending.next(timeout=1.0)
                        break
                    except multiprocessing.TimeoutError:
                        tell()
                results.merge(part_results)
                curves.merge(part_curves)
                fractions[c] = 1.0
                tell()
    rows = summary_rows(results)
    shared = [{"policy": p, "nation": n, "sender": src, "target": tg,
               **{k: summarize(np.asarray(v)) for k, v in vals.items()}}
              for (p, n, src, tg), vals in results.shared.items()]
    threshold_km = scenario.metrics.ipp_threshold / 1e3
    spread = []
    for (p, tg), v in results.ipp_spread.items():
        v = np.asarray(v, dtype=float)
        spread.append({"policy": p, "target": tg, "spread_km": summarize(v),
                       "disagree": int(np.sum(v > threshold_km)), "compared": int(np.sum(np.isfinite(v)))})
    return RunOutput(rows, trials, seed, names, radars, curves, dict(results.work), shared, spread,
                     per_trial=results, nees=dict(results.nees), ipp_floor=ipp_floor_rows(scenario, results))


IPP_FLOOR_KEYS = ("truth_ipp_error_km", "truth_ipp_error_drag_free_km")


def _add_ipp_floor(results: TrialResults, truth, rv, targets, time_to_go: float) -> None:
    """Append each RV's true-state IPP errors at ``time_to_go`` (both predictors) to ``results.ipp_floor``."""
    from fusion.metrics import truth_ipp_error_km

    for drag, key in ((True, IPP_FLOOR_KEYS[0]), (False, IPP_FLOOR_KEYS[1])):
        err = truth_ipp_error_km(truth, time_to_go, drag=drag)
        for j, obj in enumerate(rv):
            row = results.ipp_floor.setdefault(targets[j], {k: [] for k in IPP_FLOOR_KEYS})
            row[key].extend(err[:, obj].tolist())


def ipp_floor_rows(scenario: Scenario, results: TrialResults) -> list:
    """The IPP floor of each target over trials, with what its flight has that the predictor lacks.

    Returns
    -------
    list of dict
        One per target: ``target``, ``time_to_go_s``, per key of :data:`IPP_FLOOR_KEYS` the
        :func:`fusion.metrics.summarize` over trials (km), ``lift_glide`` and ``lift_pullup``
        (the L/D of the flight's glide and terminal pull-up, 0 for none:
        :func:`sim.shaping.nominal_for_threat`), ``ballistic_coeff`` (the class's RV value,
        kg/m^2) and ``nominal_ballistic_coeff`` (the trackers', :data:`fusion.drag.NOMINAL_BALLISTIC_COEFF`).
    """
    from fusion.drag import NOMINAL_BALLISTIC_COEFF
    from fusion.metrics import summarize
    from sim.missiles import MISSILES
    from sim.shaping import nominal_for_threat

    by_name = {th.name: th for th in scenario.threats}
    out = []
    for target, vals in results.ipp_floor.items():
        th = by_name[target]
        nom = nominal_for_threat(th)
        out.append({"target": target, "time_to_go_s": float(scenario.metrics.ipp_time_to_go),
                    **{k: summarize(np.asarray(vals[k], dtype=float)) for k in IPP_FLOOR_KEYS},
                    "lift_glide": float(nom.lift_glide), "lift_pullup": float(nom.lift_pullup),
                    "ballistic_coeff": float(MISSILES[th.missile].rv_ballistic_coeff),
                    "nominal_ballistic_coeff": float(NOMINAL_BALLISTIC_COEFF)})
    return out


def summary_rows(results: TrialResults) -> list:
    """One summary row per (policy, nation, target) from the per-trial values of all chunks.

    Each metric is summarized by :func:`fusion.metrics.summarize` (the matched ratio with
    its bootstrap interval); ``warning_retracted`` becomes the number of trials with a
    retracted warning (``{"trials": k, "n": n}``); ``nees_consistency`` the fractions of
    :func:`fusion.metrics.nees_consistency` overall and per phase (``{"all": ..., "boost":
    ..., "midcourse": ..., "reentry": ...}``); ``paired_vs_isolated`` the
    :func:`fusion.metrics.paired_difference` of each of :data:`PAIRED_KEYS` against the
    same nation's isolated row, over the trials where both had it (not on isolated rows).
    Every input is in trial order, so the rows do not depend on the chunking.
    """
    from fusion.metrics import nees_consistency, paired_difference, summarize

    rows = []
    for (policy, nation, target), values in results.values.items():
        row = {"policy": policy, "nation": nation, "target": target}
        for k, v in values.items():
            v = np.asarray(v, float)
            if k.startswith("bias_error/"):  # {"bias_error": {radar: {key: summary}}}
                _, radar, key = k.split("/")
                row.setdefault("bias_error", {}).setdefault(radar, {})[key] = summarize(v)
            elif k == "warning_retracted":
                row[k] = {"trials": int(np.nansum(v)), "n": int(v.size)}
            else:
                row[k] = summarize(v, ci=k == MATCHED_KEYS[0])
        if (policy, nation) in results.gospa:
            row["gospa_m"] = summarize(np.asarray(results.gospa[(policy, nation)]))
        if (policy, nation, target) in results.nees:
            total, count = results.nees[(policy, nation, target)]
            row["nees_consistency"] = {name: nees_consistency(total[i], count[i])
                                       for i, name in enumerate(PHASE_NAMES)}
        ref = results.values.get((REFERENCE_POLICY, nation, target))
        if ref is not None and policy != REFERENCE_POLICY:
            row["paired_vs_isolated"] = {k: paired_difference(values[k], ref[k]) for k in PAIRED_KEYS
                                         if k in values and k in ref}
        rows.append(row)
    return rows


_REPORTS = None  # a worker's queue of (chunk, fraction done) progress reports to the main process


def _worker_init(reports=None, threads: int = 1) -> None:
    """Worker processes ignore Ctrl-C (the main process hears it and terminates them), keep the progress
    queue, and run the tracker loop on ``threads`` threads (at most the worker's ``NUMBA_NUM_THREADS``;
    the caller gives each worker its share of the cores)."""
    import signal

    import numba

    global _REPORTS
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _REPORTS = reports
    numba.set_num_threads(max(1, min(int(threads), numba.get_num_threads())))


def _chunk_job(job):
    """One chunk in a worker process: its own results and curves, to be merged in chunk order.

    ``job`` is ``(scenario, trial_indices, seed, policies, step, chunk number, batch_trials)``; the chunk's
    progress goes to the main process as ``(chunk number, fraction)`` on the queue.
    """
    scenario, trial_indices, seed, policies, step, chunk, batch_trials = job
    results = TrialResults()
    curves = Curves(step)

    def report(fraction):
        if _REPORTS is not None:
            _REPORTS.put((chunk, fraction))

    run_chunk(scenario, build_radars(scenario), trial_indices, seed, policies, results, curves=curves,
              progress=report, batch_trials=batch_trials)
    return results, curves


def replay(scenario: Scenario, trial: int = 0, policies: Sequence[str] | None = None,
           progress: Callable[[float, int], None] | None = None) -> Replay:
    """Run one trial of a scenario for every policy and nation and keep every array (for the live view).

    Parameters
    ----------
    scenario : Scenario
    trial : int
        Global trial index, 0 <= trial < scenario.info.trials.
    policies : sequence of str, optional
        Default: the scenario's ``[sharing].policies``.
    progress : callable, optional
        ``progress(done, 1)`` as the trial's work gets done (``done`` from 0 to 1, see :func:`run_scenario`).

    Raises
    ------
    InputError
        Trial out of range or unknown policy.
    """
    if not 0 <= trial < scenario.info.trials:
        raise InputError.single("--trial", trial, f"a trial index in [0, {scenario.info.trials - 1}]")
    radars = build_radars(scenario)
    names = resolve_policy_names(scenario, policies)
    kept = {}
    store = {}

    def keep(policy, nation, truth, dets, tracks, mask, arrival, m):
        kept[(policy, nation)] = tracks
        store["dets"] = dets

    within = None if progress is None else (lambda fraction: progress(fraction, 1))
    truth = run_chunk(scenario, radars, np.array([trial]), scenario.info.seed, names, TrialResults(), keep,
                      progress=within)
    return Replay(scenario, radars, truth, store["dets"], kept)
