"""The catalogue of CAM methods: stable keys (stored with every heatmap; never rename one), display labels
and one-line summaries. The implementations are ``worker.cam.methods`` (torch), each registered under one
of these keys; the dashboard and the command-line help read this catalogue without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    key: str
    label: str
    summary: str


CAM_METHODS: dict[str, MethodInfo] = {m.key: m for m in (
    MethodInfo("cam", "CAM", "classifier weights of the class (GAP → linear heads only)"),
    MethodInfo("gradcam", "Grad-CAM", "spatially averaged gradients as channel weights"),
    MethodInfo("gradcam++", "Grad-CAM++", "higher-order gradient weights"),
    MethodInfo("xgradcam", "XGrad-CAM", "activation-normalised gradient weights"),
    MethodInfo("layercam", "LayerCAM", "element-wise positive gradients"),
    MethodInfo("hirescam", "HiResCAM", "element-wise gradients, no averaging"),
    MethodInfo("eigencam", "Eigen-CAM", "first principal component of the activations (no gradients)"),
    MethodInfo("scorecam", "Score-CAM", "class score of the input masked by each channel (slow)"),
    MethodInfo("random", "Random baseline", "a uniform random map, seeded from the input"),
)}


def method_help() -> str:
    """The method keys for command-line help."""
    return ", ".join(CAM_METHODS)
