"""Datasets out of the journal: ``tapeshot journal export`` (``engine.dataset.export``)."""
