"""Torch fixtures of the worker's tests: tiny fixed-weight models and the packaged EfficientNet-Lite0."""

from __future__ import annotations

import os

import pytest
import torch

from tests.support.models import TinyNet, tiny_loaded
from worker.cam.models import LoadedModel

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture()
def tiny_model() -> LoadedModel:
    return tiny_loaded(TinyNet())


@pytest.fixture(scope="session")
def lite0() -> LoadedModel:
    from worker.cam.models import load_model

    return load_model("efficientnet_lite0")
