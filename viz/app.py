"""The live pyqtgraph view of one trial: ``gsomia-sim view SCENARIO.toml``.

Panels
------
map
    Lon 120-150 E, lat 30-46 N with GSHHS coastlines (:mod:`viz.coastlines`),
    radar sites with their face sectors out to instrumented range, the true
    ground tracks, each nation's confirmed tracks under the chosen policy with
    their 2-sigma horizontal ellipses (magnified x10 by default, as the title
    says: at true size they are below a pixel), and lines of sight of the
    radars that are detecting now.
altitude
    Altitude against ground range from each object's launch point, with each radar's
    4/3-Earth horizon: the lowest visible altitude over each point of the
    selected object's ground track (:func:`sensors.horizon.min_visible_height`).
error
    Position error of each nation's best track on the selected object against time,
    for every policy (line style per policy; the chosen one thick, with its
    band from 0 to 2 sigma, sigma = sqrt(trace P_pos)); drawn whole once, with
    the part after the current time veiled.
timeline
    Which radar detects which object, and when: one lane per object inside each radar's row.

Every object has its own colour (:data:`OBJECT_COLORS`), every nation its own; the
colour key is a label above the panels, so no legend covers data, and it wraps at any
window width. The ``object`` selector (default: the main target) chooses the object the
altitude and error panels are about, and their titles name it.

The trial is computed in a worker thread (:class:`ReplayWorker`) while the
window stays responsive; a 30 Hz QTimer advances the scenario clock at the
chosen speed and every frame only calls ``setData`` on existing items.

Keys: space plays or pauses; left and right arrows step one time step (with
shift, ten).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from sim.config import BUILTIN_POLICIES
from sim.errors import InputError
from viz.coastlines import MAP_BOX, coastlines
from viz.scene import Scene, active_detections, build_scene, ellipses_lonlat

FRAME_INTERVAL_MS = 33  # 30 frames per second
NATION_COLORS = {"US": (80, 140, 255), "JP": (255, 80, 80), "KR": (60, 200, 120)}
POLICY_STYLES = {"isolated": QtCore.Qt.PenStyle.DotLine, "bilateral": QtCore.Qt.PenStyle.DashLine,
                 "trilateral": QtCore.Qt.PenStyle.SolidLine, "trilateral-tracks": QtCore.Qt.PenStyle.DashDotDotLine}
# One colour per truth object: Kelly's colours of maximum contrast (Kelly, "Twenty-two colors of maximum
# contrast", Color Engineering 3(6), 1965) that read on a dark background and stay clear of the nation
# colours (blue, red, green); beyond twelve objects they repeat.
OBJECT_COLORS = [(242, 243, 244), (243, 195, 0), (161, 202, 241), (230, 143, 172), (243, 132, 0), (141, 182, 0),
                 (194, 178, 128), (190, 150, 230), (0, 200, 190), (200, 90, 160), (150, 150, 150), (249, 147, 121)]
TITLE_SIZE = "10pt"  # panel titles: short enough at this size to fit a 1,024 px window
LAND_BRUSH = (58, 62, 70)
SEA_COLOR = (12, 22, 38)
ALT_FLOOR_KM = 0.1  # lowest altitude on the log axis, km
PIXMAP_CACHE_KB = 192 * 1024  # QPixmapCache limit for the item caches (Qt default 10 MB is too small)
DEFAULT_ELLIPSE_SCALE = 10  # map ellipses drawn x10: true 2-sigma ellipses are sub-pixel at this map scale
DEFAULT_WIDTH = 1600  # px, window width (height 5/8 of it)
MIN_WIDTH, MAX_WIDTH = 1024, 4096  # px: every title and legend fits from 1,024 px (a small laptop screen) up
HEADLESS_PLATFORMS = ("offscreen", "minimal")  # Qt platform plugins that need no display server


def _cache(item):
    """Paint a static item from a pixmap cache (re-rendered only on zoom or pan).

    Every frame repaints the whole scene; axes, coastlines, coverage and the
    static curves would otherwise be re-rasterized each time (three quarters of
    a frame with software rendering, mostly the error curves). The pixmaps live
    in QPixmapCache, whose limit :class:`ViewWindow` raises to
    :data:`PIXMAP_CACHE_KB`: at Qt's default 10 MB the caches of a full-HD window
    evict each other every frame and caching costs more than it saves.
    """
    item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
    return item


def _nation_color(nation: str, alpha: int = 255):
    r, g, b = NATION_COLORS.get(nation, (200, 200, 200))
    return (r, g, b, alpha)


def object_color(o: int) -> tuple:
    """RGB colour of truth object ``o`` (:data:`OBJECT_COLORS`, repeating after twelve)."""
    return OBJECT_COLORS[o % len(OBJECT_COLORS)]


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def key_html(object_names, nations, policies) -> str:
    """The colour key of the view, as rich text for a label outside the panels (it covers no data).

    Objects by colour (truth paths, detection bars), nations by colour (radars, coverage, tracks,
    horizons, errors), policies by line style (errors).
    """
    bar = "━━"
    objs = " ".join(f"<span style='color:{_hex(object_color(o))}'>{bar}</span>&nbsp;{name}&nbsp;"
                    for o, name in enumerate(object_names))
    nats = " ".join(f"<span style='color:{_hex(_nation_color(n))}'>{bar}</span>&nbsp;{n}" for n in nations)
    style_words = {"isolated": "dotted", "bilateral": "dashed", "trilateral": "solid"}
    pols = ", ".join(f"{style_words.get(p, 'dash-dot')} {p}" for p in policies)
    return (f"<b>objects</b>&nbsp; {objs} &nbsp;&nbsp;│&nbsp; <b>nations</b> (radars, tracks, horizons) {nats}"
            f" &nbsp;&nbsp;│&nbsp; <b>error lines</b> {pols}; thick: the policy shown"
            " &nbsp;&nbsp;│&nbsp; <b>track square</b> filled: updated, hollow: coasting")


def _path_item(lonlat: np.ndarray, pen, brush) -> QtWidgets.QGraphicsPathItem:
    """A filled QGraphicsPathItem of NaN-separated rings (odd-even fill: lakes come out as holes)."""
    item = QtWidgets.QGraphicsPathItem()
    set_path(item, lonlat)
    item.setPen(pen)
    item.setBrush(pg.mkBrush(brush))
    return item


def set_path(item, lonlat: np.ndarray) -> None:
    """Set a QGraphicsPathItem's path to NaN-separated rings ``(N, 2)``."""
    if len(lonlat) == 0:
        item.setPath(QtGui.QPainterPath())
        return
    path = pg.arrayToQPath(lonlat[:, 0], lonlat[:, 1], connect="finite")
    path.setFillRule(QtCore.Qt.FillRule.OddEvenFill)
    item.setPath(path)


def _log_km(a: np.ndarray) -> np.ndarray:
    """log10 of altitudes in km for the log axis; NaN below :data:`ALT_FLOOR_KM` (launch pad, horizon inside ds)."""
    a = np.asarray(a, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(a >= ALT_FLOOR_KM, np.log10(a), np.nan)


def _nan_join(rows: np.ndarray) -> np.ndarray:
    """Rows ``(n, k)`` joined into one NaN-separated vector ``(n * (k + 1),)``."""
    if rows.size == 0:
        return np.zeros(0)
    return np.hstack([rows, np.full((rows.shape[0], 1), np.nan)]).ravel()


def timeline_lanes(n_objects: int, half_height: float = 0.36) -> np.ndarray:
    """Vertical offsets, in rows, of each object's lane inside a radar's row of the timeline.

    Evenly spread over ``[-half_height, +half_height]`` (first object on top), so that lanes of
    any number of objects stay inside their row (the old fixed 0.18-row step ran into the next
    radar's row from the fourth object on).
    """
    if n_objects <= 1:
        return np.zeros(max(n_objects, 0))
    return np.linspace(half_height, -half_height, n_objects)


def coastline_path_data(box=MAP_BOX, resolution: str = "l") -> np.ndarray:
    """All coastline rings in the box as one NaN-separated ``(N, 2)`` lon/lat array."""
    parts = []
    for ring in coastlines(box, resolution):
        parts.append(ring.lonlat)
        parts.append(np.full((1, 2), np.nan))
    return np.vstack(parts) if parts else np.zeros((0, 2))


class ReplayWorker(QtCore.QThread):
    """Computes a :class:`viz.scene.Scene` off the GUI thread.

    Parameters
    ----------
    compute : callable
        ``compute() -> Scene``; may raise.

    Signals
    -------
    done(object)
        The Scene.
    failed(object)
        The exception.
    """

    done = QtCore.Signal(object)
    failed = QtCore.Signal(object)

    def __init__(self, compute, parent=None):
        super().__init__(parent)
        self._compute = compute

    def run(self):  # noqa: D401 - QThread hook
        try:
            scene = self._compute()
        except BaseException as e:  # reported to the GUI thread, which decides
            self.failed.emit(e)
            return
        self.done.emit(scene)


def default_source(scenario, trial: int, policies):
    """The engine's replay of one trial (:func:`sim.engine.replay`)."""
    from sim.engine import replay

    return replay(scenario, trial, policies)


def known_policies(scenario) -> tuple[str, ...]:
    """Policy names a scenario can show: its own, its custom ones and the built-ins."""
    return tuple(dict.fromkeys(tuple(scenario.sharing.policies) + tuple(c.name for c in scenario.sharing.custom)
                               + BUILTIN_POLICIES))


class ViewWindow(QtWidgets.QMainWindow):
    """Main window of the live view.

    Parameters
    ----------
    scenario : sim.config.Scenario
    trial : int
        Trial shown first.
    speed : float
        Simulated seconds per wall second (> 0).
    policy : str, optional
        Policy shown first (default: the scenario's first).
    source : callable, optional
        ``source(scenario, trial, policies) -> Replay``; default :func:`default_source`.
    start_time : float, optional
        Scenario time shown first, s (default: the first grid time).
    """

    scene_ready = QtCore.Signal()

    def __init__(self, scenario, trial: int = 0, speed: float = 10.0, policy: str | None = None, source=None,
                 start_time: float | None = None, ellipse_scale: float = DEFAULT_ELLIPSE_SCALE):
        super().__init__()
        QtGui.QPixmapCache.setCacheLimit(max(QtGui.QPixmapCache.cacheLimit(), PIXMAP_CACHE_KB))
        self.scenario = scenario
        self.source = source or default_source
        self.policies = list(scenario.sharing.policies)
        if policy is not None and policy not in self.policies:
            self.policies.append(policy)
        self.policy = policy or self.policies[0]
        self.nation = "all"
        self.speed = float(speed)
        self.ellipse_scale = float(ellipse_scale)
        self.scene: Scene | None = None
        self.selected = -1  # index of the object the altitude and error panels follow
        self._object_names: list = []
        self._lanes = np.zeros(0)
        self.error: BaseException | None = None
        self.index = 0
        self.sim_time = 0.0
        self._start_time = start_time
        self._scenes: dict[int, Scene] = {}
        self._worker: ReplayWorker | None = None
        self._workers: list[ReplayWorker] = []
        self._last_wall = None
        self.frame_times: list[float] = []
        self.setWindowTitle(f"gsomia-sim view: {scenario.info.name}")
        self._build_widgets(trial)
        self._build_plots()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(FRAME_INTERVAL_MS)
        self.timer.timeout.connect(self._tick)
        self.load_trial(trial)

    # ----------------------------------------------------------------- widgets
    def _build_widgets(self, trial: int) -> None:
        bar = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(bar)
        row.setContentsMargins(6, 2, 6, 2)
        self.play_button = QtWidgets.QPushButton("Play")
        self.play_button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.play_button.clicked.connect(self.toggle_play)
        row.addWidget(self.play_button)
        row.addWidget(QtWidgets.QLabel("speed"))
        self.speed_box = QtWidgets.QDoubleSpinBox()
        self.speed_box.setRange(0.1, 1000.0)
        self.speed_box.setDecimals(1)
        self.speed_box.setSuffix(" s/s")
        self.speed_box.setValue(self.speed)
        self.speed_box.valueChanged.connect(self._set_speed)
        row.addWidget(self.speed_box)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._slider_moved)
        row.addWidget(self.slider, stretch=1)
        self.time_label = QtWidgets.QLabel("t = --")
        self.time_label.setMinimumWidth(150)
        row.addWidget(self.time_label)
        row.addWidget(QtWidgets.QLabel("policy"))
        self.policy_box = QtWidgets.QComboBox()
        self.policy_box.addItems(self.policies)
        self.policy_box.setCurrentText(self.policy)
        self.policy_box.currentTextChanged.connect(self._set_policy)
        row.addWidget(self.policy_box)
        row.addWidget(QtWidgets.QLabel("nation"))
        self.nation_box = QtWidgets.QComboBox()
        self.nation_box.addItems(["all", "US", "JP", "KR"])
        self.nation_box.currentTextChanged.connect(self._set_nation)
        row.addWidget(self.nation_box)
        row.addWidget(QtWidgets.QLabel("object"))
        self.object_box = QtWidgets.QComboBox()  # the object the altitude and error panels are about
        self.object_box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.object_box.currentIndexChanged.connect(self._set_object)
        row.addWidget(self.object_box)
        row.addWidget(QtWidgets.QLabel("trial"))
        self.trial_box = QtWidgets.QSpinBox()
        self.trial_box.setRange(0, max(self.scenario.info.trials - 1, 0))
        self.trial_box.setValue(trial)
        self.trial_box.setKeyboardTracking(False)  # recompute only when the number is complete
        self.trial_box.valueChanged.connect(self.load_trial)
        row.addWidget(self.trial_box)
        self.status = QtWidgets.QLabel("")
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 0)  # busy indicator: the engine reports no fraction done
        self.progress.setMaximumWidth(120)
        self.statusBar().addWidget(self.status, 1)
        self.statusBar().addPermanentWidget(self.progress)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        # The colour key lives outside the panels, where it covers no data and wraps at any width.
        self.key_label = QtWidgets.QLabel("")
        self.key_label.setWordWrap(True)
        self.key_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.key_label.setStyleSheet("background: black; color: #c8c8c8; padding: 2px 8px; font-size: 8pt;")
        central = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(central)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(bar)
        col.addWidget(self.key_label)
        col.addWidget(self.graphics, stretch=1)
        self.setCentralWidget(central)
        self.resize(DEFAULT_WIDTH, DEFAULT_WIDTH * 5 // 8)

    def _build_plots(self) -> None:
        g = self.graphics
        self.title_label = g.addLabel("", row=0, col=0, colspan=2)
        # (a) map
        self.map = g.addPlot(row=1, col=0, rowspan=2)
        lon0, lon1, lat0, lat1 = MAP_BOX
        self.map.getViewBox().setBackgroundColor(SEA_COLOR)
        self.map.setAspectLocked(True, ratio=float(np.cos(np.radians(0.5 * (lat0 + lat1)))))
        self.map.setXRange(lon0, lon1, padding=0)
        self.map.setYRange(lat0, lat1, padding=0)
        self.map.showGrid(x=True, y=True, alpha=0.15)
        land = _path_item(coastline_path_data(), pg.mkPen((120, 125, 135), width=1), LAND_BRUSH)
        land.setZValue(-20)
        _cache(land)
        self.map.addItem(land)
        self.coast_item = land
        self.coverage_items: list = []
        self.site_item = pg.ScatterPlotItem(size=9, symbol="t1", pen=pg.mkPen("k"))
        self.site_item.setZValue(5)
        self.map.addItem(self.site_item)
        self.site_labels: list = []
        self.los_item = pg.PlotCurveItem(pen=pg.mkPen((255, 255, 255, 70), width=1), connect="finite")
        self.map.addItem(self.los_item)
        # (b) altitude against ground range
        self.alt = g.addPlot(row=1, col=1)
        self.alt.setLabel("bottom", "ground range from its launch point", units="km")
        self.alt.setLabel("left", "altitude (log)", units="km")
        # Log altitude: the horizons (tens of km) and a lofted apogee (thousands of km) on one panel.
        self.alt.getAxis("left").setLogMode(True)
        self.alt.getAxis("bottom").enableAutoSIPrefix(False)
        self.alt.getAxis("left").enableAutoSIPrefix(False)
        self.alt.showGrid(x=True, y=True, alpha=0.2)
        self.horizon_items: list = []
        # (c) position error against time
        self.err = g.addPlot(row=2, col=1)
        self.err.setLabel("bottom", "time", units="s")
        self.err.setLabel("left", "error", units="km")
        self.err.getAxis("left").enableAutoSIPrefix(False)
        self.err.getAxis("bottom").enableAutoSIPrefix(False)
        self.err.showGrid(x=True, y=True, alpha=0.2)
        self.err_cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 255, 255, 120)))
        self.err.addItem(self.err_cursor)
        # A veil over the future: the whole error history is drawn once (static, cached) and this
        # rectangle, moved each frame, dims what has not happened yet.
        self.err_future = QtWidgets.QGraphicsRectItem(QtCore.QRectF(0, 0, 0, 0))
        self.err_future.setPen(pg.mkPen(None))
        self.err_future.setBrush(pg.mkBrush(0, 0, 0, 185))
        self.err_future.setZValue(50)
        self.err.addItem(self.err_future, ignoreBounds=True)
        # (d) timeline
        self.timeline = g.addPlot(row=3, col=0, colspan=2)
        self.timeline.setTitle("Detections: which radar sees which object (colour: object)", size=TITLE_SIZE)
        self.timeline.setLabel("bottom", "time", units="s")
        self.timeline.getAxis("bottom").enableAutoSIPrefix(False)
        self.timeline.setMouseEnabled(y=False)
        self.timeline_cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 255, 255, 150)))
        self.timeline.addItem(self.timeline_cursor)
        self.timeline_now = pg.ScatterPlotItem(size=8, symbol="o", brush=pg.mkBrush(255, 255, 255))
        self.timeline_now.setZValue(5)
        self.timeline.addItem(self.timeline_now)
        self.timeline_items: list = []
        g.ci.layout.setColumnStretchFactor(0, 3)
        g.ci.layout.setColumnStretchFactor(1, 2)
        g.ci.layout.setRowStretchFactor(1, 3)
        g.ci.layout.setRowStretchFactor(2, 3)
        g.ci.layout.setRowStretchFactor(3, 2)
        for plot in (self.map, self.alt, self.err, self.timeline):
            for name in ("left", "bottom"):
                _cache(plot.getAxis(name))
        # Per-frame items, created once per scene and updated with setData.
        self.truth_map: list = []
        self.truth_alt: list = []
        self.truth_now_map = pg.ScatterPlotItem(size=8, pen=pg.mkPen("k"))
        self.truth_now_map.setZValue(10)
        self.map.addItem(self.truth_now_map)
        self.truth_now_alt = pg.ScatterPlotItem(size=8, pen=pg.mkPen("k"))
        self.truth_now_alt.setZValue(10)
        self.alt.addItem(self.truth_now_alt)
        self.track_map: dict = {}
        self.track_now: dict = {}
        self.track_ellipse: dict = {}
        self.track_alt: dict = {}
        self.err_items: dict = {}
        self.err_bands: dict = {}
        self._update_titles()  # named after the selected object once a trial is computed

    # ----------------------------------------------------------------- data
    def load_trial(self, trial: int) -> None:
        """Show a trial: from the in-process cache, or computed in a worker thread."""
        trial = int(trial)
        if trial in self._scenes:
            self.set_scene(self._scenes[trial])
            return
        self.playing = False
        self.timer.stop()
        self.play_button.setText("Play")
        self.status.setText(f"computing trial {trial} of {self.scenario.info.name} "
                            f"({', '.join(self.policies)}) in the background...")
        self.progress.setVisible(True)
        scenario, policies, source = self.scenario, list(self.policies), self.source

        def compute():
            return build_scene(source(scenario, trial, policies), policies)

        worker = ReplayWorker(compute, self)
        worker.done.connect(self._scene_done)
        worker.failed.connect(self._scene_failed)
        self._worker = worker
        self._workers.append(worker)
        worker.start()

    def _scene_done(self, scene: Scene) -> None:
        self._scenes[scene.trial] = scene
        if self._worker is not None and self.sender() is not self._worker:
            return  # a stale trial finished after the user picked another
        self.progress.setVisible(False)
        self.status.setText(f"trial {scene.trial}: {len(scene.t)} steps, {len(scene.radars)} radars, "
                            f"{len(scene.tracks)} (policy, nation) trackers")
        self.set_scene(scene)
        self.scene_ready.emit()

    def _scene_failed(self, err: BaseException) -> None:
        self.error = err
        self.progress.setVisible(False)
        self.status.setText(f"could not compute the trial: {err}")
        self.scene_ready.emit()

    closed = False

    def wait_ready(self, timeout_s: float | None = 600.0) -> Scene | None:
        """Block (processing events, so the window stays live) until the current trial is computed.

        ``timeout_s`` None waits as long as the computation takes. Returns None if the window was
        closed meanwhile; re-raises the worker's error; raises TimeoutError after ``timeout_s``.
        """
        deadline = np.inf if timeout_s is None else time.monotonic() + timeout_s
        app = QtWidgets.QApplication.instance()
        while self.scene is None and self.error is None and not self.closed:
            if time.monotonic() > deadline:
                raise TimeoutError(f"trial not computed within {timeout_s} s")
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
            if self._worker is not None:
                self._worker.wait(20)
        if self.error is not None:
            raise self.error
        return self.scene

    def closeEvent(self, event):  # noqa: N802 - Qt hook
        # Running workers are left to finish (a QThread cannot be interrupted inside numpy);
        # :meth:`wait_workers` joins them before the window is dropped.
        self.timer.stop()
        self.closed = True
        super().closeEvent(event)

    def wait_workers(self) -> None:
        """Join every worker thread started by this window."""
        for w in self._workers:
            w.wait()

    # ----------------------------------------------------------------- scene
    def _clear_scene_items(self) -> None:
        for plot, items in ((self.map, self.coverage_items), (self.map, self.site_labels),
                            (self.map, self.truth_map), (self.alt, self.truth_alt),
                            (self.alt, self.horizon_items), (self.timeline, self.timeline_items)):
            for it in items:
                plot.removeItem(it)
            items.clear()
        for plot, d in ((self.map, self.track_map), (self.map, self.track_now), (self.map, self.track_ellipse),
                        (self.alt, self.track_alt), (self.err, self.err_items), (self.err, self.err_bands)):
            for it in d.values():
                plot.removeItem(it)
            d.clear()

    def set_scene(self, scene: Scene) -> None:
        """Create the items of a scene (static ones filled once) and show its start."""
        self._clear_scene_items()
        self.scene = scene
        self.error = None
        self._log_alt = {"truth": _log_km(scene.truth_alt_km)}
        self._log_alt.update({key: _log_km(ts.alt_km) for key, ts in scene.tracks.items()})
        self.title_label.setText(f"{scene.title} — trial {scene.trial}")
        names = list(scene.object_names)
        keep = self.selected if 0 <= self.selected < len(names) and names == self._object_names else scene.target
        self._object_names = names
        self.object_box.blockSignals(True)
        self.object_box.clear()
        self.object_box.addItems(names)
        self.object_box.setCurrentIndex(keep)
        self.object_box.blockSignals(False)
        self.selected = keep
        self.key_label.setText(key_html(names, scene.nations, self.policies))
        # Radars: coverage wedges, sites, labels.
        spots = []
        for nation in dict.fromkeys(r.nation for r in scene.radars):
            # One item per nation (winding fill: overlapping sectors tint once); few large items paint faster.
            parts = [np.vstack([o, np.full((1, 2), np.nan)]) for r, o in zip(scene.radars, scene.coverage)
                     if r.nation == nation and len(o)]
            item = _path_item(np.vstack(parts), pg.mkPen(_nation_color(nation, 70), width=1),
                              _nation_color(nation, 12))
            path = item.path()
            path.setFillRule(QtCore.Qt.FillRule.WindingFill)
            item.setPath(path)
            item.setZValue(-10)
            _cache(item)
            self.map.addItem(item)
            self.coverage_items.append(item)
        for r in scene.radars:
            spots.append({"pos": (r.lon_deg, r.lat_deg), "brush": pg.mkBrush(_nation_color(r.nation))})
            label = pg.TextItem(r.name, color=_nation_color(r.nation, 200), anchor=(0, 1))
            label.setFont(QtGui.QFont("sans", 7))
            label.setPos(r.lon_deg, r.lat_deg)
            self.map.addItem(label)
            self.site_labels.append(label)
        self.site_item.setData(spots)
        # Truth: faint full path, solid progress.
        for o, name in enumerate(scene.object_names):
            color = object_color(o)
            ghost = pg.PlotCurveItem(scene.truth_lon[o], scene.truth_lat[o], connect="finite",
                                     pen=pg.mkPen(color + (60,), width=1))
            live = pg.PlotCurveItem(pen=pg.mkPen(color, width=2), connect="finite")
            _cache(ghost)
            for it in (ghost, live):
                it.setZValue(7 if o == scene.target else 6)  # the target on top of its spent stage
                self.map.addItem(it)
                self.truth_map.append(it)
            ghost_a = pg.PlotCurveItem(scene.truth_ground_km[o], _log_km(scene.truth_alt_km[o]), connect="finite",
                                       pen=pg.mkPen(color + (60,), width=1))
            live_a = pg.PlotCurveItem(pen=pg.mkPen(color, width=2), connect="finite")
            _cache(ghost_a)
            for it in (ghost_a, live_a):
                it.setZValue(7 if o == scene.target else 6)
                self.alt.addItem(it)
                self.truth_alt.append(it)
        # Horizon curves: lowest visible altitude along the selected object's ground track (set in _show_object).
        for r in scene.radars:
            it = _cache(pg.PlotCurveItem(connect="finite", pen=pg.mkPen(_nation_color(r.nation, 140), width=1,
                                                                        style=QtCore.Qt.PenStyle.DashLine)))
            self.alt.addItem(it)
            self.horizon_items.append(it)
        # Tracks per nation (map, altitude) and errors per (policy, nation).
        for nation in scene.nations:
            c = _nation_color(nation)
            self.track_map[nation] = pg.PlotCurveItem(pen=pg.mkPen(c, width=2), connect="finite")
            # larger than the truth's dot (size 8, drawn above): a filled square shows as a coloured frame
            # around it, a hollow (coasting) one as a thin outline
            self.track_now[nation] = pg.ScatterPlotItem(size=12, symbol="s", brush=pg.mkBrush(c), pen=None)
            self.track_ellipse[nation] = pg.PlotCurveItem(pen=pg.mkPen(c, width=1), connect="finite")
            self.track_alt[nation] = pg.PlotCurveItem(pen=pg.mkPen(c, width=2), connect="finite")
            for it in (self.track_map[nation], self.track_now[nation], self.track_ellipse[nation]):
                it.setZValue(8)
                self.map.addItem(it)
            self.track_alt[nation].setZValue(8)
            self.alt.addItem(self.track_alt[nation])
        for (policy, nation) in scene.tracks:
            style = POLICY_STYLES.get(policy, QtCore.Qt.PenStyle.DashDotLine)
            item = pg.PlotCurveItem(pen=pg.mkPen(_nation_color(nation), width=1, style=style), connect="finite")
            item.setZValue(3)
            _cache(item)
            self.err.addItem(item)
            self.err_items[(policy, nation)] = item
        for nation in scene.nations:
            # The band 0..2 sigma: one curve filled down to zero (FillBetweenItem rebuilds a
            # polygon path on every change and costs ~7 ms a frame).
            band = pg.PlotCurveItem(pen=None, fillLevel=0.0, brush=pg.mkBrush(_nation_color(nation, 45)))
            band.setZValue(1)
            _cache(band)
            self.err.addItem(band)
            self.err_bands[nation] = band
        # Timeline: bars per (radar, object), static; each object on its own lane inside its radar's row.
        n = len(scene.radars)
        iv = scene.intervals
        self._lanes = timeline_lanes(len(scene.object_names))
        for o, name in enumerate(scene.object_names):
            rows = iv[iv[:, 1] == o] if len(iv) else np.zeros((0, 4))
            y = rows[:, 0] + self._lanes[o]
            xs = np.column_stack([rows[:, 2], rows[:, 3]]).ravel()
            ys = np.repeat(y, 2)
            item = pg.PlotCurveItem(xs, ys, connect="pairs", pen=pg.mkPen(object_color(o), width=3))
            _cache(item)
            self.timeline.addItem(item)
            self.timeline_items.append(item)
        ax = self.timeline.getAxis("left")
        ax.setTicks([[(i, r.name) for i, r in enumerate(scene.radars)]])
        # Fix the axis width to the longest radar name now: left to the axis, the width follows the labels
        # only at the next paint, so the first grab of a never-shown window drew the names clipped away.
        font = ax.style.get("tickFont") or ax.font()
        metrics = QtGui.QFontMetrics(font)
        text_w = max((metrics.horizontalAdvance(r.name) for r in scene.radars), default=0)
        ax.setWidth(text_w + max(ax.style["tickLength"], 0) + ax.style["tickTextOffset"][0] + 8)
        self.timeline.setYRange(-0.6, n - 0.4, padding=0)
        # A row per radar tall enough for its name (about 13 px at the tick font), whatever the window height.
        self.timeline.setMinimumHeight(13 * n + 75)
        self.timeline.setXRange(scene.t[0], scene.t[-1], padding=0.01)
        self.err.setXRange(scene.t[0], scene.t[-1], padding=0.01)
        finite = np.isfinite(scene.truth_ground_km)
        if finite.any():
            self.alt.setXRange(0.0, float(np.nanmax(scene.truth_ground_km)) * 1.05, padding=0)
            self.alt.setYRange(np.log10(ALT_FLOOR_KM), np.log10(float(np.nanmax(scene.truth_alt_km)) * 1.5),
                               padding=0)
        self._show_object()
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(scene.t) - 1)
        self.slider.blockSignals(False)
        self.slider.setEnabled(True)
        start = scene.t[0] if self._start_time is None else self._start_time
        self._start_time = None
        self.seek(start)

    def _update_error_curves(self) -> None:
        """Fill the error curves for the chosen policy and nation (only when those change, not per frame)."""
        s = self.scene
        o = self.selected
        for (policy, nation), item in self.err_items.items():
            if self.nation not in ("all", nation):
                item.setData([], [])
                continue
            chosen = policy == self.policy
            item.setPen(pg.mkPen(_nation_color(nation, 255 if chosen else 130), width=2.5 if chosen else 1.0,
                                 style=POLICY_STYLES.get(policy, QtCore.Qt.PenStyle.DashDotLine)))
            item.setZValue(4 if chosen else 3)
            item.setData(s.t, s.tracks[(policy, nation)].err_km[o])
        for nation, band in self.err_bands.items():
            ts = s.tracks.get((self.policy, nation))
            if ts is None or self.nation not in ("all", nation):
                band.setData([], [])
                continue
            band.setData(s.t, ts.band_km[o])

    def _update_titles(self) -> None:
        name = self.scene.object_names[self.selected] if self.scene is not None else "the target"
        self.map.setTitle(f"Map: tracks under <b>{self.policy}</b>, 2σ ellipses ×{self.ellipse_scale:g}",
                          size=TITLE_SIZE)
        self.alt.setTitle(f"Altitude vs ground range; horizons for <b>{name}</b>", size=TITLE_SIZE)
        self.err.setTitle(f"Error of the best track on <b>{name}</b>; 2σ: <b>{self.policy}</b>", size=TITLE_SIZE)

    def _show_object(self) -> None:
        """Point the altitude and error panels at the selected object: its horizons, its errors, its name."""
        s, o = self.scene, self.selected
        for i, it in enumerate(self.horizon_items):
            it.setData(s.horizon_ground_km[o, i], _log_km(s.horizon_alt_km[o, i]))
        for k, it in enumerate(self.truth_alt):  # the selected object's path on top, a little thicker
            oo = k // 2
            it.setZValue(9 if oo == o else (7 if oo == s.target else 6))
        for k in range(1, len(self.truth_map), 2):
            self.truth_map[k].setPen(pg.mkPen(object_color(k // 2), width=3 if k // 2 == o else 2))
            self.truth_alt[k].setPen(pg.mkPen(object_color(k // 2), width=3 if k // 2 == o else 2))
        self._fix_error_range()
        self._update_error_curves()
        self._update_titles()

    def _set_object(self, index: int) -> None:
        if self.scene is None or index < 0:
            return
        self.selected = int(index)
        self._show_object()

    def _fix_error_range(self) -> None:
        s = self.scene
        o = self.selected
        vals = [ts.err_km[o] for ts in s.tracks.values()] + [2 * ts.sigma_km[o] for (p, _), ts in s.tracks.items()
                                                             if p == self.policy]
        top = max((float(np.nanpercentile(v, 98)) for v in vals if np.isfinite(v).any()), default=1.0)
        self._err_top = top * 1.1 if top > 0 else 1.0
        self.err.setYRange(0.0, self._err_top, padding=0)

    # ----------------------------------------------------------------- frames
    def seek(self, time_s: float) -> None:
        """Show the scenario at a time (s); the clock continues from there when playing."""
        if self.scene is None:
            return
        self.sim_time = float(np.clip(time_s, self.scene.t[0], self.scene.t[-1]))
        self.set_index(self.scene.index_at(self.sim_time), from_clock=True)

    def set_index(self, k: int, from_clock: bool = False) -> None:
        """Draw time step ``k``: update every moving item with setData."""
        s = self.scene
        if s is None:
            return
        t0 = time.perf_counter()
        k = int(np.clip(k, 0, len(s.t) - 1))
        self.index = k
        if not from_clock:
            self.sim_time = float(s.t[k])
        now = float(s.t[k])
        sl = slice(0, k + 1)
        self.time_label.setText(f"t = {now:7.1f} s  ({k + 1}/{len(s.t)})")
        if self.slider.value() != k:
            self.slider.blockSignals(True)
            self.slider.setValue(k)
            self.slider.blockSignals(False)
        # Truth.
        spots_map, spots_alt = [], []
        for o in range(len(s.object_names)):
            self.truth_map[2 * o + 1].setData(s.truth_lon[o, sl], s.truth_lat[o, sl])
            self.truth_alt[2 * o + 1].setData(s.truth_ground_km[o, sl], self._log_alt["truth"][o, sl])
            b = pg.mkBrush(object_color(o))
            if np.isfinite(s.truth_lon[o, k]):
                spots_map.append({"pos": (s.truth_lon[o, k], s.truth_lat[o, k]), "brush": b})
            if np.isfinite(s.truth_ground_km[o, k]) and np.isfinite(self._log_alt["truth"][o, k]):
                spots_alt.append({"pos": (s.truth_ground_km[o, k], self._log_alt["truth"][o, k]), "brush": b})
        self.truth_now_map.setData(spots_map)
        self.truth_now_alt.setData(spots_alt)
        # Tracks of the chosen policy.
        for nation in s.nations:
            ts = s.tracks.get((self.policy, nation))
            shown = ts is not None and self.nation in ("all", nation)
            if not shown:
                for d in (self.track_map, self.track_alt, self.track_ellipse):
                    d[nation].setData([], [])
                self.track_now[nation].setData([], [])
                continue
            self.track_map[nation].setData(_nan_join(ts.lon[:, sl]), _nan_join(ts.lat[:, sl]))
            self.track_alt[nation].setData(_nan_join(ts.ground_km[:, sl]),
                                           _nan_join(self._log_alt[(self.policy, nation)][:, sl]))
            live = np.isfinite(ts.lon[:, k])
            # A coasting track (predicted only, no update for a while) is a hollow square, an updated one filled.
            coast = ts.coasting[live, k] if ts.coasting is not None else np.zeros(int(live.sum()), bool)
            c = _nation_color(nation)
            self.track_now[nation].setData(ts.lon[live, k], ts.lat[live, k],
                                           brush=[pg.mkBrush(None) if q else pg.mkBrush(c) for q in coast],
                                           pen=[pg.mkPen(c, width=1.5) if q else None for q in coast])
            elon, elat = ellipses_lonlat(ts.pos[live, k], ts.P_pos[live, k], scale=self.ellipse_scale)
            self.track_ellipse[nation].setData(elon, elat)
        # Errors: drawn whole (static, cached); the future is veiled.
        self.err_cursor.setValue(now)
        # Bounded rectangle: a +-1e9 one overflows the raster engine's fixed-point clip and is not drawn.
        self.err_future.setRect(QtCore.QRectF(now, -100.0 * self._err_top, max(float(s.t[-1]) - now, 0.0) + 1e4,
                                              200.0 * self._err_top))
        # Who sees what now: timeline markers and lines of sight on the map.
        dt = float(s.t[1] - s.t[0]) if len(s.t) > 1 else 1.0
        act = active_detections(s.intervals, now, slack_s=0.5 * dt)
        self.timeline_cursor.setValue(now)
        self.timeline_now.setData(np.full(len(act), now), act[:, 0] + self._lanes[act[:, 1].astype(int)])
        los_x, los_y = [], []
        for sensor, obj in act[:, :2].astype(int):
            if self.nation != "all" and s.radars[sensor].nation != self.nation:
                continue
            if np.isfinite(s.truth_lon[obj, k]):
                r = s.radars[sensor]
                los_x += [r.lon_deg, s.truth_lon[obj, k], np.nan]
                los_y += [r.lat_deg, s.truth_lat[obj, k], np.nan]
        self.los_item.setData(np.array(los_x, dtype=float), np.array(los_y, dtype=float))
        self.frame_times.append(time.perf_counter() - t0)

    def _tick(self) -> None:
        if self.scene is None:
            return
        wall = time.perf_counter()
        elapsed = 0.0 if self._last_wall is None else wall - self._last_wall
        self._last_wall = wall
        self.sim_time += self.speed * elapsed
        if self.sim_time >= self.scene.t[-1]:
            self.sim_time = float(self.scene.t[-1])
            self.set_index(len(self.scene.t) - 1, from_clock=True)
            self.pause()
            return
        k = self.scene.index_at(self.sim_time)
        if k != self.index:
            self.set_index(k, from_clock=True)

    # ----------------------------------------------------------------- controls
    playing = False

    def play(self) -> None:
        """Start the clock (from the start if at the end)."""
        if self.scene is None:
            return
        if self.index >= len(self.scene.t) - 1:
            self.seek(self.scene.t[0])
        self.playing = True
        self._last_wall = None
        self.play_button.setText("Pause")
        self.timer.start()

    def pause(self) -> None:
        """Stop the clock."""
        self.playing = False
        self.timer.stop()
        self.play_button.setText("Play")

    def toggle_play(self) -> None:
        """Play if paused, pause if playing."""
        self.pause() if self.playing else self.play()

    def step(self, n: int) -> None:
        """Pause and move ``n`` time steps (negative: back)."""
        self.pause()
        self.set_index(self.index + n)

    def _set_speed(self, value: float) -> None:
        self.speed = float(value)

    def _slider_moved(self, k: int) -> None:
        self.set_index(k)

    def _set_policy(self, policy: str) -> None:
        self.policy = policy
        if self.scene is not None:
            self._fix_error_range()
            self._update_error_curves()
            self._update_titles()
            self.set_index(self.index, from_clock=True)

    def _set_nation(self, nation: str) -> None:
        self.nation = nation
        if self.scene is not None:
            self._update_error_curves()
            self.set_index(self.index, from_clock=True)

    def keyPressEvent(self, event):  # noqa: N802 - Qt hook
        key = event.key()
        big = bool(event.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
        if key == QtCore.Qt.Key.Key_Space:
            self.toggle_play()
        elif key == QtCore.Qt.Key.Key_Right:
            self.step(10 if big else 1)
        elif key == QtCore.Qt.Key.Key_Left:
            self.step(-10 if big else -1)
        else:
            super().keyPressEvent(event)
            return
        event.accept()


def _check_args(scenario, args) -> None:
    trials = scenario.info.trials
    if not 0 <= int(args.trial) < trials:
        raise InputError.single("--trial", args.trial, f"a trial index in [0, {trials - 1}]")
    if not (np.isfinite(args.speed) and args.speed > 0):
        raise InputError.single("--speed", args.speed, "a finite number of simulated seconds per wall second, > 0")
    if args.policy is not None and args.policy not in known_policies(scenario):
        raise InputError.single("--policy", args.policy, "one of " + ", ".join(known_policies(scenario)))
    if args.screenshot is not None and Path(args.screenshot).suffix.lower() != ".png":
        raise InputError.single("--screenshot", args.screenshot, "a file name ending in .png")
    if args.screenshot is not None and not Path(args.screenshot).resolve().parent.is_dir():
        raise InputError.single("--screenshot", args.screenshot, "a .png file in an existing folder")
    if args.at is not None and not np.isfinite(args.at):
        raise InputError.single("--at", args.at, "a finite scenario time, s")
    width = getattr(args, "width", None)
    if width is not None and not MIN_WIDTH <= int(width) <= MAX_WIDTH:
        raise InputError.single("--width", width, f"a window width in pixels in [{MIN_WIDTH}, {MAX_WIDTH}]")
    if args.at is not None:
        # The span ends at impact, so it needs the trial's flight (a few seconds), not the minute the
        # trackers take: check it before the window starts computing.
        from sim.truth import generate_truth

        info = scenario.info
        t = generate_truth(scenario.threats, [int(args.trial)], info.seed, info.dt, info.duration).t
        if not t[0] <= args.at <= t[-1]:
            raise InputError.single("--at", args.at, f"a scenario time in [{t[0]:g}, {t[-1]:g}] s")


def probe_display(timeout_s: float = 20.0) -> str | None:
    """Whether Qt can open its platform plugin here, asked of a child process; None if it can, else why not.

    A Qt platform plugin that cannot start (``DISPLAY`` naming a display that does not exist, a
    ``QT_QPA_PLATFORM`` that cannot load) makes Qt call ``qFatal``, which aborts the process with
    SIGABRT: nothing in this process could catch it. A child with the same environment takes the
    abort instead, and its standard error says what failed.

    Returns
    -------
    str or None
        None when the child could create a ``QGuiApplication``; otherwise the last line Qt printed
        (or the exit status).
    """
    import subprocess

    code = "import sys; from PySide6.QtGui import QGuiApplication; QGuiApplication(sys.argv[:1])"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"no answer from the Qt platform plugin within {timeout_s:g} s"
    if done.returncode == 0:
        return None
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    hint = next((ln for ln in lines if "could not" in ln.lower() or "cannot" in ln.lower()), None)
    if hint is None:
        return lines[-1] if lines else f"exit status {done.returncode}"
    # 'qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though it was found.'
    return hint.split(": ", 1)[-1].split(' in "')[0].rstrip(".")


_QT_NOISE = ("does not support propagateSizeHints",)  # offscreen platform plugin, harmless (new-user trials)


def _qt_messages(mode, context, message) -> None:
    """Qt's messages to standard error, less the off-screen plugin's harmless notices."""
    if not any(n in message for n in _QT_NOISE):
        print(message, file=sys.stderr)


def _app() -> QtWidgets.QApplication:
    pg.setConfigOptions(antialias=False)  # 30 fps on software rendering
    QtCore.qInstallMessageHandler(_qt_messages)
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])


def screenshot(window: ViewWindow, path, at: float | None = None, timeout_s: float | None = 600.0) -> Path:
    """Render the whole window at scenario time ``at`` (s; default the last step) to a PNG.

    ``timeout_s`` bounds the wait for the trial (None: as long as it takes, what the CLI does).

    Raises
    ------
    InputError
        ``at`` outside the scenario's time span.
    TimeoutError
        The trial was not computed within ``timeout_s``.
    """
    scene = window.wait_ready(timeout_s)
    if scene is None:
        raise RuntimeError("the window was closed before the trial was computed")
    t0, t1 = float(scene.t[0]), float(scene.t[-1])
    if at is not None and not t0 <= at <= t1:
        raise InputError.single("--at", at, f"a scenario time in [{t0:g}, {t1:g}] s")
    window.pause()
    window.seek(t1 if at is None else at)
    app = QtWidgets.QApplication.instance()
    app.processEvents()
    # pyqtgraph fits an axis to its tick labels while painting it, so the first paint after the data,
    # the range or the size changed draws the labels over the axis title: paint once, then grab.
    window.grab()
    app.processEvents()
    path = Path(path)
    if not window.grab().save(str(path), "PNG"):
        raise InputError.single("--screenshot", str(path), "a writable PNG path")
    return path


def _source_with_progress(scenario, trial: int, policies):
    """:func:`default_source` saying on standard error what it computes, with its progress and ETA
    (:class:`sim.progress.TrialProgress`): a screenshot takes a minute, not in silence."""
    from sim.engine import replay
    from sim.progress import TrialProgress

    label = f"computing trial {trial} of {scenario.info.name} ({', '.join(policies)} x US, JP, KR)"
    with TrialProgress(label, 1) as progress:
        return replay(scenario, trial, policies, progress=progress)


def main(args) -> int:
    """Entry point of ``gsomia-sim view`` (wired by :mod:`sim.cli`).

    Parameters
    ----------
    args : argparse.Namespace
        ``scenario`` (path), ``trial`` (int), ``speed`` (float, simulated s per
        wall s), ``policy`` (str or None), ``screenshot`` (path or None), ``at``
        (float or None, s), ``width`` (int or None, px; optional).

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    sim.errors.InputError
        Bad scenario file, trial out of range, unknown policy, speed <= 0,
        ``--at`` outside the scenario's time span, screenshot not a .png, ``--width``
        outside [1024, 4096], no display on Linux without ``--screenshot``, or a
        display or Qt platform plugin that cannot start (probed in a child process,
        :func:`probe_display`: Qt would abort this one).
    """
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario, getattr(args, "overrides", None))  # --set KEY=VALUE
    _check_args(scenario, args)
    import os
    import sys

    allowed = "a desktop session, or --screenshot FILE.png --at T to render headless"
    if args.screenshot is not None:
        # A screenshot needs no screen: render off-screen unless the user chose a platform.
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif (sys.platform.startswith("linux") and "QT_QPA_PLATFORM" not in os.environ
          and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        # Qt would abort the process (no platform plugin can start) instead of raising.
        raise InputError.single("DISPLAY", "unset (and WAYLAND_DISPLAY too)", allowed)
    if (QtWidgets.QApplication.instance() is None
            and os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] not in HEADLESS_PLATFORMS):
        # A display that does not exist, or a plugin that cannot load: Qt would abort (SIGABRT) when
        # asked for the application below, so ask a child process first.
        why = probe_display()
        if why is not None:
            platform = os.environ.get("QT_QPA_PLATFORM")
            where = (f"QT_QPA_PLATFORM={platform}" if platform else
                     f"DISPLAY={os.environ.get('DISPLAY', '')}" if os.environ.get("DISPLAY") else
                     f"WAYLAND_DISPLAY={os.environ.get('WAYLAND_DISPLAY', '')}")
            key, value = where.split("=", 1)
            raise InputError.single(key, value, f"a display Qt can open (Qt: {why}), or --screenshot FILE.png "
                                                "--at T to render headless")
    app = _app()
    window = ViewWindow(scenario, trial=int(args.trial), speed=float(args.speed), policy=args.policy,
                        start_time=args.at, source=_source_with_progress)
    width = getattr(args, "width", None) or DEFAULT_WIDTH
    window.resize(int(width), int(round(width * 5 / 8)))
    try:
        if args.screenshot is not None:
            window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen, True)
            window.show()
            # No deadline: a lofted ICBM's trial on a loaded machine took over 600 s, and the
            # user asked for the picture (a timeout here ended in a traceback).
            screenshot(window, args.screenshot, args.at, timeout_s=None)
            return 0
        window.show()
        scene = window.wait_ready(timeout_s=None)  # the window stays live; the user can close it
        if scene is None:  # closed while computing
            return 0
        if args.at is not None and not scene.t[0] <= args.at <= scene.t[-1]:
            raise InputError.single("--at", args.at, f"a scenario time in [{scene.t[0]:g}, {scene.t[-1]:g}] s")
        app.exec()
        return 0
    finally:
        window.close()
        window.wait_workers()


def bench_view(scenario_path=None, frames: int = 300, source=None) -> dict:
    """Frame rate of the view on a scenario (default: the Hwasong-15 vignette), printed and returned.

    Renders ``frames`` consecutive frames (update every item and repaint the
    whole window synchronously) through the middle of the flight, with every
    nation shown.

    Returns
    -------
    dict
        ``{"frames", "update_ms", "frame_ms", "fps", "cpu_ms", "fps_cpu", "compute_s", "steps"}``:
        mean item-update time, mean full frame time (update + paint) in wall and CPU time, frames
        per second from each, time to compute the trial (s), time steps.
    """
    from sim.scenario import load_scenario

    if scenario_path is None:
        scenario_path = Path(__file__).resolve().parents[1] / "scenarios" / "hwasong15_2017-11-29.toml"
    app = _app()
    scenario = load_scenario(scenario_path)
    c0 = time.perf_counter()
    window = ViewWindow(scenario, source=source)
    window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    window.show()
    scene = window.wait_ready()
    compute_s = time.perf_counter() - c0
    T = len(scene.t)
    start = max(0, T // 2 - frames // 2)
    window.frame_times.clear()
    f0, c0 = time.perf_counter(), time.process_time()
    for i in range(frames):
        window.set_index(min(start + i, T - 1))
        window.graphics.repaint()
        app.processEvents()
    total, cpu = time.perf_counter() - f0, time.process_time() - c0
    # CPU time too: on a machine shared with other jobs the wall figure understates the view.
    out = {"frames": frames, "update_ms": 1e3 * float(np.mean(window.frame_times)),
           "frame_ms": 1e3 * total / frames, "fps": frames / total, "cpu_ms": 1e3 * cpu / frames,
           "fps_cpu": frames / cpu, "compute_s": compute_s, "steps": T}
    window.close()
    window.wait_workers()
    print(f"view: {out['fps']:.1f} fps ({out['frame_ms']:.1f} ms/frame wall, {out['cpu_ms']:.1f} ms CPU, "
          f"item updates {out['update_ms']:.1f} ms), "
          f"trial computed in {compute_s:.1f} s, {T} steps")
    return out


if __name__ == "__main__":  # pragma: no cover
    bench_view()
