"""The public Python API: lazy, complete, and the same checks as the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tomoconsensus as tc
from tomoconsensus.data.prepared import read_prepared
from tomoconsensus.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_light_and_every_public_name_resolves():
    code = ("import sys, json, tomoconsensus as tc; "
            "light = [m for m in ('torch', 'astra', 'sigpy') if m in sys.modules]; "
            "[getattr(tc, n) for n in tc.__all__]; print(json.dumps([light, sorted(tc.__all__)]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    light, names = json.loads(out.stdout.splitlines()[-1])
    assert light == []
    assert {"prepare", "train", "distill", "denoise", "evaluate", "registry", "Linop", "TrainConfig"} <= set(names)


def test_verbs_are_functions_even_after_their_modules_are_imported():
    import tomoconsensus.denoising  # noqa: F401
    import tomoconsensus.evaluation  # noqa: F401

    for verb in ("prepare", "train", "distill", "denoise", "evaluate"):
        assert callable(getattr(tc, verb)) and getattr(tc, verb).__name__ == verb


def test_prepare_is_the_cli_with_keywords(tmp_path):
    """tc.prepare("ct", ...) writes the file the command writes for the same flags (same seed, same x1)."""
    hu = np.zeros((1, 64, 64), np.float32)
    hu[0, 16:48, 16:48] = 40.0
    images = tmp_path / "slices.npy"
    np.save(images, hu)
    options = dict(images=images, geometry="demo-fanbeam", pixel_spacing_mm=6.0, max_slices=1, device="cpu")
    out = tc.prepare("ct", tmp_path / "api.h5", **options)
    from tomoconsensus.cli import main

    assert main(["prepare", "ct", "--images", str(images), "--geometry", "demo-fanbeam", "--pixel-spacing-mm", "6",
                 "--max-slices", "1", "--device", "cpu", "--out", str(tmp_path / "cli.h5")]) == 0
    a, b = read_prepared(out), read_prepared(tmp_path / "cli.h5")
    np.testing.assert_array_equal(a.x1, b.x1)
    np.testing.assert_array_equal(a.x_est, b.x_est)


def test_prepare_refuses_what_the_command_refuses(tmp_path):
    with pytest.raises(InputError, match="dose-fraction"):
        tc.prepare("ct", tmp_path / "x.h5", images=tmp_path / "none.npy", geometry="demo-fanbeam", dose_fraction=0)
    with pytest.raises(InputError, match="unrecognized arguments: --no-such-option"):
        tc.prepare("ct", tmp_path / "x.h5", images=tmp_path / "none.npy", no_such_option=1)
    with pytest.raises(InputError, match="'name'.*xray"):
        tc.prepare("xray", tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def _make_api():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import make_api
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return make_api


def test_the_api_reference_of_the_public_modules_builds_offline(tmp_path):
    """``make api`` on the package page and the API/registry modules (the whole package: the slow test)."""
    make_api = _make_api()
    out = make_api.main(tmp_path / "api", ["tomoconsensus", "tomoconsensus.api", "tomoconsensus.registry",
                                          "tomoconsensus.plugin"])
    assert "prepare" in (out / "tomoconsensus.html").read_text()
    assert "with_part" in (out / "tomoconsensus" / "registry.html").read_text()


@pytest.mark.slow  # 12 s: imports every module (torch, astra, sigpy)
def test_the_api_reference_builds_offline_with_every_module(tmp_path):
    """``make api``: pdoc writes one page per module from the docstrings (no network), the public verbs
    documented on the package page."""
    make_api = _make_api()
    out = make_api.main(tmp_path / "api")
    pages = {p.relative_to(out).with_suffix("").as_posix().replace("/", ".") for p in out.rglob("*.html")}
    assert set(make_api.modules()) <= pages
    assert "prepare" in (out / "tomoconsensus.html").read_text()
