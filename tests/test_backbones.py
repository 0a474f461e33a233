import subprocess
import sys
import urllib.error

import pytest
import torch
from conftest import ROOT
from torchvision import models

from perspective.errors import UserError
from perspective.models import backbones
from perspective.models.backbones import (
    BACKBONES,
    cached_weights_path,
    create_backbone,
    default_preprocessing,
    get_spec,
)

REQUIRED = ["resnet18", "resnet34", "resnet50", "resnet101", "inception_v3", "efficientnet_b0", "efficientnet_b3",
            "efficientnet_b5", "mobilenet_v3_small", "mobilenet_v3_large", "convnext_tiny", "vit_b_16"]


def test_registry_has_every_required_backbone():
    assert set(REQUIRED) <= set(BACKBONES)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_builds_runs_forward_and_backward_at_its_minimum_size(name):
    spec = get_spec(name)
    size = spec.min_size
    model = create_backbone(name, "none", size).train()
    x = torch.randn(2, 3, size, size)
    features = model(x)
    assert features.shape == (2, spec.num_features)  # a plain tensor, also for inception in train mode
    features.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_unknown_backbone_is_a_usage_error_listing_the_valid_names():
    with pytest.raises(UserError) as err:
        get_spec("resnet9000")
    assert "resnet9000" in str(err.value) and "resnet18" in str(err.value) and "vit_b_16" in str(err.value)


def test_preprocessing_follows_the_weights_metadata():
    b3 = default_preprocessing("efficientnet_b3")
    assert (b3.image_size, b3.resize_size, b3.interpolation) == (300, 320, "bicubic")
    assert b3.mean == pytest.approx((0.485, 0.456, 0.406)) and b3.std == pytest.approx((0.229, 0.224, 0.225))
    assert default_preprocessing("inception_v3").image_size == 299
    custom = default_preprocessing("resnet18", 112)
    assert (custom.image_size, custom.resize_size) == (112, 128)  # keeps the 256/224 ratio
    with pytest.raises(UserError):
        default_preprocessing("resnet18", 8)


def test_imagenet_weights_come_from_the_torch_home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = models.resnet18()
    path = cached_weights_path(models.ResNet18_Weights.DEFAULT)
    assert str(path).startswith(str(tmp_path))
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    loaded = create_backbone("resnet18", "imagenet")
    assert torch.equal(loaded.conv1.weight, reference.conv1.weight)
    assert torch.equal(loaded.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


def test_missing_imagenet_weights_give_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(UserError) as err:
        create_backbone("resnet18", "imagenet")
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "--weights none" in message and "--weights PATH" in message and "\n" not in message


def test_local_state_dict_loads_into_the_backbone(tmp_path):
    reference = models.mobilenet_v3_small()
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    loaded = create_backbone("mobilenet_v3_small", str(tmp_path / "w.pth"))
    assert torch.equal(loaded.features[0][0].weight, reference.features[0][0].weight)
    assert isinstance(loaded.classifier[3], torch.nn.Identity)


def test_local_state_dict_of_another_architecture_is_refused(tmp_path):
    torch.save(models.resnet18().state_dict(), tmp_path / "w.pth")
    with pytest.raises(UserError, match="does not fit resnet50"):
        create_backbone("resnet50", str(tmp_path / "w.pth"))
    with pytest.raises(UserError, match="no such file"):
        create_backbone("resnet18", str(tmp_path / "missing.pth"))


def test_vit_with_imagenet_weights_refuses_another_size():
    with pytest.raises(UserError, match="224"):
        backbones._build_imagenet(get_spec("vit_b_16"), 256)


def test_the_light_name_list_matches_the_registry():
    from perspective.config import BACKBONE_NAMES

    assert tuple(BACKBONES) == BACKBONE_NAMES


@pytest.mark.parametrize("command", ["train", "infer", "evaluate", "serve", "export", "search", "download", "synth"])
def test_parsers_import_neither_torch_nor_lightning(command):
    """-h and a mistyped flag answer without loading torch (seconds on a small machine)."""
    code = (f"import sys; from perspective.cli import {command}; {command}.get_args_parser(); "
            "heavy = sorted(m for m in ('torch', 'pytorch_lightning', 'torchvision') if m in sys.modules); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
