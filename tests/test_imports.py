"""Light entry points stay light: the heavy libraries are imported only where they are used.

Each module is imported in a fresh interpreter (this test session has imported torch already) and the
heavy modules found in ``sys.modules`` afterwards are compared with what that module may load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tomoconsensus import registry

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "astra", "sigpy", "matplotlib", "skimage", "pydicom")


@pytest.mark.parametrize("module, allowed", [
    ("tomoconsensus.cli", set()),                       # --help and argument errors answer at once
    ("tomoconsensus.evaluation", {"skimage"}),            # metrics need scikit-image, not torch
    ("tomoconsensus.data.denoised", set()),
    ("tomoconsensus.tomo.geometry", set()),
    ("tomoconsensus.ct.protocol", set()),
    ("tomoconsensus.tomo.linop", set()),                # the operator interface and back-end choice are light
    ("tomoconsensus.tomo.backends", set()),
])
def test_module_does_not_import_heavy_libraries(module, allowed):
    code = f"import sys, json, {module}; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert loaded <= allowed, f"{module} imports {sorted(loaded - allowed)} at module level"


def test_the_whole_parser_is_light():
    """``tomoconsensus --help`` builds every plugin's ``prepare`` parser: their cli modules import no heavy library."""
    code = (f"import sys, json; from tomoconsensus.cli import build_parser; build_parser(); "
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_help_and_other_commands_do_not_look_for_plugins():
    """Only ``prepare`` reads the installed entry points and imports the plugins' cli modules."""
    code = ("import sys, contextlib, io; from tomoconsensus.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): main(sys.argv[1:])\n"
            "print(sorted(m for m in sys.modules if m.startswith(('tomoconsensus.registry', 'importlib.metadata')) "
            "or m.endswith('.cli') and m != 'tomoconsensus.cli'))")
    loaded = {}
    for argv in (["--help"], ["evaluate", "--help"], ["prepare", "--help"]):
        out = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, check=True)
        loaded[argv[0]] = out.stdout.splitlines()[-1]
    assert loaded["--help"] == loaded["evaluate"] == "[]"
    assert all(f"tomoconsensus.{m}.cli" in loaded["prepare"] for m in registry.BUILTIN)


@pytest.mark.parametrize("modality", sorted(registry.BUILTIN))
def test_each_modalitys_presentation_loads_without_torch_or_astra(modality):
    """What evaluate and report load for a modality's file: NumPy and scikit-image only."""
    code = (f"import sys, json; from tomoconsensus.presenters import presenter; presenter({modality!r}); "
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert set(json.loads(out.stdout.splitlines()[-1])) <= {"skimage"}


TRAINING_ONLY = ("tomoconsensus.learn.loop", "tomoconsensus.learn.parallel", "tomoconsensus.learn.selection",
                 "tomoconsensus.learn.state", "tomoconsensus.distillation")


def _imports_distributed(path: Path) -> bool:
    """Whether a module's source imports torch.distributed (any form) at any level."""
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) and node.module
                 else [])
        if any(n == "torch.distributed" or n.startswith("torch.distributed.") for n in names):
            return True
    return False


def test_the_distributed_check_sees_the_training_modules():
    """The check below can fail: the loop and the DDP plumbing do import torch.distributed."""
    assert _imports_distributed(ROOT / "tomoconsensus" / "learn" / "loop.py")
    assert _imports_distributed(ROOT / "tomoconsensus" / "learn" / "parallel.py")
    assert not _imports_distributed(ROOT / "tomoconsensus" / "learn" / "trained.py")


@pytest.mark.parametrize("module", ["tomoconsensus.denoising", "tomoconsensus.ct.scanner_images"])
def test_inference_loads_no_training_loop_nor_distributed(module):
    """Inference (denoise, denoise --images) loads neither the loop nor a module of ours that
    imports torch.distributed. (``import torch`` itself loads torch.distributed in torch >= 2.x, so the
    check is on our modules, in a fresh interpreter.)"""
    code = (f"import sys, json, {module}; print(json.dumps(sorted((k, getattr(m, '__file__', None) or '') "
            "for k, m in sys.modules.items() if k.startswith('tomoconsensus'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = dict(json.loads(out.stdout.splitlines()[-1]))
    assert "tomoconsensus.learn.trained" in loaded  # load_trained, autocast_for, resolve_device
    assert not set(TRAINING_ONLY) & set(loaded), f"{module} loads {sorted(set(TRAINING_ONLY) & set(loaded))}"
    distributed = [k for k, f in loaded.items() if f.endswith(".py") and _imports_distributed(Path(f))]
    assert distributed == [], f"{module} loads {distributed}, which import torch.distributed"
