"""Scanner raw files written with the formats' own libraries, from a known k-space (ground truth).

:func:`raw_lines` builds what a scanner would record for a known k-space ``K`` (coils, ny, nx):
the readout 2x oversampled (the coil images zero-padded to twice the field of view along x and
transformed back, so removing the oversampling returns ``K`` exactly) and the coils mixed by a known
lower-triangular ``L`` (correlated noise), with noise-scan samples whose sample covariance is exactly
``L L^H`` (orthogonal rows): pre-whitening by the Cholesky factor returns ``K`` exactly.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from tests.conftest import DATA

#: The twix template: the shipped Siemens file (its header and MDB layout are reused).
TWIX_TEMPLATE = DATA / "mr" / "twix_gre_phantom_2ch.dat"


def known_kspace(coils: int, ny: int, nx: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth object times smooth coil weights, in k-space (coils, ny, nx) complex64, k = 0 at n // 2."""
    y, x = np.mgrid[-1:1:ny * 1j, -1:1:nx * 1j]
    obj = (x ** 2 + y ** 2 < 0.6) * (1 + 0.5 * np.cos(3 * x)) + 0.3 * ((x - 0.2) ** 2 + y ** 2 < 0.05)
    weights = np.stack([np.exp(1j * (c + 1) * 0.5 * x + 0.3 * c * y) for c in range(coils)])
    images = weights * obj + 0.01 * (rng.standard_normal((coils, ny, nx)) + 1j * rng.standard_normal((coils, ny, nx)))
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(images, axes=(1, 2)), norm="ortho"), axes=(1, 2)).astype(
        np.complex64)


def oversample_readout(kspace: np.ndarray) -> np.ndarray:
    """(..., nx) -> (..., 2 nx): zero-pad each readout's image to twice the field of view."""
    nx = kspace.shape[-1]
    image = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(kspace, axes=-1), axis=-1), axes=-1)
    padded = np.zeros((*image.shape[:-1], 2 * nx), complex)
    padded[..., nx // 2:nx // 2 + nx] = image
    return np.fft.fftshift(np.fft.fft(np.fft.ifftshift(padded, axes=-1), axis=-1), axes=-1)


def mixing(coils: int, rng: np.random.Generator) -> np.ndarray:
    """A lower-triangular coil mixing L with positive diagonal (the Cholesky factor of L L^H)."""
    low = np.tril(rng.standard_normal((coils, coils)) + 1j * rng.standard_normal((coils, coils))) * 0.3
    return low + np.diag(1.0 + np.arange(coils) * 0.5 - np.diag(low).real) - 1j * np.diag(np.diag(low).imag)


def exact_noise(low: np.ndarray, samples: int, rng: np.random.Generator, dwell_ratio: float = 1.0) -> np.ndarray:
    """Noise (coils, samples) whose covariance ``n n^H / samples`` is exactly ``L L^H / dwell_ratio``."""
    coils = low.shape[0]
    a = rng.standard_normal((samples, coils)) + 1j * rng.standard_normal((samples, coils))
    q, _ = np.linalg.qr(a)  # orthonormal columns: q^H q = I
    return (low @ (np.sqrt(samples) * q.conj().T) / np.sqrt(dwell_ratio)).astype(np.complex64)


def raw_lines(kspace: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Scanner lines (ny, coils, 2 nx) of one slice's k-space (coils, ny, nx): oversampled and mixed."""
    return np.einsum("ij,jys->yis", low, oversample_readout(kspace)).astype(np.complex64)


def write_ismrmrd(path: Path, kspace: np.ndarray, acquired: np.ndarray, low: np.ndarray, noise: np.ndarray | None,
                  noise_dwell_us: float = 5.0, dwell_us: float = 5.0, edit_header=None, edit_line=None) -> None:
    """An ISMRMRD file of slices (slices, coils, ny, nx) with the lines where ``acquired`` (slices, ny).

    ``edit_header(header)`` may change the XML header object before it is written, ``edit_line(acq, y)``
    each imaging acquisition (line ``y``) before it is appended.
    """
    import ismrmrd
    import ismrmrd.xsd as x

    n_slices, coils, ny, nx = kspace.shape
    def space(mx):
        return x.encodingSpaceType(matrixSize=x.matrixSizeType(x=mx, y=ny, z=1),
                                   fieldOfView_mm=x.fieldOfViewMm(x=200.0 * mx / nx, y=200.0, z=5.0))

    limits = x.encodingLimitsType(kspace_encoding_step_1=x.limitType(minimum=0, maximum=ny - 1, center=ny // 2),
                                  slice=x.limitType(minimum=0, maximum=n_slices - 1, center=0))
    header = x.ismrmrdHeader(
        experimentalConditions=x.experimentalConditionsType(H1resonanceFrequency_Hz=123_000_000),
        acquisitionSystemInformation=x.acquisitionSystemInformationType(receiverChannels=coils),
        encoding=[x.encodingType(encodedSpace=space(2 * nx), reconSpace=space(nx), encodingLimits=limits,
                                 trajectory=x.trajectoryType.CARTESIAN)])
    if edit_header is not None:
        edit_header(header)
    with ismrmrd.Dataset(str(path), "dataset", mode="w") as dset:
        dset.write_xml_header(x.ToXML(header))
        if noise is not None:
            acq = ismrmrd.Acquisition.from_array(noise, sample_time_us=noise_dwell_us)
            acq.setFlag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
            dset.append_acquisition(acq)
        for s in range(n_slices):
            lines = raw_lines(kspace[s], low)
            for y in np.flatnonzero(acquired[s]):
                acq = ismrmrd.Acquisition.from_array(lines[y], center_sample=nx, sample_time_us=dwell_us)
                acq.idx.kspace_encode_step_1 = int(y)
                acq.idx.slice = s
                if edit_line is not None:
                    edit_line(acq, int(y))
                dset.append_acquisition(acq)


def write_twix(path: Path, kspace: np.ndarray, acquired: np.ndarray, low: np.ndarray,
               noise: np.ndarray | None) -> None:
    """A Siemens twix (VE) file of one slice (1, coils, ny, nx) from the shipped file's header and MDBs.

    The template has 2 channels, 160 lines of 320 samples: ``kspace`` must be (1, 2, 160, 160).
    """
    import twixtools

    with contextlib.redirect_stdout(io.StringIO()):
        template = twixtools.read_twix(str(TWIX_TEMPLATE), verbose=False, keep_acqend=True)[-1]
    image = [m for m in template["mdb"] if m.is_image_scan()]
    acqend = [m.convert_to_local() for m in template["mdb"] if m.is_flag_set("ACQEND")]
    lines = raw_lines(kspace[0], low)
    mdbs = []
    if noise is not None:
        for chunk in np.split(noise, noise.shape[1] // 320, axis=1):
            mdb = image[0].convert_to_local()
            mdb.clear_all_flags()
            mdb.add_flag("NOISEADJSCAN")
            mdb.data = chunk
            mdbs.append(mdb)
    for y in np.flatnonzero(acquired[0]):
        mdb = image[y].convert_to_local()
        assert mdb.cLin == y
        mdb.data = lines[y]
        mdbs.append(mdb)
    template["mdb"] = mdbs + acqend
    twixtools.write_twix(template, str(path))


def write_twix_variant(path: Path, protocol: dict[bytes, bytes] | None = None, edit_mdbs=None) -> None:
    """The shipped Siemens file with its protocol text and imaging MDBs edited, written with twixtools.

    ``protocol`` maps byte strings of the header (ASCCONV ``MeasYaps``/``Phoenix`` or XProtocol text) to
    replacements of the same length (the header's length fields stay valid), every occurrence;
    ``edit_mdbs(mdbs)`` gets the imaging MDBs (local copies, real data) and returns the list to write.
    """
    import twixtools

    with contextlib.redirect_stdout(io.StringIO()):
        template = twixtools.read_twix(str(TWIX_TEMPLATE), verbose=False, keep_acqend=True)[-1]
    text = template["hdr_str"].tobytes()
    for old, new in (protocol or {}).items():
        assert len(old) == len(new) and old in text, old
        text = text.replace(old, new)
    template["hdr_str"] = np.frombuffer(text, dtype=template["hdr_str"].dtype).copy()
    mdbs = [m.convert_to_local() for m in template["mdb"] if m.is_image_scan()]
    acqend = [m.convert_to_local() for m in template["mdb"] if m.is_flag_set("ACQEND")]
    template["mdb"] = (edit_mdbs(mdbs) if edit_mdbs is not None else mdbs) + acqend
    twixtools.write_twix(template, str(path))
