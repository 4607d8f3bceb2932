"""The demo protocols are data: each plugin's demo.toml is read strictly, and the CT demo's TOML is the
protocol of its recorded run (benchmarks/results/demo.json, README's tables)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tomoconsensus import registry
from tomoconsensus.errors import InputError
from tomoconsensus.study.protocol import load_protocol
from tomoconsensus.study.runner import demo_protocol, demo_spec
from tomoconsensus.study.spec import TrainingProtocol

CT_TOML = Path(__file__).resolve().parents[1] / "tomoconsensus" / "ct" / "demo.toml"


def test_ct_toml_is_the_recorded_ct_demo_protocol():
    """The values of CTDemoData/DemoProtocol when the protocol moved to TOML, but Noise2Clean's 144 epochs
    (benchmarks/results/noise2clean_convergence.json) and 72 cosine epochs for the self-supervised methods
    (benchmarks/results/training_length_choice.json); the distilled network keeps 24 constant ones."""
    p = demo_protocol("ct")
    assert dataclasses.asdict(p.training) == dict(
        channels=1, base_features=16, depth=3, patch_size=32, batch_size=16, patches_per_slice=2, epochs=72,
        learning_rate=3e-4, lr_schedule="cosine", beta_w=5e-6, beta_r=0.0, selection="loss", checkpoint_every_steps=100)
    assert p.method_epochs == (("distill", 24), ("noise2clean", 144))
    assert [p.epochs(m) for m in ("consensus", "noise2noise", "noise2clean", "distill")] == [72, 72, 144, 24]
    assert [p.lr_schedule(m) for m in ("consensus", "noise2noise", "noise2clean", "distill")] == [
        "cosine", "cosine", "cosine", "constant"]
    quick = demo_protocol("ct", quick=True)
    assert [quick.epochs(m) for m in ("consensus", "noise2clean", "distill")] == [1, 2, 1]
    d = p.data
    assert (d.geometry, d.dose_fraction, d.train_slices_per_patient, d.max_val_slices, d.max_test_slices, d.split,
            d.tv_tune_slices, d.tv_iterations, d.tv_power_iterations) == ("demo-fanbeam", 0.25, 20, 10, 12,
                                                                          "thinning", 2, 50, 15)
    assert d.tv_lam_grid == tuple(float(v) for v in np.geomspace(1e-4, 1e-2, 6))  # bit for bit
    config = p.training.config("cpu", "noise2clean", p.epochs("noise2clean"), p.lr_schedule("noise2clean"))
    assert (config.method, config.epochs, config.patch_size, config.device, config.lr_schedule) == (
        "noise2clean", 144, 32, "cpu", "cosine")


@pytest.mark.parametrize("modality", registry.with_part("demo"))
def test_every_demo_has_a_full_and_a_smaller_quick_protocol(modality):
    full, quick = demo_protocol(modality), demo_protocol(modality, quick=True)
    assert (full.name, quick.name) == ("full", "quick") and type(full.data) is demo_spec(modality).data
    assert quick.training.base_features < full.training.base_features and quick.training.epochs < full.training.epochs
    assert quick.training.channels == full.training.channels  # quick changes the size, not the data's channels
    assert "reduced protocol" in full.describe() and full.describe() != quick.describe()


@pytest.mark.parametrize("old, new, key, expected", [
    ("[quick.training]\n", "[full.extra]\nx = 1\n[quick.training]\n", "full", "tables training"),
    ("[quick.training]\n", "[quick.training]\nbatch = 2\n", "quick.training.batch", "one of channels"),
    ("[quick.training]\n", "[quick.training]\ncheckpoint_every_steps = 1.5\n", "quick.training.checkpoint_every_steps",
     "a int"),
    ("[quick.training]\n", "[quick.training]\ncheckpoint_every_steps = true\n",
     "quick.training.checkpoint_every_steps", "a int"),
    ("tv_lam_grid = [3e-4, 3e-3]", "tv_lam_grid = 3e-4", "quick.data.tv_lam_grid", "an array"),
    ("[quick.data]\n", "[quick.data]\nsplit = 4\n", "quick.data.split", "a str"),
    ("[quick.data]\n", "[other]\nx = 1\n[quick.data]\n", "tables", "[full.*]"),
    ('lr_schedule = "cosine"', 'lr_schedule = "cosin"', "training.lr_schedule", "constant or cosine"),
    ('distill = "constant"', 'distill = "linear"', "method_lr_schedule.distill", "constant or cosine"),
    ('selection = "loss"', 'selection = "clean_rmse"', "training.selection", "loss or output_on_halves"),
    ("noise2clean = 2\n", "noise2clen = 2\n", "quick.method_epochs.noise2clen", "a method of consensus"),
])
def test_a_bad_protocol_is_refused_naming_file_and_key(tmp_path, old, new, key, expected):
    path = tmp_path / "demo.toml"
    path.write_text(CT_TOML.read_text().replace(old, new, 1))
    with pytest.raises(InputError) as err:
        load_protocol(path, demo_spec("ct").data, "quick")
    assert str(path) in str(err.value) and key in str(err.value) and expected in str(err.value)


def test_a_full_protocol_must_name_every_field(tmp_path):
    path = tmp_path / "demo.toml"
    path.write_text(CT_TOML.read_text().replace("depth = 3 ", "# depth = 3 "))
    with pytest.raises(InputError, match=r"full\.training\.depth.*missing"):
        load_protocol(path, demo_spec("ct").data)
    with pytest.raises(InputError, match="protocol"):
        load_protocol(CT_TOML, demo_spec("ct").data, "fast")
    assert dataclasses.fields(TrainingProtocol)  # every field is required: none has a default
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(TrainingProtocol))


def test_embedded_slices_read_as_the_ct_reader_reads_them():
    """The study's anatomy reader (no modality import) gives the slices, ids and spacings of ct.io.read_images."""
    from tomoconsensus.ct.io import read_images
    from tomoconsensus.study.anatomy import COVID, SERIES, read_slices

    for path in (COVID, SERIES):
        a, b = read_slices(path), read_images(path)
        assert a.slice_ids == b.slice_ids and a.patient_ids == b.patient_ids
        np.testing.assert_array_equal(a.hu, b.hu)
        np.testing.assert_array_equal(a.pixel_spacing_mm, b.pixel_spacing_mm)
        assert a.hu.dtype == np.float32


def test_demo_command_offers_the_plugins_with_a_demo(monkeypatch):
    from tomoconsensus.cli import build_parser

    choices = next(a for a in build_parser()._subparsers._group_actions[0].choices["demo"]._actions
                   if a.dest == "modality").choices
    assert tuple(choices) == (*registry.with_part("demo"), "all") and {"ct", "mr", "pet", "spectral"} <= set(choices)
    toy = registry.Plugin(name="toydemo", presentation="tomoconsensus.ct.presentation:CTPresentation",
                          demo="tomoconsensus.ct.demo:DEMO")
    monkeypatch.setitem(registry._REGISTERED, "toydemo", toy)
    choices = next(a for a in build_parser()._subparsers._group_actions[0].choices["demo"]._actions
                   if a.dest == "modality").choices
    assert "toydemo" in choices


def test_pet_demo_selects_on_the_output_and_says_so():
    from tomoconsensus.study.runner import demo_protocol as protocol_of

    pet, ct = protocol_of("pet"), protocol_of("ct")
    assert pet.training.selection == "output_on_halves" and ct.training.selection == "loss"
    assert pet.training.config("cpu", "consensus").selection == "output_on_halves"
    assert "best epoch by held-out error of the output on the halves" in pet.describe()
    assert "best epoch by held-out self-supervised loss" in ct.describe()
