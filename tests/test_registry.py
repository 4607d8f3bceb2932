"""The modality registry: built-in plugins, lazy parts, named errors, in-process registration."""

from __future__ import annotations

import pytest

from tomoconsensus import registry
from tomoconsensus.errors import InputError
from tomoconsensus.plugin import Plugin


def test_builtin_names_and_presentations():
    assert registry.names()[:4] == ("ct", "mr", "pet", "spectral")
    for name in ("ct", "mr", "pet", "spectral"):
        plugin = registry.get(name)
        assert plugin.name == name
        assert hasattr(plugin.load("presentation"), "slice_metrics")


def test_unknown_modality_is_named():
    with pytest.raises(InputError, match="'name'.*one of ct, mr, pet, spectral.*'xray'"):
        registry.get("xray")


def test_missing_part_and_bad_target_are_refused():
    plugin = Plugin(name="toyname", presentation="tomoconsensus.metrics:Presentation")
    assert not plugin.has("refiner")
    with pytest.raises(InputError, match="refiner"):
        plugin.load("refiner")
    with pytest.raises(InputError, match="'module:attr'"):
        Plugin(name="bad", presentation="no_colon_here")
    with pytest.raises(InputError, match="lower-case identifier"):
        Plugin(name="Bad Name", presentation="a:b")


def test_register_in_process(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTERED", {})
    plugin = Plugin(name="toyname", presentation="tomoconsensus.metrics:Presentation")
    registry.register(plugin)
    assert registry.get("toyname") is plugin
    assert registry.names()[-1] == "toyname"
    assert "toyname" not in registry.with_part("demo")


def test_part_for_returns_the_part_or_names_who_has_it():
    assert registry.part_for("mr", "refiner", "f.h5", "modality", "x ({names})").__name__ == "MRModality"
    with pytest.raises(InputError, match=r"f.h5: field 'modality': expected a modality with it \(mr\), got 'ct'"):
        registry.part_for("ct", "refiner", "f.h5", "modality", "a modality with it ({names})")
    with pytest.raises(InputError, match="got 'missing'"):
        registry.part_for(None, "refiner", "f.h5", "modality", "one of ({names})")
