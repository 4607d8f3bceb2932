"""Write the CT demo's embedded training/validation slices from the shared TCIA series.

    python examples/ct/make_demo_slices.py ../shared/data/ct/tcia_series \
        tomoconsensus/embedded/tcia_series_demo_hu.npz [PER_PATIENT=20]

Up to PER_PATIENT slices of every series in the folder, evenly spaced through the series,
(``<collection>__<patient>__<uid>.npz``, see that folder's README) is resampled onto the
``demo-fanbeam`` grid (128^2 pixels of 3.0 mm, field-of-view mask) with
:func:`tomoconsensus.tomo.grid.to_geometry_grid` -- exactly what ``prepare ct`` does to an
image before projecting it -- and stored as int16 HU (rounding: at most 0.5 HU). The demo therefore
simulates the same sinograms from the embedded file as it would from the original 512^2 slices.
Arrays: ``hu`` (n, 128, 128) int16, ``pixel_spacing_mm`` (n,), ``files`` (n,) slice ids
``<PatientID>_z<z>``, ``collection`` (n,).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tomoconsensus.ct.io import read_image_array
from tomoconsensus.ct.protocol import load_geometry
from tomoconsensus.tomo.grid import to_geometry_grid


def main(folder: str, out: str, per_patient: str = "20", geometry: str = "demo-fanbeam") -> None:
    geom = load_geometry(geometry)
    hu, ids, collections = [], [], []
    for path in sorted(Path(folder).glob("*__*__*.npz")):
        stack = read_image_array(path)
        keep = np.unique(np.linspace(0, len(stack.hu) - 1, min(int(per_patient), len(stack.hu))).round().astype(int))
        for i in keep:
            img, spacing, sid = stack.hu[i], stack.pixel_spacing_mm[i], stack.slice_ids[i]
            hu.append(np.round(to_geometry_grid(img, float(spacing), geom)).astype(np.int16))
            ids.append(sid)
            collections.append(path.name.split("__")[0])
    np.savez_compressed(out, hu=np.stack(hu), pixel_spacing_mm=np.full(len(hu), geom.pixel_size_mm),
                        files=np.array(ids), collection=np.array(collections))
    patients = sorted({i.split("_")[0] for i in ids})
    print(f"wrote {out}: {len(hu)} slices of {len(patients)} patients on the {geometry} grid "
          f"({Path(out).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
