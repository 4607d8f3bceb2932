"""tomoconsensus: denoising networks for CT, MR, PET and spectral CT trained from noisy data only.

In one sentence: a **modality plugin** (:mod:`tomoconsensus.registry`) splits each raw measurement
into two halves with independent noise and reconstructs each linearly on the shared **tomography
layer** (:mod:`tomoconsensus.tomo`); the **learn** wing trains two networks on the halves (consensus,
Wu et al. 2019); ``denoise``, ``evaluate`` and the **study** runner apply and measure them.

The public API, imported lazily (``import tomoconsensus`` loads no torch)::

    import tomoconsensus as tc
    tc.prepare("ct", "train.h5", images="slices.npz", geometry="demo-fanbeam", split="thinning")
    tc.train(tc.TrainConfig(method="consensus", epochs=24), "train.h5", "run", val_path="val.h5")
    tc.denoise("run", "test.h5", "denoised.h5")
    tc.evaluate("test.h5", {"Consensus": "denoised.h5"})

Verbs: :func:`prepare`, :func:`train`, :func:`distill`, :func:`denoise`, :func:`evaluate`,
:func:`write_report`, :func:`run_study` (a modality's demo); configuration: :class:`TrainConfig`,
:func:`load_train_config`; plugins: :mod:`registry`, :class:`Plugin`, :class:`Modality`,
:class:`Slice`, :class:`SplitImages`; data: :func:`read_prepared`; the tomography layer:
:class:`Linop`, :class:`FBP`, :class:`CurvedFBP`, :class:`AstraProjector`, :func:`load_geometry`.
The command line (``tomoconsensus``) is a thin layer over these; errors raised here name the
parameter, the CLI names its flag. API reference: ``make api`` (docs/api/).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> "module:attr" (or "module" for a module), imported on first use.
_API = {
    "prepare": "tomoconsensus.api:prepare",
    "train": "tomoconsensus.learn.loop:train",
    "distill": "tomoconsensus.distillation:distill",
    "denoise": "tomoconsensus.denoising:denoise",
    "evaluate": "tomoconsensus.evaluation:evaluate",
    "write_report": "tomoconsensus.report:write_report",
    "run_study": "tomoconsensus.study.runner:run_study",
    "demo_protocol": "tomoconsensus.study.runner:demo_protocol",
    "TrainConfig": "tomoconsensus.learn.config:TrainConfig",
    "load_train_config": "tomoconsensus.learn.config:load_train_config",
    "load_trained": "tomoconsensus.learn.trained:load_trained",
    "registry": "tomoconsensus.registry",
    "Plugin": "tomoconsensus.plugin:Plugin",
    "Modality": "tomoconsensus.modality:Modality",
    "Slice": "tomoconsensus.modality:Slice",
    "SplitImages": "tomoconsensus.modality:SplitImages",
    "read_prepared": "tomoconsensus.data.prepared:read_prepared",
    "Linop": "tomoconsensus.tomo.linop:Linop",
    "FBP": "tomoconsensus.tomo.fbp:FBP",
    "CurvedFBP": "tomoconsensus.tomo.curved:CurvedFBP",
    "AstraProjector": "tomoconsensus.tomo.projector:AstraProjector",
    "load_geometry": "tomoconsensus.tomo.geometry:load_geometry",
    "InputError": "tomoconsensus.errors:InputError",
    "RunError": "tomoconsensus.errors:RunError",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'tomoconsensus' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
