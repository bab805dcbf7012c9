"""The CAM engine a set of settings describes: the one entry point for the worker's commands and the
dashboard's on-demand CAM (which imports nothing else of the worker)."""

from __future__ import annotations

from camwatch.settings import Settings
from worker.cam.accel import Acceleration
from worker.cam.engine import CamEngine
from worker.cam.models import load_model


def build_engine(settings: Settings) -> CamEngine:
    """Load the model of ``settings`` and wrap it in a :class:`CamEngine` with its method and layer."""
    loaded = load_model(settings.model, weights=settings.weights, num_classes=settings.num_classes,
                        classes=settings.classes, trust_pickle=settings.trust_pickle,
                        preprocessing={"mode": settings.preprocess} if settings.preprocess else None,
                        head=settings.head, head_threshold=settings.head_threshold)
    return CamEngine(loaded, settings.method, target_layer=settings.target_layer, device=settings.device,
                     topk=settings.topk,
                     acceleration=Acceleration(channels_last=settings.channels_last, compile=settings.compile,
                                               precision=settings.precision))
