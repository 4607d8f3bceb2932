"""What a modality plugin is: :class:`Plugin`, its parts named as lazy ``"module:attr"`` strings.

Below :mod:`tomoconsensus.registry`, which finds plugins by name; a modality's ``<m>/plugin.py``
imports this module, never the registry (so that the registry, which names the built-in plugins,
and the plugins do not import each other).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import Any

from tomoconsensus.errors import InputError


@dataclass(frozen=True)
class Plugin:
    """What one modality contributes; every part but the name is a lazy ``"module:attr"`` string.

    Attributes
    ----------
    name : str
        The prepared file's ``modality`` attribute and the CLI's word (``prepare NAME``, ``demo NAME``).
    presentation : str
        Class with display units and window, metrics and report rows (:class:`tomoconsensus.metrics.Presentation`).
        Its module must not import torch or astra (``evaluate`` and ``report`` load it).
    prepare_parser : str, optional
        ``add_prepare_parser(prep_sub) -> None``: adds ``prepare NAME`` to ``prepare``'s subparsers, with its
        arguments, and sets ``func`` (the handler); its module stays light (``prepare --help`` imports it).
    refiner : str, optional
        Class with ``consistent`` and ``heldout_error`` (:mod:`tomoconsensus.data_consistency`).
    demo : str, optional
        The modality's demo specification, run by the study runner (``demo NAME``).
    iq : str, optional
        ``run_iq(data, runs, val, n, seed, with_tv, device, n_tv) -> IQResult``: the ``iq`` command's
        task-phantom measurement for the modality's prepared files (CT; MR, PET and spectral have
        library functions only, ``<m>/iq.py``).
    scanner_images : str, optional
        ``denoise_images(run, images, out, resample, overwrite, pixel_spacing_mm, batch_size, device)``:
        ``denoise --images`` on images a scanner made (CT: a DICOM series in, a derived series out).
    summary : str
        One line for ``--help`` listings.
    """

    name: str
    presentation: str
    prepare_parser: str | None = None
    refiner: str | None = None
    demo: str | None = None
    iq: str | None = None
    scanner_images: str | None = None
    summary: str = ""

    def __post_init__(self):
        if not self.name or not self.name.isidentifier() or self.name != self.name.lower():
            raise InputError(f"plugin {self.name!r}", "name", "a lower-case identifier", self.name)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("name", "summary") and value is not None and not _is_target(value):
                raise InputError(f"plugin {self.name}", f.name, "a 'module:attr' string", value)

    def load(self, part: str) -> Any:
        """The object named by field ``part`` (imported now); InputError where the plugin has none."""
        target = getattr(self, part)
        if target is None:
            raise InputError("modality", self.name, f"a modality with a {part}", f"{self.name} has none")
        return resolve(target)

    def has(self, part: str) -> bool:
        """Whether the plugin provides ``part`` (without importing it)."""
        return getattr(self, part) is not None


def _is_target(value: object) -> bool:
    return isinstance(value, str) and value.count(":") == 1 and all(value.split(":"))


def resolve(target: str) -> Any:
    """Import ``"module:attr"`` (attr may be dotted) and return the object."""
    module, attr = target.split(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
