"""Routing of the sharing policies (fusion.network): who receives whose data, when."""

from __future__ import annotations

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
