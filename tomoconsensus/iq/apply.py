"""Apply trained runs to prepared data as ``denoise`` applies them: the default output and the half outputs.

Runs are applied by :func:`tomoconsensus.denoising.apply_run` (default variant), so the images measured
are those a user gets; the half outputs feed the uncertainty map (:mod:`tomoconsensus.iq.uncertainty`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tomoconsensus.data.prepared import PreparedDataset


def load_run(run_dir: Path, device: str):
    """``(config, models, device)`` of a finished or interrupted run."""
    from tomoconsensus.learn.trained import load_trained, resolve_device

    dev = resolve_device(device)
    config, models = load_trained(run_dir, dev)
    return config, models, dev


def prepared_outputs(run_dir: Path | None, data: PreparedDataset, device: str = "auto", batch_size: int = 8
                     ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(y, (h1, h2, y1))`` on a prepared file (its unit): the run's default output and half outputs;
    ``run_dir=None`` is the reconstruction itself (``y = x_est``, ``h1 = y1 = x1``, ``h2 = x2``)."""
    if run_dir is None:
        return data.x_est, (data.x1, data.x2, data.x1)
    from tomoconsensus import methods
    from tomoconsensus.denoising import apply_run
    from tomoconsensus.iq.uncertainty import half_outputs

    config, models, dev = load_run(run_dir, device)
    y = apply_run(config, models, data, dev, methods.check_variant(config.method, None), batch_size, progress=False)
    return y, half_outputs(config.method, models, data.x1, data.x2, dev, batch_size)
