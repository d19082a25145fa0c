"""The view's display faults (issue 22): first grab, a 1,024 px window, a display that cannot open,
and the view with several objects (colours, lanes, the selected object's horizons and errors).

Uses the synthetic replay of ``test_viz`` (closed-form flight, known errors), one trial, so it is fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

from test_viz import synthetic_replay  # noqa: E402

from sim.errors import InputError  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(ROOT / "scenarios" / "hwasong15_2017-11-29.toml")


def _rgb(image):
    from pyqtgraph.Qt import QtGui

    img = image.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    a = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), -1, 4)
    return a[:, : img.width(), :3].copy()


def _rect_in_window(window, item):
    """Pixel rectangle (x0, y0, x1, y1) of a graphics item in the window's grab."""
    view = window.graphics
    r = item.sceneBoundingRect()
    tl = view.mapTo(window, view.mapFromScene(r.topLeft()))
    br = view.mapTo(window, view.mapFromScene(r.bottomRight()))
    return tl.x(), tl.y(), br.x(), br.y()


@pytest.fixture
def unshown(qtbot, scenario):
    """A window that was never shown (what ``--screenshot`` and scripts grab)."""
    from viz.app import ViewWindow

    w = ViewWindow(scenario, trial=0, source=synthetic_replay)
    qtbot.addWidget(w)
    w.wait_ready(timeout_s=30)
    w.seek(300.0)
    yield w
    w.close()
    w.wait_workers()


def test_first_grab_of_a_never_shown_window_has_the_radar_names(unshown):
    """The first grab equals the second in the timeline's radar-name axis, and that axis holds text."""
    w = unshown
    first = _rgb(w.grab().toImage())
    second = _rgb(w.grab().toImage())
    x0, y0, x1, y1 = _rect_in_window(w, w.timeline.getAxis("left"))
    a, b = first[y0:y1, x0:x1], second[y0:y1, x0:x1]
    assert a.size > 0
    np.testing.assert_array_equal(a, b)
    # Text: a good share of the axis strip is drawn (light glyphs on black), not only the axis line.
    lit = (a.max(axis=-1) > 80).sum(axis=0)  # lit pixels per column
    assert (lit > 0).sum() >= 0.5 * w.timeline.getAxis("left").width() - 8  # names span most of the strip
    # The axis is as wide as the longest name needs.
    from pyqtgraph.Qt import QtGui

    ax = w.timeline.getAxis("left")
    fm = QtGui.QFontMetrics(ax.style.get("tickFont") or ax.font())
    assert ax.width() >= max(fm.horizontalAdvance(r.name) for r in w.scene.radars)


@pytest.mark.parametrize("width", [1024, 1600])
def test_every_title_and_the_key_fit_the_window(unshown, qapp, width):
    """At 1,024 and 1,600 px no panel runs past the window, every title fits its panel, no legend sits on data."""
    w = unshown
    w.resize(width, width * 5 // 8)
    qapp.processEvents()
    img = w.grab().toImage()
    assert img.width() == width
    viewport = w.graphics.viewport().width()
    for plot in (w.map, w.alt, w.err, w.timeline):
        r = plot.sceneBoundingRect()
        assert r.left() >= -1 and r.right() <= viewport + 1, (plot.titleLabel.text, r.right(), viewport)
        title = plot.titleLabel
        assert title.text
        assert title.item.boundingRect().width() <= r.width(), title.text
        assert plot.legend is None  # the colour key is outside the panels
    # The key label wraps instead of being cut: its text needs no more height than it has.
    key = w.key_label
    assert key.heightForWidth(key.width()) <= key.height() + 1
    for name in w.scene.object_names + ["US", "JP", "KR", "isolated", "trilateral"]:
        assert name in key.text()


def test_panels_name_their_object_and_follow_the_selection(unshown):
    w = unshown
    s = w.scene
    assert w.selected == s.target == 0
    assert "HS-15 rv" in w.alt.titleLabel.text and "HS-15 rv" in w.err.titleLabel.text
    assert "isolated" in w.err.titleLabel.text
    w.object_box.setCurrentIndex(1)  # the spent stage
    assert w.selected == 1
    assert "HS-15 stage" in w.alt.titleLabel.text and "HS-15 stage" in w.err.titleLabel.text
    for i, it in enumerate(w.horizon_items):
        x, y = it.getData()
        np.testing.assert_array_equal(x, s.horizon_ground_km[1, i])
        with np.errstate(divide="ignore", invalid="ignore"):
            expect = np.where(s.horizon_alt_km[1, i] >= 0.1, np.log10(s.horizon_alt_km[1, i]), np.nan)
        np.testing.assert_array_equal(y, expect)
    x, y = w.err_items[("isolated", "KR")].getData()
    np.testing.assert_array_equal(y, s.tracks[("isolated", "KR")].err_km[1])
    # The selection survives a change of policy.
    w.policy_box.setCurrentText("trilateral")
    assert w.selected == 1 and "HS-15 stage" in w.err.titleLabel.text and "trilateral" in w.err.titleLabel.text


def test_objects_get_distinct_colours_and_lanes_inside_their_row():
    from viz.app import NATION_COLORS, object_color, timeline_lanes

    cols = np.array([object_color(o) for o in range(12)], float)
    d = np.linalg.norm(cols[:, None] - cols[None], axis=-1)
    assert d[~np.eye(12, dtype=bool)].min() > 40  # twelve objects, twelve colours apart in RGB
    nat = np.array(list(NATION_COLORS.values()), float)
    assert np.linalg.norm(cols[:, None] - nat[None], axis=-1).min() > 60  # none looks like a nation
    for n in range(1, 13):
        lanes = timeline_lanes(n)
        assert len(lanes) == n and np.all(np.abs(lanes) < 0.5)  # inside the radar's row
        assert np.all(np.diff(lanes) < 0)  # distinct, first object on top


def _run_view(env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "sim.cli", "view", str(ROOT / "scenarios" / "hwasong15_2017-11-29.toml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_display_that_cannot_open_is_one_line_and_exit_2():
    """DISPLAY naming no display: Qt would abort with SIGABRT (exit 134); the view probes in a child, one line."""
    done = _run_view({"DISPLAY": ":987"})
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gsomia-sim view: DISPLAY: got ':987'") and "--screenshot" in lines[0]


def test_a_platform_plugin_that_cannot_load_is_a_user_error(scenario, monkeypatch):
    """QT_QPA_PLATFORM naming no plugin: the probe's child aborts, main raises the one-line InputError."""
    from viz.app import main, probe_display

    monkeypatch.setenv("QT_QPA_PLATFORM", "no-such-plugin")
    why = probe_display()
    assert why is not None and "no-such-plugin" in why
    monkeypatch.setattr("viz.app.QtWidgets.QApplication.instance", staticmethod(lambda: None))  # as in a fresh CLI
    args = types.SimpleNamespace(scenario=scenario.path, trial=0, speed=10.0, policy=None, screenshot=None, at=None)
    with pytest.raises(InputError, match="QT_QPA_PLATFORM: got 'no-such-plugin'"):
        main(args)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert probe_display() is None  # a plugin that loads passes the probe


def test_wait_ready_without_deadline_waits_for_a_slow_trial(qtbot, scenario):
    """The CLI waits as long as the trial takes (its old 600 s deadline ended in a traceback under load)."""
    import time

    from viz.app import ViewWindow

    def slow(*a):
        time.sleep(0.6)
        return synthetic_replay(*a)

    w = ViewWindow(scenario, source=slow)
    qtbot.addWidget(w)
    with pytest.raises(TimeoutError):
        w.wait_ready(timeout_s=0.05)
    assert w.wait_ready(timeout_s=None) is w.scene is not None
    w.close()
    w.wait_workers()


def test_width_option_is_checked(scenario, tmp_path):
    from viz.app import main

    args = types.SimpleNamespace(scenario=scenario.path, trial=0, speed=10.0, policy=None,
                                 screenshot=str(tmp_path / "v.png"), at=None, width=500)
    with pytest.raises(InputError, match="--width"):
        main(args)
