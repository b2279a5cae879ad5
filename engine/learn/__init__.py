"""Learned timing models (issue 16): features and labels from recordings (``features``), three capacities
(``models``), versioned model files (``modelfile``), ``tapeshot train`` (``cli``), the engine's loader
(``runtime``) and the per-event cost (``bench``)."""

CAPACITIES = ("linear", "trees", "mlp")      # tapeshot train --capacity (engine.learn.models.make)
