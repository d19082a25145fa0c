"""Frozen configuration dataclasses built from a scenario file.

Values are in SI units inside (m, s, rad, m/s) unless the field name says
otherwise; the scenario file uses human units with the unit in the key name
(``apogee_km``, ``lat_deg``) and :mod:`sim.scenario` converts them. Field
names mirror the file keys without the unit suffix where the unit changes.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

SHAPES = ("minimum-energy", "lofted", "depressed")
MANEUVERS = ("none", "pull-up")
NATIONS = ("US", "JP", "KR")
# the nation pairs of [sharing.pair_latency_s], each written once in the order of NATIONS
NATION_PAIRS = ("US-JP", "US-KR", "JP-KR")
BUILTIN_POLICIES = ("isolated", "bilateral", "trilateral", "trilateral-tracks")
# what a scenario runs when [sharing].policies is not given (trilateral-tracks is asked for by name)
DEFAULT_POLICIES = ("isolated", "bilateral", "trilateral")
SHARED_KINDS = ("measurements", "tracks")
FILTERS = ("ekf", "ukf", "imm")
ASSOCIATIONS = ("jpda", "gnn")
DELETIONS = ("quality", "missed")
INITIATIONS = ("batch", "single")
JPDA_PDS = ("fixed", "radar")
WHEN_FULL = ("replace", "drop")
REGISTRATIONS = ("estimate", "none")
TRACK_FUSION_RULES = ("covariance-intersection", "naive", "best-track")


@dataclass(frozen=True)
class ScenarioInfo:
    """``[scenario]``: the vignette and the Monte Carlo set-up.

    Attributes
    ----------
    name, description : str
    event_utc : datetime.datetime
        Real UTC date-time of the event (display only); epoch t = 0.
    seed : int
        Root seed (>= 0), see :mod:`sim.rng`.
    trials : int
        Monte Carlo trials (>= 1).
    dt : float
        Truth sampling and tracker output step, s.
    duration : float or None
        Simulated time span, s, counted from the earliest launch any trial can have (not from t = 0); None
        means until the latest impact any trial can have (a bound fixed by the threats).
    sources : tuple of str
        Public sources of the vignette.
    """

    name: str
    description: str
    event_utc: _dt.datetime
    seed: int
    trials: int
    dt: float = 1.0
    duration: float | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dispersion:
    """``[threat.dispersion]``: one-sigma per-trial variations (all >= 0).

    Attributes
    ----------
    launch_time : float
        s.
    burnout_speed : float
        m/s (file: ``burnout_speed_mps``).
    azimuth : float
        Aim azimuth, rad (file: ``azimuth_deg``).
    ballistic_coeff_frac : float
        Relative sigma of the ballistic coefficient (0.05 = 5 %).
    """

    launch_time: float = 0.0
    burnout_speed: float = 0.0
    azimuth: float = 0.0
    ballistic_coeff_frac: float = 0.0


@dataclass(frozen=True)
class ThreatConfig:
    """``[[threat]]``: one launch.

    Either ``bearing`` and ``range`` or ``target_lat``/``target_lon`` are set.
    Angles in radians, distances in metres.
    """

    name: str
    missile: str
    launch_lat: float
    launch_lon: float
    launch_time: float = 0.0
    bearing: float | None = None
    range: float | None = None
    target_lat: float | None = None
    target_lon: float | None = None
    shape: str = "minimum-energy"
    apogee: float | None = None
    maneuver: str = "none"
    stage_object: bool = True
    dispersion: Dispersion = field(default_factory=Dispersion)


@dataclass(frozen=True)
class SensorConfig:
    """``[[sensor]]``: a catalog radar, optionally with fields overridden.

    Attributes
    ----------
    name : str
        Display name, unique in the scenario (defaults to the catalog name).
    catalog : str
        Key of :data:`sensors.catalog.CATALOG`.
    overrides : tuple of (str, object)
        File keys and values as written in the file (human units), already
        validated; applied by :func:`sensors.catalog.build_radar`.
    """

    name: str
    catalog: str
    overrides: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class LinkConfig:
    """One directed sharing link (``[[sharing.policy.link]]``).

    Attributes
    ----------
    source, dest : str
        Nation codes (file keys ``from`` and ``to``).
    latency : float
        s, >= 0.
    share : str
        ``"measurements"`` (the sender's radars' detections) or ``"tracks"`` (the track
        reports of the sender's own picture: tracks from its radars and from the
        detections it receives; never its track-fused picture).
    interval : float
        Track report interval, s (for ``share = "tracks"``), >= 0.
    relay : tuple of str
        Nations whose data this link relays onward besides the sender's own
        (empty: only the sender's own data, as ``share`` defines it).
    relay_latency : float
        s, >= 0 (file key ``relay_latency_s``): added to ``latency`` for the relayed
        nations' data only, the time the sending hub takes to forward what it received
        (the built-in ``trilateral`` uses it to give JP<->KR data the end-to-end latency
        of ``[sharing.pair_latency_s] JP-KR``). 0 when ``relay`` is empty.
    """

    source: str
    dest: str
    latency: float = 0.0
    share: str = "measurements"
    interval: float = 0.0
    relay: tuple[str, ...] = ()
    relay_latency: float = 0.0


@dataclass(frozen=True)
class PolicyConfig:
    """A named custom sharing policy (``[[sharing.policy]]``)."""

    name: str
    links: tuple[LinkConfig, ...] = ()


@dataclass(frozen=True)
class SharingConfig:
    """``[sharing]``: which policies to compare and their link parameters.

    Attributes
    ----------
    policies : tuple of str
        Names to run: built-ins and/or custom policy names.
    link_latency : float
        One-hop latency of built-in links, s (the JP<->KR trilateral route
        relays through the US hub, so it takes two hops), unless ``pair_latency``
        sets the pair's.
    pair_latency : tuple of (str, float)
        ``[sharing.pair_latency_s]`` as given: ``(pair, s)`` with pair one of
        :data:`NATION_PAIRS`, the latency of that pair's data in the built-in
        policies (end to end: JP<->KR under ``trilateral`` still relays through the US
        hub); pairs not given follow ``link_latency`` (JP-KR: the US-JP plus the
        US-KR latency). :func:`fusion.network.pair_latencies` resolves them.
    share : str
        What the links of ``bilateral`` and ``trilateral`` share: ``"measurements"`` or
        ``"tracks"`` (``trilateral-tracks`` always shares tracks).
    track_interval : float
        Track report interval of built-in track links, s.
    track_fusion : str
        Track-to-track rule: ``"covariance-intersection"``, ``"naive"``, ``"best-track"``.
    custom : tuple of PolicyConfig
    """

    policies: tuple[str, ...] = DEFAULT_POLICIES
    link_latency: float = 2.0
    pair_latency: tuple[tuple[str, float], ...] = ()
    share: str = "measurements"
    track_interval: float = 5.0
    track_fusion: str = "covariance-intersection"
    custom: tuple[PolicyConfig, ...] = ()


@dataclass(frozen=True)
class TrackerConfig:
    """``[tracker]``: the estimator every nation runs.

    Attributes
    ----------
    filter : str
        ``"ekf"``, ``"ukf"`` or ``"imm"``.
    process_noise : float
        White-noise acceleration spectral density sigma of the ballistic model (the
        EKF and UKF, and the IMM's ballistic mode), m/s^2 (file ``process_noise_mps2``).
        Default 1e-4: in vacuum the truth's motion is the tracker's own model
        (point mass + J2 gravity, Earth-rotation terms), so only rounding and
        linearisation are unmodelled; a 1 m/s^2 level grew a coasting RV track's
        sigma past 50 km in the Hwasong-15 midcourse gap, and 1e-2 and 1e-3 left
        its midcourse NEES at 0.1 and 0.3 of its 6 (US isolated, trial 0,
        measured). In the atmosphere the ballistic-coefficient noise is added
        (:func:`fusion.motion_kernels.add_drag_process_noise`); in boost the IMM's
        thrust mode carries its own level (:data:`fusion.tracker.IMM_THRUST_NOISE`).
    gate_probability : float
        Chi-square gate probability in (0, 1).
    association : str
        ``"jpda"`` (default): confirmed tracks that share gated detections are
        updated by joint probabilistic data association, the rest by global
        nearest neighbour; ``"gnn"``: global nearest neighbour only
        (:mod:`fusion.association`).
    confirm_m, confirm_n : int
        M-of-N confirmation (1 <= M <= N).
    delete_after_missed : int
        Missed scans (revisits of the last updating sensor) after which a track
        is deleted when tentative, or when confirmed under ``deletion =
        "missed"``; under ``"quality"`` a confirmed track is coasting from then
        on (>= 1).
    initiation : str
        ``"batch"`` (default): a tentative track (started from one plot, used for
        gating) is confirmed at its M-th hit only if a batch least-squares fit of
        its M plots on the ballistic model succeeds (:mod:`fusion.initiation`), and
        it starts from that fit; ``"single"``: the one-plot start with its
        velocity prior, updated by the filter, confirmed on hits alone (the
        textbook baseline; NEES of 1e5 on sparse descent data, issue 25).
    jpda_pd : str
        Detection probability of a confirmed track in the JPDA* weights:
        ``"fixed"`` (default), :data:`fusion.tracker.JPDA_DETECTION_PROBABILITY`;
        ``"radar"``, the radar's own single-dwell P_D at the track's predicted
        range for the RCS its plots imply (:func:`fusion.loop._track_pd`).
        Measured on Hwasong-15 (20 trials): "radar" halves the isolated rows'
        trials with an overconfident track after RV/stage separation (US 6 -> 3)
        but made Korea's trilateral median efficiency 16.6 against 3.5, hence
        not the default.
    registration : str
        ``"estimate"`` (default): the nation estimates the registration biases (range,
        azimuth, elevation, site) of every radar it fuses, one bias vector per trial
        shared by all its tracks, and corrects its tracks with them
        (:mod:`fusion.registration_kernels`: Friedland's two-stage estimator in the
        multi-target form of Lin, Bar-Shalom & Kirubarajan 2005); ``"none"``: the
        radars are taken as unbiased (the tracker of before issue 20). Without
        biases in the catalog the two are the same.
    deletion : str
        ``"quality"`` (default): a confirmed track is deleted only when its
        position sigma exceeds ``max_position_sigma`` or it is three sigmas
        below the ground (impacted), so an exo-atmospheric track coasts
        through coverage gaps and the next radar's data gate on it (custody);
        ``"missed"``: also after ``delete_after_missed`` missed scans.
    miss_deletion_probability : float
        A confirmed track is deleted once the radars that had seen it
        have looked at it (a dwell whose beam held it) and seen nothing in its
        gate so often that its object, were it there, would have been missed by
        all those looks with probability below this: the product of
        :math:`1 - P_D P_G` over the looks since its last hit, :math:`P_D` the
        radar's own for the track's RCS estimate (:func:`fusion.loop._look_misses`;
        Blackman & Popoli 1999, sec. 6.2). Coverage gaps hold no looks, so
        coasting through them is unchanged. 0 turns the rule off. Default 1e-3
        (the false-deletion probability of a real object's track per coast).
        Why: ghost tracks formed after RV/stage separation (each track took one
        object's plots from one radar and the other's from another) lost their
        plots and coasted to impact with NEES 1e3-1e4 (Hwasong-15, issue 25).
    max_position_sigma : float
        Delete when the position sigma exceeds this, m (file ``max_position_sigma_km``).
    init_max_speed : float
        Speed bound of the initiation velocity prior, m/s (file ``init_max_speed_mps``).
    max_tracks : int
        Track slots per trial (>= 1).
    when_full : str
        What a plot that finds every slot taken does: ``"replace"`` takes the
        slot of the one-plot tentative track that has missed the most revisits since its plot
        (at least one; :func:`fusion.loop._one_plot_tentative`; on the salvo with 16 slots, sharing
        had turned away 7,327 plots of a trial and made Korea's firm tracks 2-59 s later
        than isolated); ``"drop"`` (default): the plot starts no track. Not the default because on
        Hwasong-15 (20 trials, 8 slots) "replace" left the trilateral rows' ensemble NEES above its band
        on 84-86 % of steps against 1-2 % with "drop" (measured 2026-12-08, cause not found); the salvo
        scenario sets it.
    """

    filter: str = "imm"
    process_noise: float = 1e-4
    gate_probability: float = 0.9997
    association: str = "jpda"
    confirm_m: int = 3
    confirm_n: int = 5
    delete_after_missed: int = 5
    deletion: str = "quality"
    initiation: str = "batch"
    jpda_pd: str = "fixed"
    miss_deletion_probability: float = 1e-3
    registration: str = "estimate"
    max_position_sigma: float = 50e3
    init_max_speed: float = 7500.0
    max_tracks: int = 8
    when_full: str = "drop"


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: thresholds of the figures of merit.

    Attributes
    ----------
    ipp_threshold : float
        IPP error below which warning counts, m (file ``ipp_threshold_km``, default 50 km).
    ipp_time_to_go : float
        Time to go at which the IPP error is tabulated, s (default 120 s).
    gospa_cutoff : float
        GOSPA cut-off c, m (file ``gospa_cutoff_km``); p = 2, alpha = 2.
    firm_track_hold : float
        A track is firm once confirmed on the object and held on it this long
        (gaps of a few steps allowed), s (file ``firm_track_hold_s``). A hold
        window rather than "until impact": after burnout a track may rightly
        follow the spent stage while the RV is picked up by another.
    """

    ipp_threshold: float = 50e3
    ipp_time_to_go: float = 120.0
    gospa_cutoff: float = 10e3
    firm_track_hold: float = 30.0


@dataclass(frozen=True)
class Scenario:
    """A whole validated scenario file.

    Attributes
    ----------
    path : str
        File it was read from.
    info : ScenarioInfo
    threats : tuple of ThreatConfig
    sensors : tuple of SensorConfig
    sharing : SharingConfig
    tracker : TrackerConfig
    metrics : MetricsConfig
    file_sha256 : str
        SHA-256 of the file's bytes, hex ("" when not built from a file).
    overrides : tuple of str
        Settings overridden on top of the file, as ``KEY=VALUE`` texts (``--set``).
    """

    path: str
    info: ScenarioInfo
    threats: tuple[ThreatConfig, ...]
    sensors: tuple[SensorConfig, ...]
    sharing: SharingConfig = field(default_factory=SharingConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    file_sha256: str = ""
    overrides: tuple[str, ...] = ()
