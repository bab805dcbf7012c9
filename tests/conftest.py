"""Fixtures shared by every test package (torch-free: the database and dashboard tests import no torch).
Helpers live in :mod:`tests.support`; the worker's torch fixtures are in ``tests/worker/conftest.py``."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.support.photos import load_photos


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """Real photographs shipped with scikit-image."""
    return load_photos()
