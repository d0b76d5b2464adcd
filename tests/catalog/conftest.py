from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = "samples/demo/catalog.yaml"


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def demo_text() -> str:
    return (REPO_ROOT / DEMO).read_text()


@pytest.fixture(autouse=True)
def mid_january_2026():
    """Catalog tests run on 2026-01-15: the demo catalog (from 2025-01-01) is in force, and new
    versions may start from that day on (days already past cannot be repriced)."""
    from datetime import date

    from obol.core.clock import frozen

    with frozen(date(2026, 1, 15)):
        yield
