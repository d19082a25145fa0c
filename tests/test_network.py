"""Routing of the sharing policies (fusion.network): who receives whose data, when."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from fusion.network import (
    TrackRoute,
    arrival_times,
    builtin_policy,
    check_policy,
    check_sharing,
    nation_latency,
    pair_latencies,
    resolve_policies,
    sensor_latency_to_nation,
    track_routes,
)
from sim.config import LinkConfig, PolicyConfig, SharingConfig
from sim.errors import InputError

# Sensors of a small notional laydown: index -> nation, own reporting latency (s).
SENSOR_NATIONS = ("US", "JP", "KR", "KR", "US")
SENSOR_LAT = np.array([0.5, 1.0, 0.25, 0.75, 2.0])
INF = math.inf


def _delays(policy, nation):
    return sensor_latency_to_nation(policy, nation, SENSOR_NATIONS, SENSOR_LAT)


def test_isolated_gives_only_own_sensors():
    pol = builtin_policy("isolated", SharingConfig())
    assert pol.links == ()
    for nation in ("US", "JP", "KR"):
        d = _delays(pol, nation)
        own = np.array([n == nation for n in SENSOR_NATIONS])
        np.testing.assert_array_equal(d[own], SENSOR_LAT[own])  # own data: the radar's latency only
        assert np.all(np.isinf(d[~own]))
        assert track_routes(pol, nation) == []


def test_bilateral_us_hub_without_jp_kr():
    L = 3.0
    pol = builtin_policy("bilateral", SharingConfig(link_latency=L))
    us, jp, kr = (_delays(pol, n) for n in ("US", "JP", "KR"))
    # the US receives everybody's data after one hop
    np.testing.assert_array_equal(us, SENSOR_LAT + np.array([0, L, L, L, 0]))
    # JP gets US data but never KR data, and vice versa: the state without GSOMIA
    np.testing.assert_array_equal(jp, [0.5 + L, 1.0, INF, INF, 2.0 + L])
    np.testing.assert_array_equal(kr, [0.5 + L, INF, 0.25, 0.75, 2.0 + L])


def test_trilateral_jp_kr_two_hops_by_default():
    L = 2.0
    sharing = SharingConfig()
    assert sharing.link_latency == L
    pol = builtin_policy("trilateral", sharing)
    assert nation_latency(pol, "KR", "JP") == 2 * L
    assert nation_latency(pol, "JP", "KR") == 2 * L
    assert nation_latency(pol, "US", "JP") == L
    jp = _delays(pol, "JP")
    np.testing.assert_array_equal(jp, [0.5 + L, 1.0, 0.25 + 2 * L, 0.75 + 2 * L, 2.0 + L])
    kr = _delays(pol, "KR")
    np.testing.assert_array_equal(kr, [0.5 + L, 1.0 + 2 * L, 0.25, 0.75, 2.0 + L])
    # the relay is explicit in the link list: the hub forwards the third nation's data
    relays = {(ln.source, ln.dest): ln.relay for ln in pol.links}
    assert relays[("US", "JP")] == ("KR",) and relays[("US", "KR")] == ("JP",)
    assert check_policy(pol, "p") == []


def test_link_latency_override_applies_to_builtins():
    pol = builtin_policy("trilateral", SharingConfig(link_latency=0.4))
    assert nation_latency(pol, "KR", "JP") == pytest.approx(0.8)
    assert all(ln.latency == 0.4 for ln in pol.links)


def test_track_links_deliver_tracks_not_measurements():
    sharing = SharingConfig(share="tracks", link_latency=1.5, track_interval=4.0)
    pol = builtin_policy("trilateral", sharing)
    # no measurement reaches another nation...
    jp = _delays(pol, "JP")
    np.testing.assert_array_equal(np.isfinite(jp), [False, True, False, False, False])
    # ...but tracks do, the KR ones two hops late through the US hub
    assert track_routes(pol, "JP") == [TrackRoute("US", 1.5, 4.0), TrackRoute("KR", 3.0, 4.0)]
    assert track_routes(pol, "US") == [TrackRoute("JP", 1.5, 4.0), TrackRoute("KR", 1.5, 4.0)]
    assert check_policy(pol, "p") == []
    assert track_routes(builtin_policy("bilateral", sharing), "KR") == [TrackRoute("US", 1.5, 4.0)]


def test_custom_link_list_and_shortest_route():
    # a direct JP->KR link (hypothetical GSOMIA direct feed) beside a relay via the US hub
    pol = PolicyConfig("direct", (
        LinkConfig("JP", "KR", latency=5.0),
        LinkConfig("JP", "US", latency=1.0),
        LinkConfig("US", "KR", latency=1.0, relay=("JP",)),
    ))
    assert check_policy(pol, "p") == []  # two measurement routes are fine: the tracker takes the first
    assert nation_latency(pol, "JP", "KR") == 2.0  # the relay beats the slow direct link
    kr = _delays(pol, "KR")
    np.testing.assert_array_equal(kr, [0.5 + 1.0, 1.0 + 2.0, 0.25, 0.75, 2.0 + 1.0])
    # one-way: KR shares nothing
    assert np.all(np.isinf(_delays(pol, "JP")[[2, 3]]))
    assert np.all(np.isinf(_delays(pol, "US")[[2, 3]]))


def test_a_second_link_of_one_direction_and_kind_is_refused():
    """Two JP -> KR measurement links with different latencies: which one counts? (new-user trial: taken
    silently)."""
    twice = PolicyConfig("twice", (LinkConfig("JP", "KR", latency=1.0), LinkConfig("US", "KR", latency=1.0),
                                   LinkConfig("JP", "KR", latency=9.0)))
    probs = check_policy(twice, "sharing.policy[0]")
    assert [(p.key_path, p.value) for p in probs] == [("sharing.policy[0].link[2].from", "JP")]
    assert "a second JP -> KR measurements link (link[0] is one)" in probs[0].allowed


def test_relay_semantics_only_sender_own_data_unless_named():
    no_relay = PolicyConfig("chain", (LinkConfig("KR", "US", 1.0), LinkConfig("US", "JP", 1.0)))
    # US->JP carries only US sensors: KR data stops at the US
    assert nation_latency(no_relay, "KR", "JP") == INF
    assert nation_latency(no_relay, "US", "JP") == 1.0
    relay = PolicyConfig("chain", (LinkConfig("KR", "US", 1.0), LinkConfig("US", "JP", 1.0, relay=("KR",))))
    assert nation_latency(relay, "KR", "JP") == 2.0
    # a relay cannot forward data the relaying nation never receives
    dangling = PolicyConfig("x", (LinkConfig("US", "JP", 1.0, relay=("KR",)),))
    probs = check_policy(dangling, "sharing.policy[0]")
    assert [p.key_path for p in probs] == ["sharing.policy[0].link[0].relay[0]"]
    assert nation_latency(dangling, "KR", "JP") == INF


def test_arrival_times_vectorized():
    pol = builtin_policy("bilateral", SharingConfig(link_latency=2.0))
    delay = _delays(pol, "JP")
    t = np.array([0.0, 1.0, 1.0, 3.0, 4.0, 4.0])
    s = np.array([0, 1, 2, 3, 4, 1])
    mask, arr = arrival_times(t, s, delay)
    np.testing.assert_array_equal(mask, [True, True, False, False, True, True])
    np.testing.assert_array_equal(arr, [2.5, 2.0, INF, INF, 8.0, 5.0])


def test_resolve_policies_order_and_custom():
    custom = PolicyConfig("us-only-listens", (LinkConfig("JP", "US", 0.5), LinkConfig("KR", "US", 0.5)))
    sharing = SharingConfig(policies=("trilateral", "us-only-listens", "isolated"), custom=(custom,))
    out = resolve_policies(sharing)
    assert list(out) == ["trilateral", "us-only-listens", "isolated"]
    assert out["us-only-listens"] is custom
    assert out["trilateral"] == builtin_policy("trilateral", sharing)


def _paths(probs):
    return [p.key_path for p in probs]


def test_bad_links_each_named_by_key_path():
    bad = PolicyConfig("bad", (
        LinkConfig("US", "JP", 1.0),
        LinkConfig("US", "CN", 1.0),                       # unknown nation
        LinkConfig("JP", "US", -1.0, interval=-2.0),        # negative latency and interval
        LinkConfig("KR", "US", 1.0, share="video"),         # unknown kind
        LinkConfig("KR", "KR", 1.0),                        # self link
        LinkConfig("XX", "JP", 1.0, relay=("RU",)),         # unknown sender and relay nation
    ))
    sharing = SharingConfig(policies=("bad",), custom=(bad,))
    probs = check_sharing(sharing)
    assert _paths(probs) == [
        "sharing.policy[0].link[1].to",
        "sharing.policy[0].link[2].latency_s",
        "sharing.policy[0].link[2].interval_s",
        "sharing.policy[0].link[3].share",
        "sharing.policy[0].link[4].to",
        "sharing.policy[0].link[5].from",
        "sharing.policy[0].link[5].relay[0]",
    ]
    assert probs[0].value == "CN" and "US, JP, KR" in probs[0].allowed
    assert probs[1].value == -1.0 and ">= 0" in probs[1].allowed
    with pytest.raises(InputError) as err:
        resolve_policies(sharing)
    assert len(err.value.problems) == 7
    assert "sharing.policy[0].link[1].to: got 'CN'" in str(err.value)


def test_nan_latency_rejected():
    pol = PolicyConfig("n", (LinkConfig("US", "JP", float("nan")),))
    assert _paths(check_policy(pol, "q")) == ["q.link[0].latency_s"]


def test_relay_back_to_own_nation_rejected():
    pol = PolicyConfig("echo", (LinkConfig("JP", "US", 1.0), LinkConfig("US", "JP", 1.0, relay=("JP",))))
    probs = check_policy(pol, "sharing.policy[2]")
    assert _paths(probs) == ["sharing.policy[2].link[1].relay[0]"]
    assert "back to JP" in probs[0].allowed
    sender = PolicyConfig("s", (LinkConfig("US", "JP", 1.0, relay=("US",)),))
    assert _paths(check_policy(sender, "p")) == ["p.link[0].relay[0]"]


def test_relay_cycle_rejected():
    # KR data would circulate US -> JP -> US
    pol = PolicyConfig("loop", (
        LinkConfig("KR", "US", 1.0),
        LinkConfig("US", "JP", 1.0, relay=("KR",)),
        LinkConfig("JP", "US", 1.0, relay=("KR",)),
    ))
    probs = check_policy(pol, "p")
    assert set(_paths(probs)) == {"p.link[1].relay[0]", "p.link[2].relay[0]"}
    assert all("cycle" in p.allowed for p in probs)


def test_two_track_routes_double_count_rejected():
    # JP gets KR tracks directly and again relayed by the US
    pol = PolicyConfig("twice", (
        LinkConfig("KR", "JP", 1.0, share="tracks", interval=5.0),
        LinkConfig("KR", "US", 1.0, share="tracks", interval=5.0),
        LinkConfig("US", "JP", 1.0, share="tracks", interval=5.0, relay=("KR",)),
    ))
    probs = check_policy(pol, "sharing.policy[0]")
    assert _paths(probs) == ["sharing.policy[0]"]
    assert "KR -> JP (tracks)" in probs[0].value and "KR -> US -> JP (tracks)" in probs[0].value
    assert "double counting" in probs[0].allowed
    # the same two routes for measurements are fine (the tracker takes the earliest copy)
    meas = PolicyConfig("m", tuple(LinkConfig(ln.source, ln.dest, ln.latency, relay=ln.relay) for ln in pol.links))
    assert check_policy(meas, "p") == []
    # tracks AND measurements of one origin also double count
    both = PolicyConfig("both", (LinkConfig("KR", "JP", 1.0, share="tracks", interval=5.0),
                                 LinkConfig("KR", "JP", 1.0)))
    assert _paths(check_policy(both, "p")) == ["p"]


def test_section_level_problems():
    sharing = SharingConfig(policies=("trilateral", "gsomia", "trilateral"), link_latency=-1.0,
                            share="email", track_interval=0.0, track_fusion="average",
                            custom=(PolicyConfig("isolated"), PolicyConfig("a"), PolicyConfig("a")))
    assert _paths(check_sharing(sharing, "s")) == [
        "s.policies[1]", "s.policies[2]", "s.link_latency_s", "s.track_interval_s", "s.share",
        "s.track_fusion", "s.policy[0].name", "s.policy[2].name",
    ]
    assert check_sharing(SharingConfig()) == []
    with pytest.raises(InputError):
        builtin_policy("gsomia", SharingConfig())


def test_builtin_policies_valid_for_both_kinds():
    for share in ("measurements", "tracks"):
        sharing = SharingConfig(share=share)
        for name in ("isolated", "bilateral", "trilateral"):
            assert check_policy(builtin_policy(name, sharing), name) == []


def test_trilateral_tracks_builtin_links():
    from fusion.network import builtin_policy
    from sim.config import SharingConfig

    sharing = SharingConfig(link_latency=1.5, share="measurements", track_interval=4.0)
    tri = builtin_policy("trilateral", sharing)
    trk = builtin_policy("trilateral-tracks", sharing)
    assert [(ln.source, ln.dest, ln.relay) for ln in trk.links] == [(ln.source, ln.dest, ln.relay) for ln in tri.links]
    assert {ln.share for ln in tri.links} == {"measurements"} and {ln.share for ln in trk.links} == {"tracks"}
    assert all(ln.latency == 1.5 and ln.interval == 4.0 for ln in trk.links)
    # JP's tracks reach KR through the US hub: two hops, at the slowest hop's interval
    routes = {r.source: r for r in track_routes(trk, "KR")}
    assert routes["JP"] == TrackRoute("JP", 3.0, 4.0) and routes["US"] == TrackRoute("US", 1.5, 4.0)
    assert check_policy(trk, "x") == []


def test_hub_track_report_holds_the_receivers_relayed_measurements():
    """KR -> US measurements, US -> KR tracks: the US report is built from KR's radars too (data incest)."""
    from types import SimpleNamespace

    from sim.engine import feed_plan

    radars = [SimpleNamespace(nation=n, latency=lat) for n, lat in (("US", 0.5), ("JP", 0.5), ("KR", 1.0))]
    pol = PolicyConfig("kr-via-us", (LinkConfig("KR", "US", 2.0, "measurements", 0.0, ()),
                                     LinkConfig("US", "KR", 3.0, "tracks", 5.0, ())))
    assert check_policy(pol, "x") == []
    own, routes, arrival = feed_plan(radars, pol, "KR")
    np.testing.assert_array_equal(own, [np.inf, np.inf, 1.0])
    (feed, latency, interval, sender), = routes
    assert (latency, interval, sender) == (3.0, 5.0, "US")
    np.testing.assert_array_equal(feed, [0.5, np.inf, 3.0])  # the hub tracks with KR's radar, 1 + 2 s late
    np.testing.assert_array_equal(arrival, [3.5, np.inf, 1.0])


# ------------------------------------------------------------------------ [sharing.pair_latency_s]

def _pair(**given):
    """SharingConfig with pair latencies given as JP_KR=10 (keyword form of "JP-KR")."""
    return SharingConfig(pair_latency=tuple((k.replace("_", "-"), float(v)) for k, v in given.items()))


def test_jp_kr_pair_latency_is_end_to_end_through_the_hub_other_pairs_unchanged():
    """JP-KR = 10 s: a KR radar's detection at t reaches JP's tracker at t + the radar's 0.25 s + 10 s, and JP's
    reaches KR 10 s after it leaves JP's radar chain; US<->JP and US<->KR stay one 2 s hop; the route is still the
    relay through the US hub (no direct JP-KR link)."""
    pol = builtin_policy("trilateral", _pair(JP_KR=10))
    assert [(ln.source, ln.dest, ln.latency, ln.relay, ln.relay_latency) for ln in pol.links] == [
        ("US", "JP", 2.0, ("KR",), 6.0), ("JP", "US", 2.0, (), 0.0),
        ("US", "KR", 2.0, ("JP",), 6.0), ("KR", "US", 2.0, (), 0.0)]
    assert check_policy(pol, "p") == []
    # detections: (time s, sensor index) of the laydown above: US 0.5 s, JP 1.0 s, KR 0.25 s and 0.75 s, US 2.0 s
    t = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    sensor = np.arange(5)
    mask, at_jp = arrival_times(t, sensor, _delays(pol, "JP"))
    assert mask.all()
    np.testing.assert_array_equal(at_jp, [102.5, 101.0, 110.25, 110.75, 104.0])  # KR radars: 100 + own + 10
    _, at_kr = arrival_times(t, sensor, _delays(pol, "KR"))
    np.testing.assert_array_equal(at_kr, [102.5, 111.0, 100.25, 100.75, 104.0])  # JP radar: 100 + 1.0 + 10
    _, at_us = arrival_times(t, sensor, _delays(pol, "US"))
    np.testing.assert_array_equal(at_us, [100.5, 103.0, 102.25, 102.75, 102.0])  # the hub's own: one hop, as before
    # bilateral has no JP<->KR data at all, so the pair changes nothing there
    assert builtin_policy("bilateral", _pair(JP_KR=10)) == builtin_policy("bilateral", SharingConfig())
    # track reports take the same 10 s; the US ones 2 s
    trk = builtin_policy("trilateral-tracks", _pair(JP_KR=10))
    assert track_routes(trk, "JP") == [TrackRoute("US", 2.0, 5.0), TrackRoute("KR", 10.0, 5.0)]
    assert track_routes(trk, "KR") == [TrackRoute("US", 2.0, 5.0), TrackRoute("JP", 10.0, 5.0)]


def test_pair_latencies_defaults_follow_link_latency_and_the_two_hops():
    assert pair_latencies(SharingConfig()) == {"US-JP": 2.0, "US-KR": 2.0, "JP-KR": 4.0}
    assert pair_latencies(SharingConfig(link_latency=10.0)) == {"US-JP": 10.0, "US-KR": 10.0, "JP-KR": 20.0}
    # a US-JP latency of its own: JP-KR, not given, is still the two hops (5 + 3 s)
    sharing = dataclasses.replace(_pair(US_JP=5), link_latency=3.0)
    assert pair_latencies(sharing) == {"US-JP": 5.0, "US-KR": 3.0, "JP-KR": 8.0}
    pol = builtin_policy("trilateral", sharing)
    assert (nation_latency(pol, "KR", "JP"), nation_latency(pol, "US", "JP"), nation_latency(pol, "US", "KR"),
            nation_latency(pol, "JP", "US")) == (8.0, 5.0, 3.0, 5.0)
    assert all(ln.relay_latency == 0.0 for ln in pol.links)
    # JP-KR equal to the two hops is the default route exactly, with no hub time
    assert builtin_policy("trilateral", _pair(JP_KR=4)) == builtin_policy("trilateral", SharingConfig())


def test_pair_latency_problems_are_named_by_key_path():
    sharing = SharingConfig(pair_latency=(("JP-CN", 1.0), ("US-JP", -1.0), ("US-KR", math.nan)))
    assert [(p.key_path, p.value) for p in check_sharing(sharing)][:2] == [
        ("sharing.pair_latency_s.JP-CN", 1.0), ("sharing.pair_latency_s.US-JP", -1.0)]
    assert _paths(check_sharing(sharing)) == ["sharing.pair_latency_s.JP-CN", "sharing.pair_latency_s.US-JP",
                                              "sharing.pair_latency_s.US-KR"]
    (short,) = check_sharing(dataclasses.replace(_pair(JP_KR=3, US_KR=1.5), link_latency=2.0))
    assert str(short) == ("sharing.pair_latency_s.JP-KR: got 3.0; at least US-JP + US-KR = 2 + 1.5 = 3.5 s: "
                          "trilateral relays JP<->KR data through the US hub; a direct JP-KR link is a custom "
                          "policy ([[sharing.policy]])")
    assert check_sharing(_pair(JP_KR=4)) == []


def test_relay_latency_delays_relayed_data_only_and_is_checked():
    pol = PolicyConfig("hub", (LinkConfig("KR", "US", 1.0), LinkConfig("US", "JP", 2.0, relay=("KR",), relay_latency=3.0)))
    assert check_policy(pol, "p") == []
    assert (nation_latency(pol, "KR", "JP"), nation_latency(pol, "US", "JP")) == (6.0, 2.0)
    bad = PolicyConfig("x", (LinkConfig("US", "JP", 1.0, relay_latency=-1.0), LinkConfig("JP", "US", 1.0, relay_latency=2.0)))
    assert [(p.key_path, p.value) for p in check_policy(bad, "p")] == [
        ("p.link[0].relay_latency_s", -1.0), ("p.link[1].relay_latency_s", 2.0)]
