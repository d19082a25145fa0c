"""Sensor catalog: required entries, plain-JSON rows, overrides in file units, and bad input."""

import json
import math

import numpy as np
import pymap3d
import pytest

from sensors.catalog import CATALOG, OVERRIDE_KEYS, build_radar, catalog_radar, catalog_rows, check_overrides
from sim.config import SensorConfig
from sim.errors import InputError

REQUIRED = (
    "us-tpy2-shariki", "us-tpy2-kyogamisaki", "us-thaad-seongju", "us-aegis-soj",
    "jp-fps5-sado", "jp-fps5-shimokoshiki", "jp-fps5-ominato", "jp-aegis-soj-north", "jp-aegis-soj-south",
    "kr-greenpine-b-1", "kr-greenpine-b-2", "kr-greenpine-c", "kr-aegis-eastsea",
    "jp-aegis-ashore-araya", "jp-aegis-ashore-mutsumi",
)


def test_catalog_has_every_required_entry_with_source_and_estimate():
    assert set(REQUIRED) <= set(CATALOG)
    for name, entry in CATALOG.items():
        assert check_overrides(entry, f"catalog.{name}") == [], name  # entries obey the override rules
        assert entry["estimate"] is True and len(entry["source"]) > 40
        assert entry["nation"] == name[:2].upper()  # us-, jp-, kr- prefixes
        assert set(entry) <= set(OVERRIDE_KEYS)


def test_catalog_rows_are_plain_json():
    rows = catalog_rows()
    assert [r["name"] for r in rows] == list(CATALOG)
    text = json.dumps(rows)
    back = json.loads(text)
    need = {"name", "nation", "system", "band", "lat_deg", "lon_deg", "beamwidth_deg", "bandwidth_mhz",
            "ref_range_km", "fov", "scan_interval_s", "source", "estimate"}
    for r, name in zip(back, CATALOG):
        assert need <= set(r)
        assert r["nation"] in ("US", "JP", "KR")
        # every field a scenario may override is shown, with the catalog's value (new-user trial: six were not)
        assert set(r) == {"name", "fov"} | set(CATALOG[name]), name
        assert r["false_alarms_per_scan"] == CATALOG[name]["false_alarms_per_scan"]
    shariki = next(r for r in back if r["name"] == "us-tpy2-shariki")
    assert shariki["band"] == "X" and shariki["fov"].startswith("az 267+-60")


def test_build_radar_si_units_and_site_frame():
    r = build_radar(SensorConfig(name="tpy2", catalog="us-tpy2-shariki"))
    e = CATALOG["us-tpy2-shariki"]
    assert r.name == "tpy2" and r.nation == "US"
    assert r.lat == pytest.approx(math.radians(e["lat_deg"]))
    x, y, z = pymap3d.geodetic2ecef(e["lat_deg"], e["lon_deg"], e["alt_m"])
    np.testing.assert_allclose(r.site_ecef, [x, y, z], atol=1e-6)
    # R_enu maps ECEF offsets to pymap3d's ENU.
    d = np.array([1000.0, -2000.0, 3000.0])
    np.testing.assert_allclose(r.R_enu @ d, pymap3d.ecef2enu(*(r.site_ecef + d), e["lat_deg"], e["lon_deg"],
                                                             e["alt_m"]), atol=1e-6)
    assert r.range_max == e["range_max_km"] * 1e3
    assert r.ref_snr == pytest.approx(10 ** (e["ref_snr_db"] / 10))
    assert r.beamwidth == pytest.approx(math.radians(e["beamwidth_deg"]))
    assert r.wavelength == pytest.approx(299792458.0 / 9.5e9)


def test_overrides_in_file_units_replace_catalog_values():
    faces = [{"boresight_az_deg": 10.0, "half_width_deg": 180.0, "min_elevation_deg": 1.0,
              "max_elevation_deg": 70.0}]
    cfg = SensorConfig(name="busan", catalog="kr-aegis-eastsea",
                       overrides=(("lat_deg", 35.10), ("lon_deg", 129.04), ("range_max_km", 500),
                                  ("angle_sigma_floor_mrad", 0.5), ("faces", faces), ("range_rate", True)))
    r = build_radar(cfg)
    assert r.lat == pytest.approx(math.radians(35.10)) and r.range_max == 500e3
    assert r.angle_sigma_floor == pytest.approx(5e-4) and r.range_rate is True
    assert len(r.faces) == 1 and r.faces[0].half_width == pytest.approx(math.pi)
    assert r.in_field_of_view(np.radians([0.0, 190.0, 359.0]), np.radians([5.0, 5.0, 80.0])).tolist() == [
        True, True, False]


def _problems(**over):
    return check_overrides(over, "sensor[3]")


@pytest.mark.parametrize("key, value, path", [
    ("lat_deg", 91.0, "sensor[3].lat_deg"),
    ("lon_deg", -180.5, "sensor[3].lon_deg"),
    ("range_max_km", -5.0, "sensor[3].range_max_km"),
    ("range_max_km", 0.0, "sensor[3].range_max_km"),
    ("range_sigma_floor_m", -1.0, "sensor[3].range_sigma_floor_m"),
    ("bias_angle_sigma_mrad", -0.1, "sensor[3].bias_angle_sigma_mrad"),
    ("scan_interval_s", 0, "sensor[3].scan_interval_s"),
    ("pfa", 0.5, "sensor[3].pfa"),
    ("swerling", 1.5, "sensor[3].swerling"),
    ("swerling", 5, "sensor[3].swerling"),
    ("nation", "CN", "sensor[3].nation"),
    ("lat_deg", "38N", "sensor[3].lat_deg"),
    ("alt_m", True, "sensor[3].alt_m"),
    ("range_rate", 1, "sensor[3].range_rate"),
    ("lat_deg", float("nan"), "sensor[3].lat_deg"),
])
def test_check_overrides_rejects_bad_values(key, value, path):
    probs = _problems(**{key: value})
    assert [p.key_path for p in probs] == [path]
    assert "allowed" in probs[0].allowed


def test_check_overrides_faces_paths_and_limits():
    faces = [
        {"boresight_az_deg": 360.0, "half_width_deg": 60.0, "min_elevation_deg": 0.0, "max_elevation_deg": 80.0},
        {"boresight_az_deg": 10.0, "half_width_deg": 0.0, "min_elevation_deg": 0.0, "max_elevation_deg": 80.0},
        {"boresight_az_deg": 10.0, "half_width_deg": 30.0, "min_elevation_deg": 20.0, "max_elevation_deg": 10.0},
        {"boresight_az_deg": -1.0, "half_width_deg": 30.0, "min_elevation_deg": 0.0, "max_elevation_deg": 10.0,
         "tilt_deg": 5.0},
        {"half_width_deg": 30.0, "min_elevation_deg": 0.0, "max_elevation_deg": 10.0},
    ]
    paths = [p.key_path for p in _problems(faces=faces)]
    assert paths == [
        "sensor[3].faces[0].boresight_az_deg",
        "sensor[3].faces[1].half_width_deg",
        "sensor[3].faces[2].min_elevation_deg",
        "sensor[3].faces[3].tilt_deg",
        "sensor[3].faces[3].boresight_az_deg",
        "sensor[3].faces[4].boresight_az_deg",
    ]
    assert [p.key_path for p in _problems(faces=[])] == ["sensor[3].faces"]
    assert [p.key_path for p in _problems(faces=[3])] == ["sensor[3].faces[0]"]


def test_check_overrides_returns_every_problem_and_suggests_keys():
    probs = _problems(lat_deg=100.0, lon_deg=500.0, rnage_max_km=3.0, beamwidth_deg=-1.0, range_min_km=5.0)
    assert [p.key_path for p in probs] == ["sensor[3].lat_deg", "sensor[3].lon_deg", "sensor[3].rnage_max_km",
                                         "sensor[3].beamwidth_deg"]
    assert "did you mean 'range_max_km'" in probs[2].allowed
    assert _problems(range_min_km=500.0, range_max_km=400.0)[0].key_path == "sensor[3].range_min_km"
    assert _problems(lat_deg=40, lon_deg=-10.5, alt_m=0, swerling=3, faces=[
        {"boresight_az_deg": 0, "half_width_deg": 180, "min_elevation_deg": 0, "max_elevation_deg": 90}]) == []


def test_build_radar_raises_input_error_naming_sensor_and_field():
    with pytest.raises(InputError) as ei:
        build_radar(SensorConfig(name="gp", catalog="kr-greenpine-b-1",
                                 overrides=(("lat_deg", -95.0), ("bias_range_sigma_m", -3.0))))
    msg = str(ei.value)
    assert "sensor[gp].lat_deg" in msg and "sensor[gp].bias_range_sigma_m" in msg and "-95.0" in msg
    assert len(ei.value.problems) == 2
    with pytest.raises(InputError, match=r"sensor\[x\]\.catalog.*unknown catalog name.*us-tpy2-shariki"):
        build_radar(SensorConfig(name="x", catalog="us-tpy2-shariky"))
    # Cross-key check against the catalog value: range_min above the entry's range_max.
    with pytest.raises(InputError, match=r"sensor\[7\]\.range_min_km"):
        build_radar(SensorConfig(name="y", catalog="us-thaad-seongju", overrides=(("range_min_km", 950.0),)),
                    key_prefix="sensor[7]")


def test_catalog_radar_shortcut():
    r = catalog_radar("jp-fps5-sado", scan_interval_s=5.0)
    assert r.name == "jp-fps5-sado" and r.nation == "JP" and r.scan_interval == 5.0
