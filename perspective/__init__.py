"""perspective: fine-tune torchvision backbones to predict scores (regression) or labels from images.

The scripts (train.py, infer.py) are thin front ends over this package; see ARCHITECTURE.md in the
shared folder and README.md for the layout.
"""

__version__ = "0.1.0"
