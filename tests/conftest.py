"""Test configuration: headless Qt and shared paths."""

import os
from pathlib import Path

import pytest

# Headless: Qt must not look for a display (CI has none).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session")
def scenarios_dir() -> Path:
    """Folder of the shipped scenario files."""
    return SCENARIOS
