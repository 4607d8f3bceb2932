"""PET preparation: prompt stacks (read or simulated) -> thinned halves, corrected FBP (or OSEM).

``prepare pet`` (prompts read from a file) and the PET demo (prompts simulated from the embedded CT
anatomy) both go through :func:`pet_modality` and :func:`write_pet`.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from tomoconsensus.data.prepared import PrepareSummary, write_prepared
from tomoconsensus.pet.io import PromptStack
from tomoconsensus.pet.modality import PETModality
from tomoconsensus.pet.recon import pet_geometry
from tomoconsensus.pet.sources import check_reference_grid, prompt_slices


def pet_modality(stack: PromptStack, image_size: int, pixel_size_mm: float, recon: str = "fbp",
                 osem_iterations: int = 4, osem_subsets: int = 8) -> PETModality:
    """The modality for a prompt stack's sinogram geometry on an ``image_size``^2 grid of ``pixel_size_mm``."""
    geom = pet_geometry(stack.angles_deg, stack.prompts.shape[2], stack.bin_size_mm, image_size, pixel_size_mm)
    return PETModality(geom, stack.activity_units, recon, osem_iterations=osem_iterations, osem_subsets=osem_subsets)


def write_pet(out: str | Path, modality: PETModality, stack: PromptStack, seed: int, source: str | Path,
              max_slices: int | None = None, progress: bool = True) -> PrepareSummary:
    """Thin, reconstruct and write the slices of ``stack`` (``seed``: the thinning) to the prepared file ``out``."""
    check_reference_grid(stack, modality.geom, source)
    n = len(stack.prompts) if max_slices is None else min(max_slices, len(stack.prompts))
    attrs = {"source": str(source), "prompts_per_slice_mean": float(stack.prompts.sum((1, 2)).mean())}
    return write_prepared(out, modality, islice(prompt_slices(stack), n), n, seed, attrs, progress=progress)
