"""``tomoconsensus iq`` for CT: simulate the task phantoms with a prepared file's geometry and dose, apply FBP,
TV and every run, and measure NPS, TTF, d' (:mod:`tomoconsensus.iq.measure`) and the uncertainty map's
calibration (:mod:`tomoconsensus.iq.uncertainty`).

The geometry and dose come from a prepared CT file (``geometry_toml``, ``dose_fraction``; its
``tv_lam``/``tv_iter`` for TV); every run must have been trained on data of that geometry and dose
(checked against the run's ``run_info.json`` and, where it still exists, its training file).
Plugin target: ``tomoconsensus.ct.iq:run_iq``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tomoconsensus.ct.iq_phantom import SPLITS, Realisations, TaskPhantom, insert_phantom, uniform_phantom
from tomoconsensus.ct.protocol import geometry_from_toml_text
from tomoconsensus.data.prepared import PreparedDataset
from tomoconsensus.errors import InputError
from tomoconsensus.iq.measure import Insert, IQResult, MethodImages, measure_method, observer_setup
from tomoconsensus.tomo.geometry import FanBeamGeometry

HU = 1000.0  # HU per HU/1000 (the prepared files' unit)
#: Tasks of the report: (diameter mm, contrast HU).
TASKS = ((5.0, 10.0), (5.0, 50.0), (10.0, 10.0), (10.0, 50.0))


@dataclass
class IQSetup:
    """What the simulation needs from the prepared file: geometry, dose, TV settings."""

    geom: FanBeamGeometry
    dose_fraction: float
    tv: Any
    source: Path
    split: str = "views"


def read_setup(data_path: str | Path) -> IQSetup:
    """Geometry, dose and TV settings of a prepared CT file; InputError naming the missing attribute."""
    from tomoconsensus.hdf5 import open_hdf5
    from tomoconsensus.tomo.tv import TVConfig

    path = Path(data_path)
    with open_hdf5(path, "prepared HDF5 file (tomoconsensus prepare ct)") as f:
        attrs = dict(f.attrs)
    if str(attrs.get("modality", "")) != "ct":
        raise InputError(path, "modality", "a prepared CT file ('ct')", attrs.get("modality"))
    for key in ("geometry_toml", "dose_fraction"):
        if key not in attrs:
            raise InputError(path, key, "a CT file simulated with a known geometry and dose (prepare ct --images)",
                             "missing")
    geom = geometry_from_toml_text(str(attrs["geometry_toml"]), str(path))
    if not isinstance(geom, FanBeamGeometry) or geom.is_curved:
        raise InputError(path, "geometry_toml", "a flat-detector fan-beam geometry (the iq phantom's projector)",
                         getattr(geom, "detector_shape", geom.beam))
    tv = TVConfig(lam=float(attrs.get("tv_lam", TVConfig.lam)), n_iter=int(attrs.get("tv_iter", TVConfig.n_iter)))
    split = str(attrs.get("split_kind", "views"))
    if split not in SPLITS:
        raise InputError(path, "split_kind", f"one of {', '.join(SPLITS)} (the splits the iq phantom simulates)", split)
    return IQSetup(geom, float(attrs["dose_fraction"]), tv, path, split)


def check_run(run_dir: Path, setup: IQSetup) -> None:
    """Refuse a run trained on another geometry or dose than the prepared file's."""
    info_path = run_dir / "run_info.json"
    if not info_path.is_file():
        raise InputError(run_dir, "run_info.json", "a run folder written by tomoconsensus train", "missing")
    data = json.loads(info_path.read_text()).get("training_data", {})
    if data.get("geometry_name") and data["geometry_name"] != setup.geom.name:
        raise InputError(info_path, "training_data.geometry_name", f"'{setup.geom.name}' like {setup.source}",
                         data["geometry_name"])
    train = Path(str(data.get("path", "")))
    if train.is_file():
        setup_train = read_setup(train)
        if abs(setup_train.dose_fraction - setup.dose_fraction) > 1e-9:
            raise InputError(train, "dose_fraction", f"{setup.dose_fraction:g} like {setup.source}",
                             setup_train.dose_fraction)


def insert_centres_px(phantom: TaskPhantom, geom: FanBeamGeometry) -> list[tuple[float, float]]:
    """(row, column) of each insert's centre (docs/conventions.md: x along columns, y up the rows)."""
    c = (geom.image_size - 1) / 2
    return [(c - d.y_mm / geom.pixel_size_mm, c + d.x_mm / geom.pixel_size_mm) for d in phantom.inserts]


def inserts_px(phantom: TaskPhantom, geom: FanBeamGeometry) -> list[Insert]:
    """The phantom's inserts on the image grid (for :func:`tomoconsensus.iq.measure.measure_method`)."""
    return [Insert(rc, d.radius_mm / geom.pixel_size_mm, d.hu_added)
            for rc, d in zip(insert_centres_px(phantom, geom), phantom.inserts, strict=True)]


def nps_roi_px(geom: FanBeamGeometry, body_mm: float) -> int:
    """Side of the central NPS ROI: the largest even square inside 0.9 of the body, at most 128 pixels."""
    side = int(0.9 * body_mm * np.sqrt(2) / geom.pixel_size_mm)
    return int(min(128, side - side % 2))


def as_prepared(r: Realisations, name: str) -> PreparedDataset:
    """Realisations as an in-memory prepared CT dataset (what :func:`apply_run` reads)."""
    ids = [f"{name}_{i}" for i in range(len(r.x1))]
    return PreparedDataset(r.x1, r.x2, r.x_est, None, {}, ids, ids, {"modality": "ct", "units": "HU/1000"},
                           Path(f"<iq phantom {name}>"))


def baseline_images(uniform: Realisations, inserts: Realisations) -> dict[str, MethodImages]:
    """FBP (x_est; halves x1, x2) and, where reconstructed, TV, in HU."""
    out = {"FBP": MethodImages(uniform.x_est[:, 0] * HU, inserts.x_est[:, 0] * HU,
                               (inserts.x1, inserts.x2, inserts.x1))}
    if uniform.tv is not None and inserts.tv is not None:
        out["TV"] = MethodImages(uniform.tv[:, 0] * HU, inserts.tv[:, 0] * HU)
    return out


def run_images(run_dir: Path, uniform: Realisations, inserts: Realisations, device: str = "auto",
               batch_size: int = 8) -> MethodImages:
    """A run's default output on both phantoms (HU), and its half outputs on the insert phantom."""
    from tomoconsensus import methods
    from tomoconsensus.denoising import apply_run, check_like_training
    from tomoconsensus.iq.uncertainty import half_outputs
    from tomoconsensus.learn.trained import load_trained, resolve_device

    dev = resolve_device(device)
    config, models, trained_on = load_trained(run_dir, dev, with_data=True)
    variant = methods.check_variant(config.method, None)
    images = []
    for r, name in ((uniform, "uniform"), (inserts, "inserts")):
        data = as_prepared(r, name)
        check_like_training(data, config.channels, trained_on)
        images.append(apply_run(config, models, data, dev, variant, batch_size, progress=False)[:, 0] * HU)
    halves = half_outputs(config.method, models, inserts.x1, inserts.x2, dev, batch_size)
    return MethodImages(images[0], images[1], halves)


def uncertainty_summary(run_dir: Path | None, images: MethodImages, truth: np.ndarray, val=None, test=None,
                        device: str = "auto") -> tuple[dict, dict]:
    """Calibrate the disagreement map on ``val`` (noisy only) and check it on ``test`` (clean reference) and on
    the insert phantom (its exact noiseless FBP as truth). ``run_dir=None`` is FBP. Returns (JSON, overlay)."""
    from tomoconsensus.iq.apply import prepared_outputs
    from tomoconsensus.iq.uncertainty import body_mask, calibration_scale, check_calibration, raw_sigma

    out: dict[str, Any] = {"calibrated_on": None, "scale_k": 1.0}
    if val is not None:
        _, (h1, h2, y1) = prepared_outputs(run_dir, val, device)
        k = calibration_scale(y1, val.x1, val.x2, raw_sigma(h1, h2), body_mask(val.x_est, "ct"))
        out.update(calibrated_on=str(val.path), scale_k=k, calibration_slices=len(val))
    k = out["scale_k"]
    h1, h2, _ = images.halves
    sigma = k * raw_sigma(h1, h2)[:, 0]
    mask = np.broadcast_to(truth[0] > -0.5, sigma.shape)
    out["phantom"] = check_calibration(images.inserts / HU, np.broadcast_to(truth[0], sigma.shape), sigma, mask, HU)
    overlay: dict[str, Any] = {}
    if test is not None and test.reference is not None:
        y, (t1, t2, _) = prepared_outputs(run_dir, test, device)
        sig_t = k * raw_sigma(t1, t2)
        out["test"] = check_calibration(y, test.reference, sig_t, body_mask(test.x_est, "ct"), HU)
        out["test"]["slices"] = len(test)
        overlay = {"image_hu": y[0, 0] * HU, "sigma_hu": sig_t[0, 0] * HU,
                   "error_hu": np.abs(y[0, 0] - test.reference[0, 0]) * HU}
    return out, overlay


def run_iq(data_path: str | Path, runs: dict[str, Path], val_path: str | Path | None = None, n: int = 16,
           seed: int = 0, with_tv: bool = True, device: str = "auto", n_tv: int | None = None) -> IQResult:
    """Everything ``tomoconsensus iq`` reports for CT (see docs/iq.md); nothing is written here."""
    from tomoconsensus.ct.iq_phantom import realisations
    from tomoconsensus.data.prepared import read_prepared

    setup = read_setup(data_path)
    for run_dir in runs.values():
        check_run(Path(run_dir), setup)
    geom = setup.geom
    uni_ph, ins_ph = uniform_phantom(geom), insert_phantom(geom)
    tv = setup.tv if with_tv else None
    uniform = realisations(uni_ph, geom, setup.dose_fraction, n, seed, tv, n_tv, setup.split)
    inserts = realisations(ins_ph, geom, setup.dose_fraction, n, seed + 1, tv, n_tv, setup.split)
    images = baseline_images(uniform, inserts)
    for name, run_dir in runs.items():
        images[name] = run_images(Path(run_dir), uniform, inserts, device)
    test = read_prepared(data_path)
    val = read_prepared(val_path) if val_path is not None else None
    roi = nps_roi_px(geom, uni_ph.body_radius_mm)
    result = IQResult(describe_setup(setup, n, seed, ins_ph, roi))
    if uniform.tv is not None:
        result.setup["tv"]["realisations"] = len(uniform.tv)
    for name, imgs in images.items():
        summary, curves = measure_method(imgs, geom.pixel_size_mm, roi, inserts_px(ins_ph, geom),
                                         geom.image_extent_mm, TASKS)
        if imgs.halves is not None:
            run_dir = None if name == "FBP" else Path(runs[name])
            summary["uncertainty"], curves["overlay"] = uncertainty_summary(run_dir, imgs, inserts.truth, val, test,
                                                                            device)
        result.methods[name], result.curves[name] = summary, curves
    return result


def describe_setup(setup: IQSetup, n: int, seed: int, phantom: TaskPhantom, roi_px: int) -> dict:
    """The ``setup`` block of iq.json: where geometry and dose came from, phantom, tasks, observer."""
    g = setup.geom
    return {"data": str(setup.source), "geometry_name": g.name, "dose_fraction": setup.dose_fraction,
            "split_kind": setup.split,
            "image_size": g.image_size, "pixel_size_mm": g.pixel_size_mm, "realisations": n, "seed": seed,
            "tv": {"lam": setup.tv.lam, "n_iter": setup.tv.n_iter},
            "phantom": {"body_radius_mm": phantom.body_radius_mm,
                        "inserts": [{"x_mm": d.x_mm, "y_mm": d.y_mm, "radius_mm": d.radius_mm,
                                     "contrast_hu": d.hu_added} for d in phantom.inserts]},
            "nps_roi_px": roi_px, **observer_setup(g.image_extent_mm, TASKS)}
