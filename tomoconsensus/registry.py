"""Modality plugins: what each modality contributes, found by name without importing it.

A modality is a plugin: a package that owns its physics, its ``prepare`` arguments and assembler,
its presentation (units, windows, metrics), an optional refiner (data consistency) and its demo.
Everything downstream (cli, demo, evaluate, report, metrics, data consistency) asks this registry
and names no modality. A plugin is described by a :class:`Plugin` whose fields are ``"module:attr"``
strings, imported only when used, so that asking for a presentation does not import torch.

Plugins come from two places:

* the built-in modalities, :data:`BUILTIN` (``name -> "module:attr"`` of their :class:`Plugin`);
* installed packages, through the entry-point group :data:`ENTRY_POINT_GROUP`, e.g. in a
  package's ``pyproject.toml``::

      [project.entry-points."tomoconsensus.modalities"]
      counting = "toy_counting.plugin:PLUGIN"

:func:`register` adds one in the running process (tests, notebooks).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from tomoconsensus.errors import InputError

#: Entry-point group through which installed packages add modalities.
ENTRY_POINT_GROUP = "tomoconsensus.modalities"

#: The modalities shipped with tomoconsensus: name -> "module:attr" of their Plugin.
BUILTIN = {
    "ct": "tomoconsensus.ct.plugin:PLUGIN",
    "mr": "tomoconsensus.mr.plugin:PLUGIN",
    "pet": "tomoconsensus.pet.plugin:PLUGIN",
    "spectral": "tomoconsensus.spectral.plugin:PLUGIN",
}

_REGISTERED: dict[str, Plugin] = {}


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
        The modality's image-quality measurement (``iq``), where it has one.
    summary : str
        One line for ``--help`` listings.
    """

    name: str
    presentation: str
    prepare_parser: str | None = None
    refiner: str | None = None
    demo: str | None = None
    iq: str | None = None
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


@cache
def _installed() -> dict[str, str]:
    """Entry points of installed packages: name -> "module:attr" (read once per process)."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> tuple[str, ...]:
    """Every known modality: built-in first, then installed, then registered in this process."""
    seen = dict.fromkeys([*BUILTIN, *_installed(), *_REGISTERED])
    return tuple(seen)


def get(name: str) -> Plugin:
    """The plugin of modality ``name``; InputError naming the known modalities otherwise."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    target = BUILTIN.get(name) or _installed().get(name)
    if target is None:
        raise InputError("modality", "name", f"one of {', '.join(names())} (or an installed plugin)", name)
    plugin = resolve(target)
    if not isinstance(plugin, Plugin) or plugin.name != name:
        raise InputError(target, "plugin", f"a tomoconsensus.registry.Plugin named {name!r}", plugin)
    return plugin


def with_part(part: str) -> tuple[str, ...]:
    """The modalities whose plugin provides ``part`` (e.g. ``"demo"``, ``"refiner"``)."""
    return tuple(n for n in names() if get(n).has(part))


def register(plugin: Plugin) -> None:
    """Add (or replace) a plugin in this process only; installed packages use the entry point."""
    if not isinstance(plugin, Plugin):
        raise InputError("register", "plugin", "a tomoconsensus.registry.Plugin", type(plugin).__name__)
    _REGISTERED[plugin.name] = plugin
