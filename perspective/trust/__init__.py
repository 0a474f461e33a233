"""Trust in the data: the applications that question labels and choose what to label.

- ``audit``: which labels of a data set look wrong, from k-fold out-of-fold predictions;
- ``select``: which unlabelled photos to label next, by uncertainty and diversity.

The intervals a prediction carries are ``models.conformal``; the saliency maps ``evaluation.explain``.
"""
