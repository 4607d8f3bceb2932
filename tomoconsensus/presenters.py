"""A modality's presentation (units, display window, metrics, table rows), found through the registry.

Above :mod:`tomoconsensus.metrics` (the shared measures every presentation uses) and
:mod:`tomoconsensus.registry`; ``evaluate``, ``report`` and training's validation ask here and name no
modality.
"""

from __future__ import annotations

import numpy as np

from tomoconsensus import registry


def presenter(modality: str):
    """The presentation class of ``modality`` (its plugin's ``presentation``); InputError for an unknown one."""
    return registry.get(modality).load("presentation")


def slice_metrics(modality: str, image: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Metrics of one slice (C, H, W) in prepared-file units, as the modality defines them."""
    return presenter(modality).slice_metrics(image, reference)
