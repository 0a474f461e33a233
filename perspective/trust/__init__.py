"""Trust: how far to believe a prediction or a label.

- ``conformal``: intervals around each score, or sets of classes, that hold their coverage; part of
  every prediction, so it sits low (the model stores its calibration, the predictor reads it).
- ``explain``: Grad-CAM maps of where each score comes from.
- ``audit``: which labels of a data set look wrong, from k-fold out-of-fold predictions.

The three sit at different heights of the layering (``docs/architecture.md``), so this package's
face imports none of them: ``from perspective.trust.explain import Explainer``.
"""
