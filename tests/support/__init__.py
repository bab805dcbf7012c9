"""Test helpers shared by the test modules: tiny models, photos, databases, the real browser."""

from pathlib import Path

#: The repository's root folder.
REPO = Path(__file__).resolve().parents[2]
