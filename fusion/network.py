"""The sharing network: which nation receives whose data, and when.

A *policy* is a set of directed links between nations (:class:`sim.config.LinkConfig`,
grouped in a :class:`sim.config.PolicyConfig`). A link ``A -> B`` carries what A's own
sensors produced (``share = "measurements"``: their detections; ``share = "tracks"``:
the track reports of A's own picture every ``interval`` seconds: tracks from A's radars
and from the measurements A receives, never A's track-fused picture), after ``latency``
seconds. It carries another nation C's data (detections or C's track reports) only when
``C`` is named in ``relay``: relaying is explicit, so no data reaches a nation by
accident. A track report built partly from the receiver's own measurements (KR -> US
measurements, US -> KR tracks) reaches it as correlated data; the fusion sees that in
the report's sensor bitmask (:mod:`fusion.track_fusion`, "Data incest").

Built-in policies (:func:`builtin_policy`):

``isolated``
    No links: each nation tracks with its own sensors.
``bilateral``
    US <-> JP and US <-> KR, no JP <-> KR: the state without GSOMIA (the US-Japan and
    US-ROK alliances share; Japan and Korea do not share directly).
``trilateral``
    All three share (what ``share`` says: measurements by default). Since December 2023 the real-time trilateral missile-warning data
    sharing mechanism relays Japanese and Korean data through US command (US INDOPACOM)
    rather than over a direct Japan-Korea link (U.S. DoD / MND / MoD joint press
    statement, 19 Dec 2023), so the built-in routes JP -> US -> KR and KR -> US -> JP are
    explicit relays at the US hub and take two hops of ``link_latency``.
``trilateral-tracks``
    The links of ``trilateral`` carrying track reports, whatever ``share`` says: each
    nation's own-sensor tracks every ``track_interval`` seconds, fused at the receiver
    (:mod:`fusion.track_fusion`). What the 2023 mechanism shares: processed track data
    (the presumed launch point, flight path and expected impact point, as the ROK
    defence minister described it), not radar plots; measurement sharing
    (``trilateral``) is the ideal it is measured against.

Latencies of the built-in policies (:func:`pair_latencies`): per nation pair, one number,
the latency of that pair's data end to end, in both directions: ``US-JP`` and ``US-KR``
are their one-hop links; ``JP-KR`` is what JP<->KR data takes *through the US hub*
under ``trilateral`` (the route stays JP -> US -> KR: setting the pair does not add a
direct link, which is a custom policy). Its default is the two hops, US-JP + US-KR; a
longer JP-KR is the hub's forwarding time (``LinkConfig.relay_latency`` of the US -> JP
and US -> KR links, for the relayed data only), so the US's own data and the US<->JP,
US<->KR latencies stay as they are. A JP-KR shorter than the two hops is refused: a
relay cannot beat its own links.

The engine needs, per (policy, nation), the delay after measurement at which each
sensor's detections reach that nation's tracker (:func:`sensor_latency_to_nation`,
then :func:`arrival_times`), and the track reports it receives
(:func:`track_routes`). Routes use links of one kind only (a measurement route is made
of measurement links): a hub forwards what it received in the form it received it.

Bad policies (unknown nations, negative latencies, relays that would double count)
are reported by :func:`check_sharing` as :class:`sim.errors.Problem` s with their key
path in the scenario file (``sharing.policy[0].link[2].to``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from sim.config import (
    BUILTIN_POLICIES,
    NATION_PAIRS,
    NATIONS,
    SHARED_KINDS,
    TRACK_FUSION_RULES,
    LinkConfig,
    PolicyConfig,
    SharingConfig,
)
from sim.errors import InputError, Problem

__all__ = [
    "TrackRoute",
    "pair_latencies",
    "builtin_policy",
    "resolve_policies",
    "check_sharing",
    "check_policy",
    "nation_latency",
    "sensor_latency_to_nation",
    "track_routes",
    "arrival_times",
]

# Scenario-file key names of the LinkConfig fields (the file uses ``from``/``to`` and units in names).
_LINK_KEY = {"source": "from", "dest": "to", "latency": "latency_s", "share": "share",
             "interval": "interval_s", "relay": "relay", "relay_latency": "relay_latency_s"}
_RELAY_TOLERANCE = 1e-9  # s: JP-KR = US-JP + US-KR typed as decimals (0.1 + 0.2) is not shorter than the hops


class TrackRoute(NamedTuple):
    """How one origin nation's own-sensor track reports reach a nation.

    Attributes
    ----------
    source : str
        Origin nation (whose own sensors made the tracks).
    latency : float
        Sum of the link latencies along the route (with the relay latencies of its relayed hops), s.
    interval : float
        Report interval of the route, s: the longest interval of its links (a relay
        forwards each report as it arrives, so the slowest hop sets the rate; 0 means
        every output step).
    """

    source: str
    latency: float
    interval: float


# --------------------------------------------------------------------------- policies


def pair_latencies(sharing: SharingConfig) -> dict[str, float]:
    """The latency of each nation pair's data in the built-in policies, defaults resolved.

    Parameters
    ----------
    sharing : SharingConfig
        ``pair_latency`` (``[sharing.pair_latency_s]``, the pairs given) over
        ``link_latency`` (``link_latency_s``, every hop otherwise).

    Returns
    -------
    dict of str to float
        ``{"US-JP": s, "US-KR": s, "JP-KR": s}`` in the order of
        :data:`sim.config.NATION_PAIRS`: each pair given, else ``link_latency`` for
        US-JP and US-KR and the sum of those two for JP-KR (two hops through the US hub).
        Same in both directions. Values are not checked here (:func:`check_sharing`).
    """
    given = dict(sharing.pair_latency)
    out = {"US-JP": float(given.get("US-JP", sharing.link_latency)),
           "US-KR": float(given.get("US-KR", sharing.link_latency))}
    out["JP-KR"] = float(given.get("JP-KR", out["US-JP"] + out["US-KR"]))
    return out


def builtin_policy(name: str, sharing: SharingConfig) -> PolicyConfig:
    """The links of a built-in policy with the scenario's link parameters.

    Parameters
    ----------
    name : str
        ``"isolated"``, ``"bilateral"``, ``"trilateral"`` or ``"trilateral-tracks"``.
    sharing : SharingConfig
        Gives the latency of each nation pair (:func:`pair_latencies`, s), what the
        links share (``share``) and the track report interval ``track_interval`` (s).

    Returns
    -------
    PolicyConfig
        ``isolated``: no links. ``bilateral``: US->JP, JP->US, US->KR, KR->US.
        ``trilateral``: the same four links, with US->JP relaying KR's data and
        US->KR relaying JP's, so JP<->KR data takes two hops through the US hub.
        ``trilateral-tracks``: the links of ``trilateral`` with ``share = "tracks"``.
        US<->JP links take the US-JP latency, US<->KR links the US-KR latency; the
        relaying US -> JP and US -> KR links add ``JP-KR - US-JP - US-KR`` (>= 0) for
        the relayed data, so JP<->KR data arrive JP-KR seconds after they leave (0 extra
        by default: two hops). Track links report every ``track_interval``.

    Raises
    ------
    InputError
        Unknown built-in name (key ``sharing.policies``).
    """
    if name not in BUILTIN_POLICIES:
        raise InputError.single("sharing.policies", name,
                                "a built-in policy: " + ", ".join(BUILTIN_POLICIES))
    if name == "isolated":
        return PolicyConfig(name, ())

    share = "tracks" if name == "trilateral-tracks" else sharing.share
    pair = pair_latencies(sharing)
    # The hub's forwarding time: what JP<->KR data take beyond the two hops (check_sharing refuses < 0).
    hub = max(pair["JP-KR"] - pair["US-JP"] - pair["US-KR"], 0.0)

    def link(a, b, relay=()):
        return LinkConfig(source=a, dest=b, latency=pair["-".join(sorted((a, b), key=NATIONS.index))], share=share,
                          interval=sharing.track_interval, relay=tuple(relay), relay_latency=hub if relay else 0.0)

    if name == "bilateral":
        links = (link("US", "JP"), link("JP", "US"), link("US", "KR"), link("KR", "US"))
    else:  # trilateral: the US hub relays JP <-> KR (DoD/MND/MoD joint statement, Dec 2023)
        links = (link("US", "JP", relay=("KR",)), link("JP", "US"),
                 link("US", "KR", relay=("JP",)), link("KR", "US"))
    return PolicyConfig(name, links)


def resolve_policies(sharing: SharingConfig) -> dict[str, PolicyConfig]:
    """Every policy to run, by name, in the order of ``sharing.policies``.

    Parameters
    ----------
    sharing : SharingConfig

    Returns
    -------
    dict of str to PolicyConfig
        Built-ins from :func:`builtin_policy`, custom policies as given.

    Raises
    ------
    InputError
        With every problem :func:`check_sharing` finds.
    """
    problems = check_sharing(sharing)
    if problems:
        raise InputError(problems)
    custom = {p.name: p for p in sharing.custom}
    return {name: (builtin_policy(name, sharing) if name in BUILTIN_POLICIES else custom[name])
            for name in sharing.policies}


# --------------------------------------------------------------------------- validation


def _finite_nonneg(v) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) \
        and math.isfinite(v) and v >= 0.0


def _carriers(policy: PolicyConfig, origin: str, share: str) -> list[tuple[int, LinkConfig]]:
    """Links (with their index) that carry ``origin``'s data of kind ``share``."""
    return [(j, ln) for j, ln in enumerate(policy.links)
            if ln.share == share and (ln.source == origin or origin in ln.relay)]


def _routes(policy: PolicyConfig, origin: str, dest: str, share: str) -> list[list[int]]:
    """Every simple route (list of link indices) carrying ``origin``'s data to ``dest``.

    Depth-first over the (at most a few dozen) links; a route never revisits a nation.
    """
    carriers = _carriers(policy, origin, share)
    out: list[list[int]] = []

    def walk(at: str, visited: set[str], path: list[int]) -> None:
        for j, ln in carriers:
            if ln.source != at or ln.dest in visited:
                continue
            if ln.dest == dest:
                out.append(path + [j])
            else:
                walk(ln.dest, visited | {ln.dest}, path + [j])

    walk(origin, {origin}, [])
    return out


def check_policy(policy: PolicyConfig, key_prefix: str) -> list[Problem]:
    """Every problem of one policy's links.

    Parameters
    ----------
    policy : PolicyConfig
    key_prefix : str
        Key path of the policy, e.g. ``"sharing.policy[0]"``; link problems are
        reported under ``{key_prefix}.link[j].<file key>``.

    Returns
    -------
    list of Problem
        Empty when the policy is valid. Checked: nations known, ``from != to``,
        ``latency_s``, ``interval_s`` and ``relay_latency_s`` finite and >= 0
        (``relay_latency_s`` 0 where ``relay`` is empty), ``share`` known, at most one
        link per (from, to, share), ``relay``
        naming only third nations (not the sender, whose own data every link carries, nor
        the receiver, which would send data back to its own nation); every relayed
        nation's data actually reaching the relaying sender over links of the same kind;
        no relay cycle; and, where tracks are shared, no nation receiving one origin's
        data over two routes (double counting: the fused track would count the same
        measurements twice).
    """
    probs: list[Problem] = []
    nations_ok = True
    for j, ln in enumerate(policy.links):
        lp = f"{key_prefix}.link[{j}]"
        for fld in ("source", "dest"):
            v = getattr(ln, fld)
            if v not in NATIONS:
                nations_ok = False
                probs.append(Problem(f"{lp}.{_LINK_KEY[fld]}", v, "a nation code: " + ", ".join(NATIONS)))
        if ln.source in NATIONS and ln.source == ln.dest:
            probs.append(Problem(f"{lp}.to", ln.dest, "must differ from 'from' (a nation always has its own data)"))
        if not _finite_nonneg(ln.latency):
            probs.append(Problem(f"{lp}.latency_s", ln.latency, "a finite number of seconds >= 0"))
        if not _finite_nonneg(ln.interval):
            probs.append(Problem(f"{lp}.interval_s", ln.interval, "a finite number of seconds >= 0"))
        if not _finite_nonneg(ln.relay_latency):
            probs.append(Problem(f"{lp}.relay_latency_s", ln.relay_latency, "a finite number of seconds >= 0"))
        elif ln.relay_latency > 0 and not ln.relay:
            probs.append(Problem(f"{lp}.relay_latency_s", ln.relay_latency,
                                 "0 on a link that relays nothing (relay = []): it delays relayed data only"))
        if ln.share not in SHARED_KINDS:
            probs.append(Problem(f"{lp}.share", ln.share, "one of: " + ", ".join(SHARED_KINDS)))
        for k, r in enumerate(ln.relay):
            if r not in NATIONS:
                nations_ok = False
                probs.append(Problem(f"{lp}.relay[{k}]", r, "a nation code: " + ", ".join(NATIONS)))
            elif r == ln.dest:
                probs.append(Problem(f"{lp}.relay[{k}]", r,
                                     f"must not relay {r}'s own data back to {r}; "
                                     "relay names third nations only"))
            elif r == ln.source:
                probs.append(Problem(f"{lp}.relay[{k}]", r,
                                     f"a link always carries its sender's ({r}) own data; "
                                     "relay names third nations only"))
        if len(set(ln.relay)) != len(ln.relay):
            probs.append(Problem(f"{lp}.relay", list(ln.relay), "each nation at most once"))
        first = next((i for i, other in enumerate(policy.links[:j])
                      if (other.source, other.dest, other.share) == (ln.source, ln.dest, ln.share)), None)
        if first is not None:  # new-user trial: two JP -> KR links with different latencies were taken silently
            probs.append(Problem(f"{lp}.from", ln.source,
                                 f"a second {ln.source} -> {ln.dest} {ln.share} link (link[{first}] is one); one "
                                 "link per direction and kind of data"))
    if probs or not nations_ok:
        return probs  # the route checks below assume well-formed links

    for share in SHARED_KINDS:
        for origin in NATIONS:
            carriers = _carriers(policy, origin, share)
            # A relay forwards data it has: the relaying sender must receive origin's data first.
            reach = {origin}
            changed = True
            while changed:
                changed = False
                for _, ln in carriers:
                    if ln.source in reach and ln.dest not in reach:
                        reach.add(ln.dest)
                        changed = True
            for j, ln in carriers:
                if ln.source != origin and ln.source not in reach:
                    k = ln.relay.index(origin)
                    probs.append(Problem(
                        f"{key_prefix}.link[{j}].relay[{k}]", origin,
                        f"{ln.source} never receives {origin}'s {share} over links sharing {share}; "
                        f"relay only data the sender receives"))
            # Relay cycle: a carrier whose destination can reach its source again over carriers.
            for j, ln in carriers:
                if ln.source == origin:
                    continue
                back = _reachable(carriers, ln.dest)
                if ln.source in back:
                    k = ln.relay.index(origin)
                    probs.append(Problem(
                        f"{key_prefix}.link[{j}].relay[{k}]", origin,
                        f"relay cycle: {origin}'s {share} would circulate {ln.source} -> {ln.dest} -> "
                        f"... -> {ln.source}; remove one relay"))
    # Double counting where tracks are shared: one origin, one route, one kind per receiver.
    for dest in NATIONS:
        for origin in NATIONS:
            if origin == dest:
                continue
            track = _routes(policy, origin, dest, "tracks")
            meas = _routes(policy, origin, dest, "measurements")
            if len(track) > 1 or (track and meas):
                shown = [" -> ".join([origin] + [policy.links[j].dest for j in r]) + f" ({kind})"
                         for kind, rs in (("tracks", track), ("measurements", meas)) for r in rs]
                probs.append(Problem(
                    key_prefix, "; ".join(shown),
                    f"{dest} would receive {origin}'s data over {len(shown)} routes while tracks are "
                    f"shared (double counting); keep one route per origin nation"))
    return probs


def _reachable(carriers, start: str) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        at = stack.pop()
        for _, ln in carriers:
            if ln.source == at and ln.dest not in seen:
                seen.add(ln.dest)
                stack.append(ln.dest)
    return seen


def check_sharing(sharing: SharingConfig, key_prefix: str = "sharing") -> list[Problem]:
    """Every problem of a ``[sharing]`` section, so a validator can report them all.

    Parameters
    ----------
    sharing : SharingConfig
    key_prefix : str
        Key path of the section in the file.

    Returns
    -------
    list of Problem
        Empty when valid. Checked: ``policies`` non-empty, unique, each a built-in or
        custom name; ``link_latency_s`` finite >= 0; ``pair_latency_s`` keyed by
        :data:`sim.config.NATION_PAIRS` with finite values >= 0 and JP-KR no shorter than
        US-JP + US-KR (the built-in trilateral relays it through the US hub; key
        ``{key_prefix}.pair_latency_s.JP-KR``); ``track_interval_s`` finite > 0;
        ``share`` and ``track_fusion`` known; custom names non-empty, unique and not a
        built-in name; each custom policy by :func:`check_policy` (key
        ``{key_prefix}.policy[i]``). The built-in policies are valid by construction.
    """
    probs: list[Problem] = []
    p = key_prefix
    customs = [c.name for c in sharing.custom]
    known = BUILTIN_POLICIES + tuple(customs)
    if not sharing.policies:
        probs.append(Problem(f"{p}.policies", list(sharing.policies), "a non-empty array of policy names"))
    seen: set[str] = set()
    for k, name in enumerate(sharing.policies):
        if name not in known:
            probs.append(Problem(f"{p}.policies[{k}]", name, "unknown policy; allowed: " + ", ".join(known)))
        elif name in seen:
            probs.append(Problem(f"{p}.policies[{k}]", name, "each policy at most once"))
        seen.add(name)
    if not _finite_nonneg(sharing.link_latency):
        probs.append(Problem(f"{p}.link_latency_s", sharing.link_latency, "a finite number of seconds >= 0"))
    pairs_ok = _finite_nonneg(sharing.link_latency)
    for pair, value in sharing.pair_latency:
        if pair not in NATION_PAIRS:
            pairs_ok = False
            probs.append(Problem(f"{p}.pair_latency_s.{pair}", value,
                                 "unknown nation pair; allowed: " + ", ".join(NATION_PAIRS)))
        elif not _finite_nonneg(value):
            pairs_ok = False
            probs.append(Problem(f"{p}.pair_latency_s.{pair}", value, "a finite number of seconds >= 0"))
    if pairs_ok and "JP-KR" in dict(sharing.pair_latency):
        lat = pair_latencies(sharing)
        hops = lat["US-JP"] + lat["US-KR"]
        if lat["JP-KR"] < hops - _RELAY_TOLERANCE:
            probs.append(Problem(
                f"{p}.pair_latency_s.JP-KR", dict(sharing.pair_latency)["JP-KR"],
                f"at least US-JP + US-KR = {lat['US-JP']:g} + {lat['US-KR']:g} = {hops:g} s: trilateral relays "
                "JP<->KR data through the US hub; a direct JP-KR link is a custom policy ([[sharing.policy]])"))
    if not (_finite_nonneg(sharing.track_interval) and sharing.track_interval > 0):
        probs.append(Problem(f"{p}.track_interval_s", sharing.track_interval, "a finite number of seconds > 0"))
    if sharing.share not in SHARED_KINDS:
        probs.append(Problem(f"{p}.share", sharing.share, "one of: " + ", ".join(SHARED_KINDS)))
    if sharing.track_fusion not in TRACK_FUSION_RULES:
        probs.append(Problem(f"{p}.track_fusion", sharing.track_fusion, "one of: " + ", ".join(TRACK_FUSION_RULES)))
    names: set[str] = set()
    for i, pol in enumerate(sharing.custom):
        pp = f"{p}.policy[{i}]"
        if not isinstance(pol.name, str) or not pol.name:
            probs.append(Problem(f"{pp}.name", pol.name, "a non-empty policy name"))
        elif pol.name in BUILTIN_POLICIES:
            probs.append(Problem(f"{pp}.name", pol.name,
                                 "must differ from the built-in policies " + ", ".join(BUILTIN_POLICIES)))
        elif pol.name in names:
            probs.append(Problem(f"{pp}.name", pol.name, "must be unique among custom policies"))
        names.add(pol.name)
        probs.extend(check_policy(pol, pp))
    return probs


# --------------------------------------------------------------------------- routing


def nation_latency(policy: PolicyConfig, origin: str, dest: str, share: str = "measurements") -> float:
    """Shortest link latency over which ``origin``'s own data of kind ``share`` reaches ``dest``.

    Parameters
    ----------
    policy : PolicyConfig
        A valid policy (see :func:`check_policy`).
    origin, dest : str
        Nation codes.
    share : str
        ``"measurements"`` or ``"tracks"``; only links of that kind form routes.

    Returns
    -------
    float
        0 for ``origin == dest``; the smallest sum of link latencies over the routes
        (a first hop from ``origin``, further hops naming ``origin`` in ``relay`` and
        adding their ``relay_latency``), s; ``inf`` if ``dest`` never receives it.

    Notes
    -----
    Dijkstra's shortest path (Dijkstra 1959) on the graph of links that carry ``origin``'s
    data; with three nations this is a handful of comparisons.
    """
    if origin == dest:
        return 0.0
    carriers = _carriers(policy, origin, share)
    best = {origin: 0.0}
    done: set[str] = set()
    while True:
        open_ = [(d, n) for n, d in best.items() if n not in done]
        if not open_:
            return math.inf
        d, at = min(open_)
        if at == dest:
            return d
        done.add(at)
        for _, ln in carriers:
            if ln.source == at and ln.dest not in done:
                nd = d + _hop_latency(ln, origin)
                if nd < best.get(ln.dest, math.inf):
                    best[ln.dest] = nd


def sensor_latency_to_nation(policy: PolicyConfig, nation: str, sensor_nations: Sequence[str],
                             sensor_latency: Sequence[float]) -> np.ndarray:
    """Delay after measurement at which each sensor's detections reach ``nation``'s tracker.

    Parameters
    ----------
    policy : PolicyConfig
        A valid policy.
    nation : str
        Receiving nation.
    sensor_nations : sequence of str, length S
        Nation of each sensor (index = the ``Detections.sensor`` index).
    sensor_latency : sequence of float, length S
        Each radar's own reporting latency to its national tracker, s.

    Returns
    -------
    ndarray, shape (S,)
        :math:`\\tau_s = \\lambda_s + L(n_s \\to \\text{nation})`, the radar's latency plus the
        shortest measurement-link route latency (:func:`nation_latency`, 0 for own
        sensors), s; ``inf`` where the nation never receives the sensor's detections.
        Track links do not deliver measurements.

    Raises
    ------
    ValueError
        If the two sequences differ in length.
    """
    lam = np.asarray(sensor_latency, dtype=np.float64)
    if lam.shape != (len(sensor_nations),):
        raise ValueError(f"sensor_latency has shape {lam.shape}, expected ({len(sensor_nations)},)")
    hop = {n: nation_latency(policy, n, nation, "measurements") for n in set(sensor_nations)}
    return lam + np.array([hop[n] for n in sensor_nations], dtype=np.float64)


def _hop_latency(link: LinkConfig, origin: str) -> float:
    """Latency of ``origin``'s data over one link, s: ``latency``, plus ``relay_latency`` when relayed."""
    return float(link.latency) + (float(link.relay_latency) if link.source != origin else 0.0)


def _route_latency(policy: PolicyConfig, route: list[int], origin: str) -> float:
    """Sum of the hop latencies of ``origin``'s data along a route of link indices, s."""
    return float(sum(_hop_latency(policy.links[j], origin) for j in route))


def track_routes(policy: PolicyConfig, nation: str) -> list[TrackRoute]:
    """The track reports ``nation`` receives: one route per origin nation over track links.

    Parameters
    ----------
    policy : PolicyConfig
        A valid policy (:func:`check_policy` guarantees at most one track route per origin).
    nation : str
        Receiving nation.

    Returns
    -------
    list of TrackRoute
        ``(source, latency, interval)`` in the order of :data:`sim.config.NATIONS`:
        the tracks of ``source``'s own picture (from its radars and the measurements it
        receives; never its track-fused picture, which would re-share reports),
        sampled every ``interval`` s and delayed by ``latency`` s. Where a policy (not
        validated) offers several routes the shortest is taken.
    """
    out = []
    for origin in NATIONS:
        if origin == nation:
            continue
        routes = _routes(policy, origin, nation, "tracks")
        if not routes:
            continue
        best = min(routes, key=lambda r: _route_latency(policy, r, origin))
        out.append(TrackRoute(origin, _route_latency(policy, best, origin),
                              float(max(policy.links[j].interval for j in best))))
    return out


def arrival_times(det_time, det_sensor, delay_by_sensor) -> tuple[np.ndarray, np.ndarray]:
    """Which detections reach a tracker, and when.

    Parameters
    ----------
    det_time : array_like, shape (K,)
        Measurement times, s (``Detections.time``).
    det_sensor : array_like of int, shape (K,)
        Sensor indices (``Detections.sensor``).
    delay_by_sensor : array_like, shape (S,)
        From :func:`sensor_latency_to_nation`, s (``inf`` = never).

    Returns
    -------
    mask : ndarray of bool, shape (K,)
        True where the detection reaches the tracker.
    arrival : ndarray, shape (K,)
        Arrival time ``det_time + delay``, s (``inf`` where not ``mask``).
    """
    delay = np.asarray(delay_by_sensor, dtype=np.float64)[np.asarray(det_sensor, dtype=np.intp)]
    arrival = np.asarray(det_time, dtype=np.float64) + delay
    return np.isfinite(delay), arrival
