"""Reading the denoised-image files that ``tomoconsensus denoise`` writes (no torch needed, so that
``evaluate`` and ``report`` run without importing it).

Schema (``format = "tomoconsensus.denoised"``; see docs/prepared-format.md)::

    /denoised     float32 (slices, channels, H, W), same units as the prepared file
    /slice_id, /patient_id  utf-8 strings (slices,)
    attributes    format, method, variant, units, modality, run_dir, source
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tomoconsensus.errors import InputError, require_finite
from tomoconsensus.hdf5 import open_hdf5, read_array, read_strings

FORMAT = "tomoconsensus.denoised"


def read_denoised(path: str | Path) -> tuple[np.ndarray, list[str], dict]:
    """(denoised (slices, C, H, W), slice ids, attributes) of a ``denoise`` output file."""
    path = Path(path)
    with open_hdf5(path, "denoised HDF5 file") as f:
        if f.attrs.get("format") != FORMAT or "denoised" not in f:
            raise InputError(path, "format", f"a '{FORMAT}' file written by tomoconsensus denoise",
                             f.attrs.get("format"))
        if "slice_id" not in f:
            raise InputError(path, "slice_id", "the slice ids (written by tomoconsensus denoise)", "missing")
        ids = read_strings(f["slice_id"], path)
        denoised = np.asarray(read_array(f, "denoised", path, "denoised images (slices, C, H, W)"), np.float32)
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        if denoised.ndim != 4 or len(denoised) != len(ids):
            raise InputError(path, "denoised", f"shape ({len(ids)}, C, H, W), one image per slice_id", denoised.shape)
        require_finite(denoised, path, "denoised")
        return denoised, ids, attrs
