"""Generic modules name no modality: what a modality knows lives in its plugin (:mod:`tomoconsensus.registry`).

Checked in every module of :data:`CLEANED` (extend the list as modules are cleaned): no import of a
modality package (``tomoconsensus.ct`` ...), no identifier with a modality's name as a word
(``CTPresentation``, ``ct_metrics``, ``CT_WINDOW_HU``), no code string naming one (``"ct"``,
``"ct_window_hu"``, ``"tomoconsensus.mr.modality:MRModality"``). Prose (docstrings, help texts with
spaces) may mention a modality, but not a module path of one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tomoconsensus import registry

ROOT = Path(__file__).resolve().parents[1]
MODALITIES = frozenset(registry.BUILTIN)

PACKAGE = ROOT / "tomoconsensus"
#: Every module outside the modality packages must name no modality; the registry (which lists the
#: built-in plugins) is the one exception.
EXEMPT = ("tomoconsensus/registry.py",)
CLEANED = tuple(sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                       if p.relative_to(PACKAGE).parts[0] not in MODALITIES
                       and str(p.relative_to(ROOT)) not in EXEMPT))
#: Modules not yet cleaned, with the reason (a module listed here is skipped whole).
NOT_YET = {
}
#: Functions not yet cleaned, by module.
PENDING: dict[str, set[str]] = {}

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_MODULE_PATH = re.compile(r"tomoconsensus\.(" + "|".join(sorted(MODALITIES)) + r")\b")


def _named(text: str) -> bool:
    """Whether an identifier or code string has a modality's name as one of its words."""
    return any(w.lower() in MODALITIES for w in _WORD.findall(text))


def _skipped(tree: ast.AST, pending: set[str]) -> set[int]:
    """ids of the nodes inside the pending functions."""
    return {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name in pending
            for n in ast.walk(f)}


def modality_names(source: str, pending: set[str] = frozenset()) -> list[str]:
    """Every mention of a modality in ``source`` as ``line: what``."""
    tree = ast.parse(source)
    skip = _skipped(tree, pending)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        texts = []
        if isinstance(node, ast.Import):
            texts = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            texts = [f"{node.module or ''}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Name):
            texts = [node.id]
        elif isinstance(node, ast.Attribute):
            texts = [node.attr]
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            texts = [node.name]
        elif isinstance(node, ast.arg):
            texts = [node.arg]
        elif isinstance(node, ast.keyword) and node.arg:
            texts = [node.arg]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if _MODULE_PATH.search(value) or (not re.search(r"\s", value) and _named(value)):
                found.append(f"{node.lineno}: {value[:60]!r}")
            continue
        found += [f"{node.lineno}: {t}" for t in texts if _named(t) or _MODULE_PATH.search(t)]
    return sorted(found, key=lambda f: int(f.split(":")[0]))


def test_the_check_finds_what_it_looks_for():
    source = ('from tomoconsensus.ct.presentation import CTPresentation\n'
              'from tomoconsensus import mr\n'
              'x = {"pet": 1, "ct_window_hu": 2}\n'
              'def f(spectral_bins):\n'
              '    """CT images are shown in HU; MR as magnitude."""\n'
              '    return ct_metrics(x, y=PETPresentation.settings)\n'
              'def _demo():\n'
              '    return ("ct", "mr")\n'
              'help = "fan-beam data, see tomoconsensus.pet.presentation"\n')
    found = modality_names(source, {"_demo"})
    assert [f.split(":")[0] for f in found] == ["1", "2", "3", "3", "4", "6", "6", "9"], found
    assert not modality_names('"""CT, MR, PET and spectral CT."""\nselect = spectrum = "Ctrl-C"\n')


@pytest.mark.parametrize("module", CLEANED)
def test_generic_module_names_no_modality(module):
    if module in NOT_YET:
        pytest.skip(f"not yet: {NOT_YET[module]}")
    found = modality_names((ROOT / module).read_text(), PENDING.get(module, set()))
    assert found == [], f"{module} names a modality (move it into the plugin): {found}"
