"""What a modality's demo is (:class:`DemoSpec`) and the training protocol its runs share.

A plugin's ``demo`` part (:mod:`tomoconsensus.registry`) is a :class:`DemoSpec`; its protocol, a
TOML file beside it, is read by :mod:`tomoconsensus.study.protocol` into a :class:`TrainingProtocol`
(the :class:`~tomoconsensus.learn.config.TrainConfig` values the methods share) and the modality's own
frozen data class (what is simulated, how many slices, its baselines).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: (method, output variant, label in the report); the runs are trained once per method.
METHODS = (("consensus", None, "Consensus"), ("consensus", "z", "Consensus z (paper)"),
           ("noise2noise", None, "Noise2Noise"), ("noise2noise", "f1", "Noise2Noise f(x1)"),
           ("noise2clean", None, "Noise2Clean"), ("distill", None, "Distilled g(x_est)"))
#: The run a distilled network learns from (issue 10: deployment on the images a scanner makes).
DISTILL_TEACHER = "consensus"

Check = tuple[str, "bool | None"]


@dataclass(frozen=True)
class TrainingProtocol:
    """The training values every method of a demo shares (TrainConfig's names and units; paper in brackets).

    Attributes
    ----------
    channels : int
        Image channels (real images 1, complex 2, energy bins one each).
    base_features, depth : int
        UNet width and depth [32 or 64, 4].
    patch_size : int
        Square training patches, pixels [96].
    batch_size, patches_per_slice, epochs : int
        [40, 40, 100]; an epoch draws ``patches_per_slice`` patches of every training slice.
    learning_rate : float
        Adam step size [1e-4].
    lr_schedule : str
        ``constant`` or ``cosine`` (from ``learning_rate`` to 0 over the run) [constant].
    beta_w, beta_r : float
        Weight decay and consistency weights [CT 5e-6, 0.5; MR 1e-6, 5].
    selection : str
        What selects the epoch on the validation halves: ``loss`` (each method's held-out loss) or
        ``output_on_halves`` (the held-out error of the deployed operator; TrainConfig's ``selection``).
    checkpoint_every_steps : int
        Steps between checkpoints (an interrupted demo resumes from the last).
    """

    channels: int
    base_features: int
    depth: int
    patch_size: int
    batch_size: int
    patches_per_slice: int
    epochs: int
    learning_rate: float
    lr_schedule: str
    beta_w: float
    beta_r: float
    selection: str
    checkpoint_every_steps: int

    def config(self, device: str, method: str = "consensus", epochs: int | None = None,
               lr_schedule: str | None = None):
        """The :class:`~tomoconsensus.learn.config.TrainConfig` of one run (validated by it)."""
        from tomoconsensus.learn.config import TrainConfig

        values = dataclasses.asdict(self) | {"epochs": self.epochs if epochs is None else epochs,
                                             "lr_schedule": self.lr_schedule if lr_schedule is None else lr_schedule}
        return TrainConfig(method=method, device=device, **values)

    def describe(self) -> str:
        return (f"UNet-{self.base_features} depth {self.depth}, {self.patch_size}^2 patches, batch {self.batch_size}, "
                f"{self.patches_per_slice} patches/slice/epoch, {self.epochs} epochs, "
                f"Adam {self.learning_rate:g}{self._schedule()}, best epoch by held-out "
                + ("self-supervised loss" if self.selection == "loss" else "error of the output on the halves"))

    def _schedule(self) -> str:
        return "" if self.lr_schedule == "constant" else f" ({self.lr_schedule} step)"


@dataclass(frozen=True)
class DemoSpec:
    """What a modality's demo is: its data, its preparation, its baseline and its claims.

    Attributes
    ----------
    data : type
        Frozen dataclass of the modality's protocol values (table ``data`` of the TOML); its
        ``describe(protocol)`` (a :class:`~tomoconsensus.study.protocol.StudyProtocol`) gives the
        one-line protocol printed by the demo.
    protocol : Path
        The TOML with the ``full`` and ``quick`` protocols (:mod:`tomoconsensus.study.protocol`).
    prepare : callable
        ``(out_dir, protocol, seed, progress, device)`` -> prepared train, validation and test files
        (``<modality>_<split>.h5``; other files it writes: ``<modality>_<split>_<what>.h5|npz``).
    baseline, error : str
        The report's linear reconstruction of all the data and its RMSE metric key.
    claims : callable
        ``(means, baseline, error)`` -> the modality's own (claim, holds) checks.
    why_not : str
        Where failed claims are explained (README links the same sections).
    quality : callable, optional
        ``(out_dir, evaluation)`` -> (Markdown, checks): the modality's own table beyond the report
        (``report/<modality>_quality.md|json``).
    data_consistency : tuple of str
        Methods whose outputs are pulled back onto the acquired data (the plugin's refiner).
    methods : tuple
        The (method, variant, label) outputs trained and reported (default :data:`METHODS`).
    max_minutes : float, optional
        The demo's wall-time target; checked (with CPU time and load) when set.
    keep_means : tuple of (method, label)
        Quantitative outputs: the method's output with x_est's local means kept in structures of
        ``data.keep_means_mm`` and larger (:mod:`tomoconsensus.local_means`); ``{diameter}`` in the
        label is filled in.
    """

    data: type
    protocol: Path
    prepare: Callable[..., tuple[Path, Path, Path]]
    baseline: str
    error: str
    claims: Callable[[dict, str, str], list[Check]]
    why_not: str
    quality: Callable[[Path, Any], tuple[str, list[Check]]] | None = None
    data_consistency: tuple[str, ...] = ()
    methods: tuple[tuple[str, str | None, str], ...] = METHODS
    max_minutes: float | None = None
    keep_means: tuple[tuple[str, str], ...] = ()
