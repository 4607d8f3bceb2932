"""Write the API reference (HTML, from the NumPy docstrings) with pdoc: ``make api`` -> docs/api/.

Every module of the package is documented (pdoc follows ``__all__`` of the top package, which lists
the public names, so the submodules are passed explicitly); nothing is fetched from the network.
Run: .venv/bin/python docs/make_api.py [OUT_DIR]
"""

from __future__ import annotations

import pkgutil
import sys
import warnings
from pathlib import Path

import pdoc

import tomoconsensus

SKIP = ("tomoconsensus.embedded", "tomoconsensus.geometries")


def modules() -> list[str]:
    """The package and every module below it (data folders skipped), sorted."""
    found = [m.name for m in pkgutil.walk_packages(tomoconsensus.__path__, "tomoconsensus.")]
    return ["tomoconsensus", *sorted(m for m in found if not m.startswith(SKIP))]


def main(out: Path, names: list[str] | None = None) -> Path:
    """Write the pages of ``names`` (default: every module) into ``out``."""
    pdoc.render.configure(docformat="numpy", footer_text="tomoconsensus API reference")
    with warnings.catch_warnings():  # string annotations of `from __future__ import annotations` modules
        warnings.filterwarnings("ignore", message="Error parsing type annotation")
        pdoc.pdoc(*(names or modules()), output_directory=out)
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "api"))
