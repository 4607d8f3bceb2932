"""Modality plugins: what each modality contributes, found by name without importing it.

A modality is a plugin: a package that owns its physics, its ``prepare`` arguments and assembler,
its presentation (units, windows, metrics), an optional refiner (data consistency) and its demo.
Everything downstream (cli, demo, evaluate, report, metrics, data consistency) asks this registry
and names no modality. A plugin is described by a :class:`~tomoconsensus.plugin.Plugin` whose fields
are ``"module:attr"`` strings, imported only when used, so that asking for a presentation does not
import torch.

Plugins come from two places:

* the built-in modalities, :data:`BUILTIN` (``name -> "module:attr"`` of their :class:`Plugin`);
* installed packages, through the entry-point group :data:`ENTRY_POINT_GROUP`, e.g. in a
  package's ``pyproject.toml``::

      [project.entry-points."tomoconsensus.modalities"]
      counting = "toy_counting.plugin:PLUGIN"

:func:`register` adds one in the running process (tests, notebooks).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from tomoconsensus.errors import InputError
from tomoconsensus.plugin import Plugin, resolve

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
        raise InputError(target, "plugin", f"a tomoconsensus.plugin.Plugin named {name!r}", plugin)
    return plugin


def with_part(part: str) -> tuple[str, ...]:
    """The modalities whose plugin provides ``part`` (e.g. ``"demo"``, ``"refiner"``)."""
    return tuple(n for n in names() if get(n).has(part))


def part_for(modality: str | None, part: str, source, field: str, expected: str) -> Any:
    """Part ``part`` of the plugin of ``modality`` (imported now), for data whose ``field`` in ``source``
    names that modality; InputError otherwise. ``expected`` describes what was expected, ``{names}``
    in it is filled with the modalities that have the part."""
    able = with_part(part)
    if modality not in able:
        raise InputError(source, field, expected.format(names=", ".join(able)), modality or "missing")
    return get(modality).load(part)


def register(plugin: Plugin) -> None:
    """Add (or replace) a plugin in this process only; installed packages use the entry point."""
    if not isinstance(plugin, Plugin):
        raise InputError("register", "plugin", "a tomoconsensus.plugin.Plugin", type(plugin).__name__)
    _REGISTERED[plugin.name] = plugin
