"""Live view (viz.scene, viz.app) on a synthetic replay with the documented fields.

The replay is built here from closed-form arrays (a great-circle flight with a
parabolic altitude profile, tracks with known errors and covariances), so the
expected values of the display arrays are known independently of the engine.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

from sensors.radar import Face  # noqa: E402
from sim.earth import enu_rotation, geodesic_direct, geodesic_inverse, geodetic_to_ecef  # noqa: E402
from sim.errors import InputError  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402

LAUNCH = (39.25, 125.86)  # Pyongsong, deg (CNS database, as in the Hwasong-15 scenario)
BEARING, RANGE_KM, APOGEE_KM, FLIGHT_S = 76.0, 950.0, 1000.0, 600.0
POLICIES = ("isolated", "bilateral", "trilateral")
NATIONS = ("US", "JP", "KR")


@dataclass(frozen=True)
class FakeRadar:
    """The Radar fields the view reads (sensors.radar.Radar)."""

    name: str
    nation: str
    lat: float
    lon: float
    alt: float
    range_max: float
    faces: tuple
    site_ecef: np.ndarray
    R_enu: np.ndarray
    horizon_k: float = 4.0 / 3.0


def _radar(name, nation, lat, lon, faces, range_km):
    la, lo = np.radians(lat), np.radians(lon)
    return FakeRadar(name, nation, la, lo, 20.0, range_km * 1e3,
                     tuple(Face(np.radians(az), np.radians(h), 0.0, np.radians(80)) for az, h in faces),
                     geodetic_to_ecef(la, lo, 20.0), enu_rotation(la, lo))


def flight(t):
    """Ground point (deg) and altitude (m) of the synthetic flight at times ``t`` (NaN outside [0, FLIGHT_S])."""
    u = t / FLIGHT_S
    lat, lon = geodesic_direct(np.full(t.shape, LAUNCH[0]), np.full(t.shape, LAUNCH[1]), np.full(t.shape, BEARING),
                               RANGE_KM * 1e3 * np.clip(u, 0, 1))
    alt = 4.0 * APOGEE_KM * 1e3 * u * (1 - u)
    out = (u < 0) | (u > 1)
    return np.where(out, np.nan, lat), np.where(out, np.nan, lon), np.where(out, np.nan, alt)


def synthetic_replay(scenario, trial=0, policies=None, T=701, dt=1.0, seed=0):
    """A Replay-shaped record of one trial: one RV and its spent stage, 3 radars, tracks per policy x nation.

    Track 0 of each (policy, nation) follows the RV from a start time that is earlier with more sharing,
    with a known position error vector and covariance diag(sigma^2); track 1 is a tentative track (never
    confirmed).
    """
    rng = np.random.default_rng(seed + trial)
    t = np.arange(T) * dt
    lat, lon, alt = flight(t)
    rv = geodetic_to_ecef(np.radians(lat), np.radians(lon), alt)
    # The stage separates at 120 s and falls short along the same track.
    st_t = np.where(t <= 120, t, 120 + 0.5 * (t - 120))
    slat, slon, salt = flight(st_t)
    salt = np.where(t <= 120, salt, salt * np.clip(1 - (t - 120) / 200, 0, 1))
    slat = np.where(t > 320, np.nan, slat)
    stage = geodetic_to_ecef(np.radians(slat), np.radians(slon), salt)
    state = np.full((1, 2, T, 6), np.nan)
    state[0, 0, :, :3] = rv
    state[0, 1, :, :3] = stage
    state[..., 3:] = 0.0
    state[np.isnan(state[..., :1]).repeat(6, -1)] = np.nan
    truth = types.SimpleNamespace(
        t=t, state=state, phase=np.where(np.isnan(state[..., 0]), -1, 1).astype(np.int8),
        object_threat=np.array([0, 0]), object_kind=("rv", "stage"),
        launch_time=np.zeros((1, 2)), impact_time=np.array([[FLIGHT_S, 320.0]]),
        launch_ecef=np.stack([rv[0], rv[0]])[None], impact_ecef=np.stack([rv[600], stage[320]])[None],
        trial_index=np.array([trial]))
    radars = (
        _radar("tpy2-shariki", "US", 40.89, 140.35, [(255.0, 60.0)], 1000.0),
        _radar("fps5-sado", "JP", 38.07, 138.43, [(0.0, 60.0), (120.0, 60.0), (240.0, 60.0)], 1200.0),
        _radar("greenpine", "KR", 36.5, 127.5, [(0.0, 180.0)], 800.0),
    )
    # Detections: KR sees both objects early, JP and US the RV later, every 2 s.
    rows = []
    for s, (a, b) in enumerate([(150, 560), (200, 600), (0, 300)]):
        for o in (0, 1):
            if o == 1 and s != 2:
                continue
            for tk in np.arange(a, b + 1, 2.0):
                if np.isfinite(state[0, o, int(tk), 0]):
                    rows.append((tk, s, o))
    rows.sort()
    K = len(rows)
    dets = types.SimpleNamespace(
        trial=np.full(K, trial), time=np.array([r[0] for r in rows]), sensor=np.array([r[1] for r in rows], np.int16),
        object=np.array([r[2] for r in rows], np.int32), z=np.zeros((K, 3)), R=np.tile(np.eye(3), (K, 1, 1)),
        snr=np.full(K, 100.0), range_rate=None, range_rate_var=None)
    tracks = {}
    start = {"isolated": {"US": 160, "JP": 210, "KR": 10}, "bilateral": {"US": 12, "JP": 160, "KR": 10},
             "trilateral": {"US": 12, "JP": 14, "KR": 10}, "trilateral-tracks": {"US": 14, "JP": 16, "KR": 10}}
    for p in (policies or POLICIES):
        for n in NATIONS:
            x = np.full((1, 2, T, 6), np.nan)
            P = np.full((1, 2, T, 6, 6), np.nan)
            conf = np.zeros((1, 2, T), bool)
            obj = np.full((1, 2, T), -1, np.int32)
            k0 = start[p][n]
            sig = 3000.0 / (1 + 0.02 * (t - k0).clip(0))  # m, shrinking with time on track
            live = (t >= k0) & (t < FLIGHT_S)
            x[0, 0, live, :3] = rv[live] + rng.normal(0, 1, (live.sum(), 3)) * sig[live, None]
            x[0, 0, live, 3:] = 0.0
            P[0, 0, live] = np.eye(6) * (sig[live] ** 2)[:, None, None]
            conf[0, 0, live] = True
            obj[0, 0, live] = 0
            # A tentative track that never confirms (must not be drawn).
            x[0, 1, 50:60, :3] = rv[50:60] + 5e4
            P[0, 1, 50:60] = np.eye(6) * 1e8
            obj[0, 1, 50:60] = 0
            tracks[(p, n)] = types.SimpleNamespace(t=t, x=x, P=P, confirmed=conf, object=obj,
                                                   sensors=np.zeros((1, 2, T), np.uint64))
    return types.SimpleNamespace(scenario=scenario, radars=radars, truth=truth, detections=dets, tracks=tracks)


@pytest.fixture(scope="module")
def scenario():
    from pathlib import Path

    return load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "hwasong15_2017-11-29.toml")


@pytest.fixture(scope="module")
def scene(scenario):
    from viz.scene import build_scene

    return build_scene(synthetic_replay(scenario))


# ----------------------------------------------------------------------------- scene (no Qt)

def test_truth_in_screen_units(scene):
    t = scene.t
    lat, lon, alt = flight(t)
    ok = np.isfinite(lat)
    np.testing.assert_allclose(scene.truth_lat[0, ok], lat[ok], atol=1e-9)
    np.testing.assert_allclose(scene.truth_lon[0, ok], lon[ok], atol=1e-9)
    np.testing.assert_allclose(scene.truth_alt_km[0, ok], alt[ok] / 1e3, atol=1e-6)
    # Ground range grows linearly to 950 km (the flight is built along one geodesic).
    np.testing.assert_allclose(scene.truth_ground_km[0, ok], RANGE_KM * np.clip(t[ok] / FLIGHT_S, 0, 1), atol=1e-3)
    assert np.isnan(scene.truth_lat[0, 601:]).all()
    assert scene.target == 0 and scene.object_names == ["HS-15 rv", "HS-15 stage"]


def test_ground_range_counts_from_each_object_launch_point(scenario):
    """A second object launched elsewhere is measured from its own launch point, and so is a track on it
    (new-user trial: from the first threat's, a second threat's profile folded back on itself)."""
    from viz.scene import build_scene

    replay = synthetic_replay(scenario)
    other = (38.0, 127.0)
    replay.truth.launch_ecef[0, 1] = geodetic_to_ecef(np.radians(other[0]), np.radians(other[1]), 0.0)
    key = ("isolated", "KR")
    replay.tracks[key].object[0, 0, 100:110] = 1  # the track sits on the stage for ten steps
    sc = build_scene(replay)
    k = np.flatnonzero(np.isfinite(sc.truth_lat[1]))
    _, d = geodesic_inverse(np.full(k.size, other[0]), np.full(k.size, other[1]), sc.truth_lat[1, k],
                            sc.truth_lon[1, k])
    np.testing.assert_allclose(sc.truth_ground_km[1, k], d / 1e3, rtol=1e-9)
    tr = sc.tracks[key]
    _, d = geodesic_inverse(np.full(10, other[0]), np.full(10, other[1]), tr.lat[0, 100:110], tr.lon[0, 100:110])
    np.testing.assert_allclose(tr.ground_km[0, 100:110], d / 1e3, rtol=1e-9)
    _, d = geodesic_inverse(np.full(10, LAUNCH[0]), np.full(10, LAUNCH[1]), tr.lat[0, 120:130], tr.lon[0, 120:130])
    np.testing.assert_allclose(tr.ground_km[0, 120:130], d / 1e3, rtol=1e-6)  # on the RV: from Pyongsong


def test_track_error_and_sigma(scene):
    """err = |x - truth| of the confirmed track on the target; sigma = sqrt(trace P_pos) = sqrt(3) sigma."""
    ts = scene.tracks[("isolated", "JP")]
    t = scene.t
    sig = 3000.0 / (1 + 0.02 * (t - 210).clip(0))
    live = (t >= 210) & (t < FLIGHT_S)
    np.testing.assert_allclose(ts.sigma_km[0, live], np.sqrt(3) * sig[live] / 1e3, rtol=1e-12)
    assert np.isnan(ts.err_km[0, ~live]).all() and np.isnan(ts.sigma_km[0, ~live]).all()
    # Errors are 3-D Gaussian with that sigma: |e|^2 / sig^2 is chi-square with 3 dof (mean 3).
    q = (ts.err_km[0, live] * 1e3 / sig[live]) ** 2
    assert abs(q.mean() - 3.0) < 3 * np.sqrt(6.0 / live.sum())
    # No confirmed track follows the stage (object 1): its error row is empty.
    assert ts.err_km.shape == (2, len(t)) and np.isnan(ts.err_km[1]).all()
    # The tentative track 1 is never drawn.
    assert np.isnan(ts.lon[1]).all() and np.isnan(ts.alt_km[1]).all()


def test_horizon_curve_matches_textbook(scene):
    """Sea-level-ish site: h_min ~ d^2 / (2 k R) (Skolnik 2001, eq. 8.5) for d << kR.

    The neglected next term is (5/12)(d/kR)^2 relative, below 1 % within 1,200 km; k = 1 would be 33 % off.
    """
    i = 2  # greenpine
    r = scene.radars[i]
    ok = np.isfinite(scene.truth_lat[0])
    _, d = geodesic_inverse(np.full(ok.sum(), r.lat_deg), np.full(ok.sum(), r.lon_deg), scene.truth_lat[0, ok],
                            scene.truth_lon[0, ok])
    kR = 4.0 / 3.0 * 6371008.8
    ds = np.sqrt(2 * kR * 20.0)  # tangent distance of a 20 m antenna
    expect = np.maximum(d - ds, 0) ** 2 / (2 * kR)
    np.testing.assert_allclose(scene.horizon_alt_km[0, i, ok] * 1e3, expect, rtol=1e-2, atol=1.0)
    np.testing.assert_allclose(scene.horizon_ground_km[0, i, ok], scene.truth_ground_km[0, ok])
    # The stage's own horizon: along its ground track, not the RV's.
    ok1 = np.isfinite(scene.truth_lat[1])
    _, d1 = geodesic_inverse(np.full(ok1.sum(), r.lat_deg), np.full(ok1.sum(), r.lon_deg), scene.truth_lat[1, ok1],
                             scene.truth_lon[1, ok1])
    np.testing.assert_allclose(scene.horizon_alt_km[1, i, ok1] * 1e3, np.maximum(d1 - ds, 0) ** 2 / (2 * kR),
                               rtol=1e-2, atol=1.0)
    np.testing.assert_allclose(scene.horizon_ground_km[1, i, ok1], scene.truth_ground_km[1, ok1])


def test_coverage_outline_reaches_range(scene):
    from viz.scene import coverage_outline

    r = scene.radars[0]  # one 120-degree face at 255 deg
    out = coverage_outline(r)
    arc = out[1:-1]
    az, d = geodesic_inverse(np.full(len(arc), r.lat_deg), np.full(len(arc), r.lon_deg), arc[:, 1], arc[:, 0])
    np.testing.assert_allclose(d, 1000e3, rtol=1e-9)
    assert az.min() == pytest.approx(195.0, abs=1e-6) and az.max() == pytest.approx(315.0, abs=1e-6)
    full = coverage_outline(scene.radars[2])  # one 360-degree face: a closed circle, no site point
    assert np.allclose(full[0], full[-1])


def test_ellipse_is_two_sigma_contour():
    """Each ellipse point, mapped back to ENU metres, has Mahalanobis distance 2 (the 2-sigma contour)."""
    import pymap3d

    from viz.scene import ellipses_lonlat

    rng = np.random.default_rng(3)
    lat0, lon0, h0 = 40.0, 133.0, 300e3
    pos = geodetic_to_ecef(np.radians(lat0), np.radians(lon0), h0)[None]
    # km-size sigmas, as on tracks: the lon/lat drawing bends with the parallels by e^2 tan(lat) / 2R
    # (68 m at 33 km, 0.3 m at 2 km), which this tolerance leaves out.
    A = rng.normal(size=(3, 3)) * 700.0
    C_enu = A @ A.T
    R = enu_rotation(np.radians(lat0), np.radians(lon0))
    P = R.T @ C_enu @ R  # ECEF covariance whose ENU form is C_enu
    lon, lat = ellipses_lonlat(pos, P[None])
    ok = np.isfinite(lon)
    e, n, _ = pymap3d.geodetic2enu(lat[ok], lon[ok], h0, lat0, lon0, h0)
    v = np.column_stack([e, n])
    m2 = np.einsum("ni,ij,nj->n", v, np.linalg.inv(C_enu[:2, :2]), v)
    np.testing.assert_allclose(np.sqrt(m2), 2.0, rtol=2e-3)
    assert np.isnan(lon[-1]) and ok.sum() == 33


def test_detection_intervals(scene):
    iv = scene.intervals
    # KR radar (2) sees the RV from 0 to 300 s and the stage from 0 to 320 s (stage gone after): one bar each.
    kr_rv = iv[(iv[:, 0] == 2) & (iv[:, 1] == 0)]
    assert kr_rv.tolist() == [[2, 0, 0.0, 300.0]]
    us = iv[iv[:, 0] == 0]
    assert us.tolist() == [[0, 0, 150.0, 560.0]]
    from viz.scene import active_detections

    assert sorted(active_detections(iv, 250.0)[:, 0].tolist()) == [0, 1, 2, 2]


# ----------------------------------------------------------------------------- window (pytest-qt)

@pytest.fixture
def window(qtbot, scenario):
    from viz.app import ViewWindow

    w = ViewWindow(scenario, trial=0, speed=50.0, source=synthetic_replay)
    qtbot.addWidget(w)
    w.show()
    w.wait_ready(timeout_s=30)
    yield w
    w.close()
    w.wait_workers()


def _curve_xy(item):
    x, y = item.getData()
    return (np.zeros(0), np.zeros(0)) if x is None else (np.asarray(x), np.asarray(y))


def test_items_move_as_time_advances(window, qtbot):
    w = window
    s = w.scene
    w.seek(100.0)
    x1, y1 = _curve_xy(w.truth_map[1])
    now1 = w.truth_now_map.getData()
    trk1 = _curve_xy(w.track_map["KR"])
    w.seek(400.0)
    x2, y2 = _curve_xy(w.truth_map[1])
    now2 = w.truth_now_map.getData()
    trk2 = _curve_xy(w.track_map["KR"])
    assert len(x2) > len(x1) == 101
    assert now2[0][0] == pytest.approx(s.truth_lon[0, 400]) and now2[0][0] > now1[0][0]
    assert np.count_nonzero(np.isfinite(trk2[0])) > np.count_nonzero(np.isfinite(trk1[0]))
    assert w.err_cursor.value() == pytest.approx(400.0) and w.timeline_cursor.value() == pytest.approx(400.0)
    # Ellipses of the live KR track are drawn around its current estimate.
    el_x, el_y = _curve_xy(w.track_ellipse["KR"])
    ts = s.tracks[("isolated", "KR")]
    assert np.nanmean(el_x) == pytest.approx(ts.lon[0, 400], abs=0.05)
    # Playing advances the clock by speed x wall time.
    w.seek(0.0)
    w.play()
    qtbot.waitUntil(lambda: w.index >= 10, timeout=3000)
    w.pause()
    assert w.index >= 10 and not w.timer.isActive()


def test_controls_and_keys(window, qtbot):
    from pyqtgraph.Qt import QtCore

    w = window
    w.seek(200.0)
    qtbot.keyClick(w, QtCore.Qt.Key.Key_Right)
    assert w.index == 201
    qtbot.keyClick(w, QtCore.Qt.Key.Key_Left, QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert w.index == 191
    qtbot.keyClick(w, QtCore.Qt.Key.Key_Space)
    assert w.playing and w.timer.isActive()
    qtbot.keyClick(w, QtCore.Qt.Key.Key_Space)
    assert not w.playing
    w.slider.setValue(300)
    assert w.index == 300 and "300.0" in w.time_label.text()
    # Policy selector: the map shows the chosen policy's tracks (JP starts at 210 s alone, 14 s trilateral).
    w.nation_box.setCurrentText("JP")
    w.seek(100.0)
    w.policy_box.setCurrentText("isolated")
    assert np.isfinite(_curve_xy(w.track_map["JP"])[0]).sum() == 0
    w.policy_box.setCurrentText("trilateral")
    assert np.isfinite(_curve_xy(w.track_map["JP"])[0]).sum() == 100 - 14 + 1
    # Nation selector hides the other nations.
    assert len(_curve_xy(w.track_map["KR"])[0]) == 0
    # Trial selector recomputes in the worker thread.
    w.trial_box.setValue(3)
    qtbot.waitUntil(lambda: w.scene is not None and w.scene.trial == 3, timeout=10000)


def test_screenshot_not_blank(window, tmp_path):
    from pyqtgraph.Qt import QtGui

    from viz.app import screenshot

    path = screenshot(window, tmp_path / "view.png", at=300.0)
    img = QtGui.QImage(str(path))
    assert img.width() >= 800 and img.height() >= 500
    ptr = img.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    a = np.frombuffer(ptr.constBits(), np.uint8, ptr.sizeInBytes()).reshape(ptr.height(), -1, 4)[..., :3]
    assert a.std() > 20  # not blank
    colours = np.unique(a.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 100  # land, sea, coverage tints, curves, text: a drawn picture, not a fill
    with pytest.raises(InputError, match="--at"):
        screenshot(window, tmp_path / "late.png", at=1e6)


def test_main_rejects_bad_input(scenario, tmp_path):
    from viz.app import main

    base = dict(scenario=scenario.path, trial=0, speed=10.0, policy=None, screenshot=None, at=None)
    for key, value in [("trial", 99), ("policy", "gsomia-2"), ("speed", 0.0), ("screenshot", str(tmp_path / "a.jpg")),
                       ("at", -1e4), ("at", 1e6), ("at", float("nan"))]:
        args = types.SimpleNamespace(**{**base, key: value})
        with pytest.raises(InputError, match=f"--{key}"):
            main(args)


def test_main_without_a_display_is_a_clear_error_not_a_qt_abort(scenario, monkeypatch):
    # Linux with no DISPLAY/WAYLAND_DISPLAY and no platform chosen: Qt would abort the process; the view says why.
    import sys

    from viz.app import main

    monkeypatch.setattr(sys, "platform", "linux")  # the check is Linux's (X11 / Wayland)
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    args = types.SimpleNamespace(scenario=scenario.path, trial=0, speed=10.0, policy=None, screenshot=None, at=None)
    with pytest.raises(InputError, match="--screenshot"):
        main(args)


def test_main_screenshot_end_to_end(scenario, tmp_path, monkeypatch, qapp):
    """``gsomia-sim view --screenshot FILE --at T`` through main(), with the synthetic replay as data source."""
    from pyqtgraph.Qt import QtGui

    import viz.app

    monkeypatch.setattr(viz.app, "default_source", synthetic_replay)
    base = dict(scenario=scenario.path, trial=1, speed=10.0, policy="trilateral", at=250.0)
    out = tmp_path / "shots" / "view.png"
    out.parent.mkdir()  # the view writes into an existing folder only
    assert viz.app.main(types.SimpleNamespace(**base, screenshot=str(out))) == 0
    img = QtGui.QImage(str(out))
    assert not img.isNull() and img.width() >= 800
    with pytest.raises(InputError, match="--at"):
        viz.app.main(types.SimpleNamespace(**{**base, "at": 5000.0}, screenshot=str(tmp_path / "late.png")))
    assert not (tmp_path / "late.png").exists()


@pytest.mark.slow
def test_real_engine_replay_in_view(scenario, qtbot, tmp_path):
    """The engine's replay of the Hwasong-15 vignette (one policy, to keep it short) through the view.

    Checks the documented fields meet the view: the RV's ground track stays in the map box and ends
    near the published splash point (about 250 km west of Aomori, Japan MoD 2017), and the screenshot
    is drawn.
    """
    from pyqtgraph.Qt import QtGui

    from sim.engine import replay
    from viz.app import ViewWindow, screenshot

    w = ViewWindow(scenario, source=lambda sc, trial, policies: replay(sc, trial, ["isolated"]),
                   policy="isolated")
    qtbot.addWidget(w)
    w.show()
    s = w.wait_ready(timeout_s=600)
    assert len(s.radars) == len(scenario.sensors) and set(s.nations) == {"US", "JP", "KR"}
    ok = np.isfinite(s.truth_lon[s.target])
    assert (s.truth_lon[s.target, ok] > 120).all() and (s.truth_lon[s.target, ok] < 150).all()
    _, d = geodesic_inverse(40.82, 140.74, s.truth_lat[s.target, ok][-1], s.truth_lon[s.target, ok][-1])
    assert 100e3 < d < 450e3  # splash "about 250 km west of Aomori"
    assert max(s.truth_alt_km[s.target, ok]) > 2000  # lofted
    assert any(np.isfinite(ts.err_km).any() for ts in s.tracks.values())
    path = screenshot(w, tmp_path / "real.png", at=float(s.t[len(s.t) // 10]))
    img = QtGui.QImage(str(path)).convertToFormat(QtGui.QImage.Format.Format_RGB32)
    a = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes())
    assert a.reshape(img.height(), -1, 4)[..., :3].std() > 20
    w.close()
    w.wait_workers()


def test_screenshot_into_missing_folder_is_a_user_error(tmp_path, scenarios_dir):
    from types import SimpleNamespace

    from sim.errors import InputError
    from viz.app import main as view_main

    args = SimpleNamespace(scenario=str(scenarios_dir / "whatif_aegis_ashore.toml"), trial=0, speed=10.0, policy=None,
                           screenshot=str(tmp_path / "no" / "such" / "v.png"), at=100.0)
    with pytest.raises(InputError, match="existing folder"):
        view_main(args)
    assert not (tmp_path / "no").exists()


def test_offscreen_plugin_notice_is_not_printed_other_qt_messages_are(qapp, capfd):
    """A successful headless ``view --screenshot`` printed only Qt's harmless "This plugin does not support
    propagateSizeHints()" (new-user trials); the view's message handler drops that notice and nothing else."""
    from pyqtgraph.Qt import QtCore

    import viz.app

    viz.app._app()
    QtCore.qWarning("This plugin does not support propagateSizeHints()")
    QtCore.qWarning("a real Qt problem")
    err = capfd.readouterr().err
    assert "propagateSizeHints" not in err and "a real Qt problem" in err


def test_track_series_marks_coasting_only_where_a_confirmed_track_is_shown():
    """viz.scene._track_series: ``coasting`` is the tracker's flag on confirmed, shown steps (the view draws a
    hollow square there), all False when the history has no flag (track-report histories of older producers)."""
    from types import SimpleNamespace

    from sim.earth import geodetic_to_ecef
    from viz.scene import _track_series

    T = 4
    r = geodetic_to_ecef(np.radians(40.0), np.radians(131.0), 500e3)
    x = np.zeros((1, 2, T, 6))
    x[..., :3] = r
    x[0, 1, 3] = np.nan  # track 1 gone at step 3
    P = np.broadcast_to(np.eye(6) * 1e4, (1, 2, T, 6, 6)).copy()
    conf = np.array([[[True, True, True, False], [False, True, True, True]]])
    coast = np.array([[[False, True, True, True], [True, False, True, True]]])
    hist = SimpleNamespace(x=x, P=P, confirmed=conf, object=np.zeros((1, 2, T), dtype=np.int32), coasting=coast)
    truth = np.broadcast_to(r, (1, T, 3)).copy()
    ts = _track_series(hist, truth, 0, np.array([39.0]), np.array([125.0]))
    np.testing.assert_array_equal(ts.coasting, [[False, True, True, False], [False, False, True, False]])
    del hist.coasting
    assert not _track_series(hist, truth, 0, np.array([39.0]), np.array([125.0])).coasting.any()
