"""The CT demo: quarter-dose fan-beam data simulated from the shipped clinical slices (``demo ct``).

Trains on 11 patients of 12 clinical TCIA series shipped in the package on the demo grid (chest and
abdomen, several vendors, CC BY; up to ``train_slices_per_patient`` slices each), selects each run's
epoch on one held-out patient (``LIDC-IDRI-0001``, noisy data only) and tests on the 12 slices of 6
patients of another collection (TCIA COVID-19-NY-SBU) that no network saw
(:mod:`tomoconsensus.study.anatomy`). Quarter-dose sinograms are simulated on the ``demo-fanbeam``
geometry (LDCT distances and fan angle, 128^2 grid of 3 mm pixels); baselines FBP (all views) and TV.
The protocol is ``demo.toml`` beside this module.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

from tomoconsensus.study.anatomy import COVID, SERIES, series_split
from tomoconsensus.study.spec import Check, DemoSpec
from tomoconsensus.study.story import beats, mean
from tomoconsensus.tomo.tv import TVConfig


@dataclass(frozen=True)
class CTDemoData:
    """What the CT demo simulates and on which slices (paper values in brackets; values: demo.toml).

    Every file is prepared with the count-domain ``thinning`` split (``split``): the validation
    patient's held-out loss then tracks the clean error, the view split's does not (docs/method.md,
    'Choosing without a reference', ``benchmarks/results/selection_criterion.json``). The training split,
    ``beta_r`` = 0 and 32^2 patches are the configuration with the lowest value of that criterion among
    the 8 measured, and 72 epochs with a cosine step the lowest of each self-supervised method's own
    criterion among 24 / 48 / 72 (``benchmarks/results/training_length_choice.json``; no clean image, no
    test patient). The baselines are tuned as well as they may be: Noise2Clean (the supervised bound)
    trains longer (``method_epochs``) and keeps the epoch of its lowest clean validation loss; TV's
    weight is the one of ``tv_lam_grid`` with the lowest RMSE against the validation patient's reference
    on ``tv_tune_slices`` slices (:mod:`tomoconsensus.ct.tv_tuning`).

    Attributes
    ----------
    geometry : str
        Named geometry [ldct-fanbeam, 512^2, 2304 views].
    dose_fraction : float
        Of the geometry's full dose [0.25].
    train_slices_per_patient, max_val_slices, max_test_slices : int
        Evenly spaced training slices per patient [50], validation and test slices.
    split : str
        ``thinning`` or ``views``, of every file.
    tv_tune_slices : int
        Validation slices TV's weight is chosen on.
    tv_lam_grid : tuple of float
        TV weights tried (dimensionless, :mod:`tomoconsensus.tomo.tv`).
    tv_iterations, tv_power_iterations : int
        Chambolle-Pock iterations and the power iterations estimating ||A||.
    """

    geometry: str
    dose_fraction: float
    train_slices_per_patient: int
    max_val_slices: int
    max_test_slices: int
    split: str
    tv_tune_slices: int
    tv_lam_grid: tuple[float, ...]
    tv_iterations: int
    tv_power_iterations: int

    def tv(self) -> TVConfig:
        return TVConfig(n_iter=self.tv_iterations, power_iterations=self.tv_power_iterations)

    def describe(self, protocol) -> str:
        t = protocol.training
        return (f"reduced protocol: {self.geometry} (128^2, 3 mm pixels, 360 views), dose "
                f"{self.dose_fraction}, up to {self.train_slices_per_patient} training slices per patient, "
                f"{t.describe()}, beta_w {t.beta_w:g}, beta_r {t.beta_r:g}, "
                f"Noise2Clean {protocol.epochs('noise2clean')} epochs ({protocol.lr_schedule('noise2clean')} step), "
                f"TV weight chosen on {self.tv_tune_slices} validation slices' reference, {self.split} split, "
                f"(paper: 512^2, UNet-32 depth 4, 96^2, batch 40, 100 epochs, Adam 1e-4, beta_r 0.5)")


def ct_split(data: CTDemoData):
    """(name, slices, seed offset) of the CT demo: train and validation patients from the TCIA series,
    test patients from another collection (COVID-19-NY-SBU) that no network sees."""
    return series_split(data.train_slices_per_patient, data.max_val_slices, data.max_test_slices)


def prepare_ct_demo(out_dir: Path, protocol, seed: int = 0, progress: bool = True,
                    device: str = "cpu") -> tuple[Path, Path, Path]:
    """Prepared train, validation and test files from the embedded slices (patient-level split).

    The FBP runs on the torch ``device``; the test file also holds the TV baseline, its weight chosen
    on the validation patient's reference (``tv_lam_choice``, ``tv_lam_grid``).
    """
    from tomoconsensus.ct.pipeline import ct_modality, fan_beam_geometry, simulated_source, tune_tv, write_ct

    data: CTDemoData = protocol.data
    geom = fan_beam_geometry(data.geometry)
    modality = ct_modality(geom, device, data.split)
    paths, tuning = [], None
    for name, sub, offset in ct_split(data):
        path = out_dir / f"ct_{name}.h5"
        source = functools.partial(simulated_source, sub, geom, data.dose_fraction, seed + offset,
                                   f"embedded {(COVID if name == 'test' else SERIES).name}",
                                   counts=data.split == "thinning")  # same readings, each call
        if name == "val":
            tuning = tune_tv(source(), geom, data.tv(), data.tv_tune_slices, data.tv_lam_grid)
            print(f"TV weight {tuning.lam:.3g} ({tuning.choice()}):\n{tuning.markdown()}")
        tv = dataclasses.replace(data.tv(), lam=tuning.lam) if name == "test" else None
        print(write_ct(path, modality, source(), seed + offset, tv, progress,
                       tv_tuning=tuning if name == "test" else None))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def ct_claims(metrics: dict, base: str, err: str) -> list[Check]:
    """The project's CT targets (issue 13): RMSE ratio and the share of the FBP -> Noise2Clean SSIM gap; the
    baselines are what they claim to be (issue 21): Noise2Clean at least as good as consensus, TV beating FBP."""
    ratio = mean(metrics, "Consensus", err) / mean(metrics, base, err)
    gap = mean(metrics, "Noise2Clean", "ssim") - mean(metrics, base, "ssim")
    closed = (mean(metrics, "Consensus", "ssim") - mean(metrics, base, "ssim")) / gap if gap > 0 else float("nan")
    bound = mean(metrics, "Noise2Clean", "ssim") - mean(metrics, "Consensus", "ssim")
    checks = [(f"Consensus RMSE <= 0.85 x FBP RMSE ({ratio:.2f} x)", ratio <= 0.85),
              (f"Consensus closes >= 60 % of the FBP -> Noise2Clean SSIM gap ({100 * closed:.0f} %)", closed >= 0.6),
              (f"Noise2Clean SSIM >= Consensus SSIM: the supervised bound is one ({100 * bound:+.2f} points)",
               bound >= 0)]
    if "TV" in metrics:  # the tuned baseline (issue 21): TV's weight chosen on the validation reference
        checks.append(beats(metrics, "TV", base, "ssim", "SSIM", False))
    return checks


DEMO = DemoSpec(CTDemoData, Path(__file__).with_name("demo.toml"), prepare_ct_demo, "FBP", "rmse_hu", ct_claims,
                "docs/method.md, 'Consensus on unseen patients: what was measured, and the choices it led to'")
