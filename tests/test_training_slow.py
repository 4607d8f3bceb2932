"""A real training run on real numbers (marked slow: about 2-3 minutes on 2 CPU cores)."""

import numpy as np
import pytest

from tomoconsensus.ct.io import read_images
from tomoconsensus.ct.modality import CTModality
from tomoconsensus.ct.sources import simulated_slices
from tomoconsensus.data.denoised import read_denoised
from tomoconsensus.data.prepared import read_prepared, write_prepared
from tomoconsensus.denoising import denoise
from tomoconsensus.learn.config import TrainConfig
from tomoconsensus.learn.loop import train
from tomoconsensus.study.anatomy import COVID, COVID_TEST_PATIENTS, COVID_VAL_PATIENTS, subset
from tomoconsensus.tomo.presentation import hu_metrics


@pytest.mark.slow
@pytest.mark.parametrize("method,bound", [("consensus", 0.95), ("noise2noise", 0.8)])
def test_training_beats_fbp_on_held_out_patients(tmp_path, demo_geometry, method, bound):
    """Measured RMSE / FBP RMSE on the 4 test slices: consensus 0.90, Noise2Noise about 0.70.

    Consensus gains less here because 6 training slices let its two networks fit the training noise
    (docs/method.md, "Small training sets"); model selection on the validation patient limits it.
    """
    stack = read_images(COVID)
    ct = CTModality(demo_geometry)
    files = {}
    for name, keep, seed in (("train", lambda p: p not in COVID_TEST_PATIENTS + COVID_VAL_PATIENTS, 0),
                             ("val", lambda p: p in COVID_VAL_PATIENTS, 1),
                             ("test", lambda p: p in COVID_TEST_PATIENTS, 2)):
        sub = subset(stack, keep)
        files[name] = tmp_path / f"{name}.h5"
        write_prepared(files[name], ct, simulated_slices(sub, demo_geometry, 0.25, seed), len(sub.hu), seed,
                       progress=False)
    config = TrainConfig(method=method, base_features=16, depth=3, patch_size=64, batch_size=16,
                         learning_rate=3e-4, epochs=8, device="cpu")
    train(config, files["train"], tmp_path / "run", files["val"], progress=False)
    denoise(tmp_path / "run", files["test"], tmp_path / "out.h5", device="cpu", progress=False)
    test = read_prepared(files["test"])
    denoised = read_denoised(tmp_path / "out.h5")[0]
    rmse = lambda images: np.mean([hu_metrics(1000 * a[0], 1000 * r[0])["rmse_hu"]  # noqa: E731
                                   for a, r in zip(images, test.reference, strict=True)])
    assert rmse(denoised) < bound * rmse(test.x_est)
