"""Shadow mode settings: ``[[models]]`` with one primary, what an entry inherits, and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from camwatch.settings import Settings, load_settings


def test_models_from_toml_primary_first_with_own_files_and_inherited_options(tmp_path: Path) -> None:
    config = tmp_path / "camwatch.toml"
    config.write_text('model = "unused"\nweights = "top.pth"\nmethod = "layercam"\nhead = "sigmoid"\n'
                      '[[models]]\nmodel = "timm:vit"\nweights = "v2.safetensors"\nmethod = "gradcam"\n'
                      '[[models]]\nmodel = "torchvision:resnet50"\nprimary = true\n', encoding="utf-8")
    per_model = load_settings(config).model_settings()
    assert [(s.model, s.weights, s.method, s.head) for s in per_model] == [
        ("torchvision:resnet50", None, "layercam", "sigmoid"),  # weights are never inherited
        ("timm:vit", Path("v2.safetensors"), "gradcam", "sigmoid")]
    assert all(s.models == [] for s in per_model)


def test_without_models_the_single_model_is_the_primary() -> None:
    settings = Settings(model="m", weights=Path("w.pth"))
    assert settings.model_settings() == [settings]
    (only,) = Settings(models=[{"model": "x"}]).model_settings()  # one entry: primary by itself
    assert only.model == "x"


@pytest.mark.parametrize("models", [
    [{"model": "a", "primary": True}, {"model": "b", "primary": True}],
    [{"model": "a"}, {"model": "b"}],
])
def test_exactly_one_primary(models: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError, match="primary"):
        Settings(models=models)
