"""Dataset manifests (``data_manifests/*.toml``): which files, which split, which checksums.

A manifest lists files relative to a root folder with their SHA-256, and the patient split::

    name = "..."
    licence = "..."
    [[files]]
    path = "relative/path"
    sha256 = "..."
    [split]
    train = ["patient", ...]
    test = ["patient", ...]
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

from tomoconsensus.errors import InputError


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(path: str | Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(path, "file", "a readable TOML manifest", str(exc)) from None


def verify_manifest(path: str | Path, root: str | Path) -> list[str]:
    """Problems found (missing files, checksum mismatches); an empty list means the data are intact."""
    manifest = load_manifest(path)
    problems = []
    for entry in manifest.get("files", []):
        file = Path(root) / entry["path"]
        if not file.exists():
            problems.append(f"{file}: missing")
        elif "sha256" in entry and sha256(file) != entry["sha256"]:
            problems.append(f"{file}: sha256 differs from {path}")
    return problems
