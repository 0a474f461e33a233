"""The backbones perspective supports, as data: ``models.backbones`` builds its registry from this table,
and the commands read the names here without importing torch.

Each entry is a torchvision model builder's name, the size of the feature vector left once its
classifier is removed, the dotted path of that classifier's last linear layer and the layer
Grad-CAM explains; ``models.backbones.BackboneSpec`` adds the builder and its weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BackboneEntry:
    """One backbone of the table.

    Args:
        name: registry name, the same as torchvision's builder's.
        num_features: size of the feature vector once the classifier is removed.
        classifier: dotted path of the final linear layer, replaced by ``nn.Identity``.
        build_kwargs: extra keyword arguments for the builder (the same with and without weights,
            so a checkpoint rebuilds the identical architecture).
        fixed_size: the input size is part of the architecture (ViT's position embeddings).
        cam_layer: dotted path of the layer Grad-CAM explains (``evaluation.explain``): the last one
            whose output still has a spatial layout. For a vision transformer it is the last block's
            first layer norm, whose patch tokens are reshaped to their grid (``token_grid``).
        token_grid: ``cam_layer`` outputs (batch, 1 + tokens, channels), the first the class token.
    """

    name: str
    num_features: int
    classifier: str
    build_kwargs: dict[str, Any] = field(default_factory=dict)
    fixed_size: bool = False
    cam_layer: str = "features"
    token_grid: bool = False


BACKBONE_TABLE = (
    BackboneEntry("resnet18", 512, "fc", cam_layer="layer4"),
    BackboneEntry("resnet34", 512, "fc", cam_layer="layer4"),
    BackboneEntry("resnet50", 2048, "fc", cam_layer="layer4"),
    BackboneEntry("resnet101", 2048, "fc", cam_layer="layer4"),
    # The auxiliary classifier only helps ImageNet training; it is dropped after building so
    # the model returns one tensor in train and eval mode alike. transform_input is what the
    # ImageNet weights expect, and is kept on without them so the architecture never changes.
    BackboneEntry("inception_v3", 2048, "fc", build_kwargs={"aux_logits": True, "transform_input": True},
                  cam_layer="Mixed_7c"),
    BackboneEntry("efficientnet_b0", 1280, "classifier.1"),
    BackboneEntry("efficientnet_b3", 1536, "classifier.1"),
    BackboneEntry("efficientnet_b5", 2048, "classifier.1"),
    # MobileNetV3 and ConvNeXt keep their pretrained pre-classifier layers (hidden linear layer,
    # layer norm); only the final 1000-way layer goes.
    BackboneEntry("mobilenet_v3_small", 1024, "classifier.3"),
    BackboneEntry("mobilenet_v3_large", 1280, "classifier.3"),
    BackboneEntry("convnext_tiny", 768, "classifier.2"),
    BackboneEntry("vit_b_16", 768, "heads.head", fixed_size=True, cam_layer="encoder.layers.encoder_layer_11.ln_1",
                  token_grid=True),
)
BACKBONE_NAMES = tuple(entry.name for entry in BACKBONE_TABLE)
DEFAULT_BACKBONE = "resnet18"
