"""``tomoconsensus demo counting``: the toy modality's demo, run by the study runner (:mod:`tomoconsensus.study`).

Activity images: the Shepp-Logan phantom (scikit-image) scaled to events per second, shifted
sideways by a few pixels per slice so that no two slices are the same object; counts N ~ Poisson(t
lambda) per pixel, prepared by the plugin's own modality (binomial thinning, 2 N_half / t per half,
x_est = N / t) with the activity as reference. Train, validation and test slices belong to different
"patients" (the trainer's patient check). The protocol is ``demo.toml`` beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoconsensus.study.spec import DemoSpec
from tomoconsensus.study.story import ratio_claim
from toy_counting.modality import UNIT_SCALE, CountingModality


@dataclass(frozen=True)
class CountingDemoData:
    """What the counting demo simulates (values: demo.toml).

    Attributes
    ----------
    image_size : int
        Pixels per side.
    peak_activity_per_s, background_activity_per_s : float
        The phantom's brightest value and the constant added everywhere, events per second.
    scan_time_s : float
        Scan time t (s): expected counts t * lambda per pixel.
    train_slices, val_slices, test_slices : int
        Slices per split (each split its own patients).
    shift_px : int
        Sideways shift of the phantom from one slice to the next, pixels.
    """

    image_size: int
    peak_activity_per_s: float
    background_activity_per_s: float
    scan_time_s: float
    train_slices: int
    val_slices: int
    test_slices: int
    shift_px: int

    def activity(self, index: int) -> np.ndarray:
        """The activity (image_size, image_size) of slice ``index``, events per second."""
        from skimage.data import shepp_logan_phantom
        from skimage.transform import resize

        base = resize(shepp_logan_phantom(), (self.image_size, self.image_size), anti_aliasing=True)
        return self.peak_activity_per_s * np.roll(base, self.shift_px * index, axis=1) + self.background_activity_per_s

    def describe(self, protocol) -> str:
        t = protocol.training
        return (f"reduced protocol: Poisson counts of a Shepp-Logan activity ({self.image_size}^2, peak "
                f"{self.peak_activity_per_s:g} events/s, scan {self.scan_time_s:g} s), binomial thinning, "
                f"{self.train_slices} training slices, {t.describe()}")


def prepare_counting_demo(out_dir: Path, protocol, seed: int = 0, progress: bool = True,
                          device: str = "cpu") -> tuple[Path, Path, Path]:
    """Prepared train, validation and test files (``counting_<split>.h5``) of simulated counts."""
    from tomoconsensus.data.prepared import write_prepared
    from tomoconsensus.modality import Slice

    data: CountingDemoData = protocol.data
    modality, paths, index = CountingModality(data.scan_time_s), [], 0
    for offset, (name, n) in enumerate((("train", data.train_slices), ("val", data.val_slices),
                                        ("test", data.test_slices))):
        rng = np.random.default_rng([seed, offset])
        slices = []
        for i in range(n):
            activity = data.activity(index + i)
            counts = rng.poisson(data.scan_time_s * activity)
            slices.append(Slice(f"{name}_{i}", f"{name}_p{i % 3}", counts,
                                (activity / UNIT_SCALE)[None].astype(np.float32)))
        index += n
        path = out_dir / f"counting_{name}.h5"
        print(write_prepared(path, modality, iter(slices), n, seed + offset, {"source": "simulated (demo)"},
                             progress=progress))
        paths.append(path)
    return paths[0], paths[1], paths[2]


DEMO = DemoSpec(CountingDemoData, Path(__file__).with_name("demo.toml"), prepare_counting_demo, "All counts",
                "rmse", ratio_claim("All counts"), "examples/toy_modality/walkthrough.py (a toy: no claim is measured)")
