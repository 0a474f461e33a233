"""perspective: fine-tune torchvision backbones to predict scores (regression) or labels from images.

The commands (``perspective train``, ``infer``, ...) are thin front ends (``perspective.cli``) over
this package; docs/architecture.md describes the packages and their layering.
"""

__version__ = "0.1.0"
