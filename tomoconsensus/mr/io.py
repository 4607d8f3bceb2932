"""Readers for multi-coil k-space. Every reader returns volumes of ``(slices, coils, ky, kx)`` complex64.

Supported layouts
-----------------
* fastMRI-style HDF5: dataset ``kspace`` (slices, coils, ky, kx) complex; the phase-encode axis is
  ``ky`` (fastMRI stores ``kx`` = readout last, with the width axis as phase encode).
* Plain ``.npz`` / ``.h5`` with a complex ``kspace`` of shape (slices, coils, ky, kx) or
  (coils, ky, kx) (one slice); attribute/array ``phase_axis`` is not needed: ``ky`` is axis -2.
* ISMRMRD (MRD) HDF5 (``dataset/data`` + ``dataset/xml``; :mod:`tomoconsensus.mr.ismrmrd_io`) and
  Siemens twix ``.dat`` (:mod:`tomoconsensus.mr.twix_io`): scanner raw data, pre-whitened with
  the noise scan where there is one, readout oversampling removed, and the acquired lines taken from
  the file (``KSpaceVolume.acquired``; :mod:`tomoconsensus.mr.raw`).
* NYU knee (Hammernik et al. 2018) ``rawdata*.mat``: variable ``rawdata`` stored as
  (readout, phase encode, coils); transposed to (coils, ky, kx). MAT v5 via scipy, v7.3 via h5py.
  This layout is from the dataset's description; no file of it was available to check here.

k = 0 must sit at index ``n // 2`` on both axes (the convention of ``sigpy.fft``).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomoconsensus.errors import InputError, require_finite
from tomoconsensus.hdf5 import open_hdf5, read_array

#: Largest k-space energy per slice: float32 holds 3.4e38; squared norms of images need headroom.
MAX_ENERGY = 1e36


#: File endings read from a folder.
KSPACE_SUFFIXES = (".h5", ".mrd", ".npz", ".mat", ".dat")


@dataclass
class KSpaceVolume:
    """One volume (patient / series) of multi-coil k-space.

    Attributes
    ----------
    kspace : (slices, coils, ky, kx) complex64, zero on lines that were not acquired
    volume_id : str
    source : Path
    acquired : (slices, ky) bool or None, the lines the scanner acquired (raw formats); None: all
    notes : dict, what the reader did (format, pre-whitening, oversampling removal), for the prepared file
    """

    kspace: np.ndarray
    volume_id: str
    source: Path
    acquired: np.ndarray | None = None
    notes: dict = field(default_factory=dict)

    @property
    def fully_sampled(self) -> bool:
        return self.acquired is None or bool(self.acquired.all())


def validate_kspace(kspace: np.ndarray, source, field: str = "kspace") -> np.ndarray:
    """Check complex values, a coil axis and finiteness; returns (slices, coils, ky, kx) complex64."""
    if not np.iscomplexobj(kspace):
        raise InputError(source, field, "complex k-space (real and imaginary parts)", f"real dtype {kspace.dtype}")
    if kspace.ndim == 3:
        kspace = kspace[None]
    if kspace.ndim != 4 or 0 in kspace.shape:
        raise InputError(source, field, "shape (slices, coils, ky, kx) or (coils, ky, kx) with a coil axis "
                         "and at least one slice", kspace.shape)
    require_finite(kspace, source, field)
    kspace = np.ascontiguousarray(kspace, dtype=np.complex64)
    require_finite(kspace, source, f"{field} (as complex64)")
    energy = np.sum(np.abs(kspace.astype(np.complex128)) ** 2, axis=(1, 2, 3))
    if np.any(energy > MAX_ENERGY):  # squared norms (SENSE, ESPIRiT) would overflow float32
        raise InputError(source, field, f"a scale whose energy sum |k|^2 per slice stays below {MAX_ENERGY:g} "
                         "(float32 reconstructions overflow beyond; rescale the data)", f"{energy.max():.3g}")
    empty = [i for i, k in enumerate(kspace) if not np.any(k)]
    if empty:
        raise InputError(source, field, "measured signal in every slice", f"slice {empty[0]} is all zero")
    return kspace


def _read_h5(path: Path) -> np.ndarray:
    with open_hdf5(path, "HDF5 k-space file") as f:
        if "kspace" not in f:
            raise InputError(path, "kspace", "a complex dataset 'kspace'", sorted(f.keys()))
        data = read_array(f, "kspace", path, "a complex dataset (slices, coils, ky, kx)", complex_ok=True)
        if data.ndim == 2:
            raise InputError(path, "kspace", "a coil axis: (slices, coils, ky, kx) or (coils, ky, kx)", data.shape)
        return data


def _read_mat(path: Path) -> np.ndarray:
    import scipy.io

    try:
        data = scipy.io.loadmat(path)["rawdata"]
    except NotImplementedError:  # MAT v7.3 is HDF5; h5py reverses the axis order
        with open_hdf5(path, "MAT v7.3 file") as f:
            raw = read_array(f, "rawdata", path, "complex k-space (readout, phase encode, coils)", complex_ok=True)
        data = raw.transpose()
    except KeyError:
        raise InputError(path, "rawdata", "a variable 'rawdata' (readout, phase encode, coils)") from None
    except (OSError, ValueError) as exc:
        raise InputError(path, "file", "a readable MAT file", str(exc)) from None
    if data.ndim != 3:
        raise InputError(path, "rawdata", "(readout, phase encode, coils) with a coil axis", data.shape)
    return data.transpose(2, 1, 0)  # -> (coils, ky, kx)


def read_raw_file(path: Path, lines) -> KSpaceVolume:
    """A scanner raw file through :func:`tomoconsensus.mr.raw.assemble_lines`."""
    from tomoconsensus.mr.raw import assemble_lines

    kspace, acquired, notes = assemble_lines(lines, path)
    return KSpaceVolume(validate_kspace(kspace, path), path.stem, path, acquired, notes)


def read_kspace_file(path: str | Path) -> KSpaceVolume:
    """One k-space file (layouts in the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "--kspace", "an existing file or folder", "not found")
    if path.suffix == ".dat":
        from tomoconsensus.mr.twix_io import read_twix_lines

        return read_raw_file(path, read_twix_lines(path))
    from tomoconsensus.mr.ismrmrd_io import is_ismrmrd, read_ismrmrd_lines

    if path.suffix in (".h5", ".mrd") and is_ismrmrd(path):
        return read_raw_file(path, read_ismrmrd_lines(path))
    if path.suffix == ".npz":
        try:
            with np.load(path) as z:
                if "kspace" not in z:
                    raise InputError(path, "kspace", "an array 'kspace'", sorted(z.files))
                data = z["kspace"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(path, "kspace", "a readable .npz with a numeric complex array 'kspace' (object arrays "
                             "are refused)", str(exc).split(";")[0]) from None
        if data.ndim == 2:
            raise InputError(path, "kspace", "a coil axis: (slices, coils, ky, kx) or (coils, ky, kx)", data.shape)
    elif path.suffix == ".mat":
        data = _read_mat(path)
    else:
        data = _read_h5(path)
    return KSpaceVolume(validate_kspace(data, path), path.stem, path)


def read_kspace(path: str | Path) -> list[KSpaceVolume]:
    """A file, or every k-space file of a folder (one volume each, ``KSPACE_SUFFIXES``)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in KSPACE_SUFFIXES)
        if not files:
            raise InputError(path, "files", f"a folder with k-space files ({', '.join(KSPACE_SUFFIXES)})",
                             "none found")
        return [read_kspace_file(p) for p in files]
    return [read_kspace_file(path)]
