"""The TV baseline's weight chosen on the validation patient's reference (a fair baseline, issue 21).

A baseline may use the clean reference of the *validation* patient (never the test patients'): for
each weight ``lam`` of a log-spaced grid, every validation sinogram ``y_k`` is reconstructed with
:func:`~tomoconsensus.ct.tv_baseline.tv_reconstruct` and scored against its reference ``r_k`` (HU),

    RMSE(lam) = 1/K sum_k sqrt( mean_pixels (TV_lam(y_k) - r_k)^2 ),

and the weight with the lowest mean RMSE is kept. The whole table is returned so that the choice
can be recorded with the test file (attributes ``tv_lam_choice`` and ``tv_lam_grid``). The networks
never see a reference; this only makes the TV column a baseline tuned as well as it can be.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tomoconsensus.ct.noise import mu_to_hu
from tomoconsensus.ct.tv_baseline import tv_reconstruct
from tomoconsensus.errors import InputError
from tomoconsensus.tomo.curved import fbp_operator, forward_projector
from tomoconsensus.tomo.geometry import FanBeamGeometry
from tomoconsensus.tomo.tv import TVConfig, operator_norm

#: The default grid: 6 log-spaced weights 1e-4 .. 1e-2 (the demo's first choice, 3e-4, lies inside).
DEFAULT_GRID = tuple(float(v) for v in np.geomspace(1e-4, 1e-2, 6))


@dataclass(frozen=True)
class TVTuning:
    """The weight chosen and the table it was chosen from.

    Attributes
    ----------
    lam : float
        The grid weight with the lowest mean validation RMSE.
    grid : tuple of float
        The weights tried, ascending.
    rmse_hu : tuple of float
        Mean RMSE (HU) over the validation slices, one per weight.
    slices : int
        Validation slices scored.
    """

    lam: float
    grid: tuple[float, ...]
    rmse_hu: tuple[float, ...]
    slices: int

    def choice(self) -> str:
        """One line for the file attribute ``tv_lam_choice``."""
        return (f"validation patient reference RMSE, grid {self.grid[0]:.3g}..{self.grid[-1]:.3g} "
                f"({len(self.grid)} log-spaced), {self.slices} validation slices")

    def attributes(self) -> dict[str, str]:
        """File attributes: ``tv_lam_choice`` and ``tv_lam_grid`` (JSON list of {lam, rmse_hu})."""
        table = [{"lam": lam, "rmse_hu": rmse} for lam, rmse in zip(self.grid, self.rmse_hu, strict=True)]
        return {"tv_lam_choice": self.choice(), "tv_lam_grid": json.dumps(table)}

    def markdown(self) -> str:
        """The grid as a two-row table, the chosen weight marked."""
        cells = [f"**{lam:.3g}**" if lam == self.lam else f"{lam:.3g}" for lam in self.grid]
        return ("| TV lambda | " + " | ".join(cells) + " |\n|---|" + "---|" * len(self.grid) + "\n"
                "| validation RMSE (HU) | " + " | ".join(f"{r:.2f}" for r in self.rmse_hu) + " |\n")


def tune_tv_lambda(pairs: Iterable[tuple[np.ndarray, np.ndarray]], geom: FanBeamGeometry,
                   grid: Sequence[float] = DEFAULT_GRID, config: TVConfig | None = None) -> TVTuning:
    """The TV weight of ``grid`` with the lowest mean RMSE against the validation references.

    Parameters
    ----------
    pairs : iterable of (sinogram, reference)
        Validation slices: line integrals (views, channels) on ``geom`` and the clean reference (H, W)
        in HU on the geometry's grid.
    grid : sequence of float
        Weights to try (positive; sorted here).
    config : TVConfig, optional
        Iterations and power iterations (default :class:`TVConfig`); ``lam`` is replaced by each grid value.

    Returns
    -------
    TVTuning
        The chosen weight (ties: the smaller) and the mean RMSE of every weight.
    """
    grid = tuple(sorted(float(v) for v in grid))
    if not grid or grid[0] <= 0:
        raise InputError("--tv-lam-grid", "grid", "one or more positive TV weights", grid)
    config = config or TVConfig()
    fbp = fbp_operator(geom)
    mu_w = geom.protocol.mu_water_per_mm
    with forward_projector(geom) as proj:  # ||A|| once for every slice and weight
        a_norm = operator_norm(proj, config.power_iterations)
    errors = []  # (slices, weights)
    for sinogram, reference in pairs:
        x0 = fbp(sinogram).numpy()  # one FBP start for every weight
        row = []
        for lam in grid:
            mu = tv_reconstruct(sinogram, geom, dataclasses.replace(config, lam=lam), x0, a_norm)
            row.append(float(np.sqrt(np.mean((mu_to_hu(mu, mu_w) - reference) ** 2))))
        errors.append(row)
    if not errors:
        raise InputError("--tv-val", "slices", "at least one validation slice with a reference", 0)
    mean = np.mean(errors, axis=0)
    return TVTuning(grid[int(np.argmin(mean))], grid, tuple(float(v) for v in mean), len(errors))
