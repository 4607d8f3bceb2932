"""PET metrics on phantoms whose values are known by construction."""

import numpy as np
import pytest

from tomoconsensus.pet.metrics import (
    background_cov,
    background_variability,
    contrast_recovery,
    disc_masks,
    lesion_suv_bias,
    place_background_rois,
    suv_mean_max,
)

SHAPE = (96, 96)
LESION = disc_masks(SHAPE, [(48, 48)], 5)[0]
BACKGROUND_CENTRES = [(20, 20), (20, 76), (76, 20), (76, 76)]
BACKGROUNDS = disc_masks(SHAPE, BACKGROUND_CENTRES, 5)


def phantom(lesion_value=4.0, background=1.0):
    image = np.full(SHAPE, background)
    image[LESION] = lesion_value
    return image


def test_suv_mean_max_and_bias():
    ref = phantom()
    img = phantom(3.0)
    img[48, 48] = 5.0
    mean, peak = suv_mean_max(img, LESION)
    assert peak == 5.0 and mean == pytest.approx(3.0 + 2.0 / LESION.sum())
    bias = lesion_suv_bias(img, ref, LESION)
    assert bias["suv_max_bias"] == pytest.approx(0.25) and bias["suv_mean_bias"] == pytest.approx(mean / 4 - 1)


def test_contrast_recovery_is_one_for_exact_and_half_for_half_contrast():
    assert contrast_recovery(phantom(4.0), LESION, BACKGROUNDS, 4.0) == pytest.approx(1.0)
    assert contrast_recovery(phantom(2.5), LESION, BACKGROUNDS, 4.0) == pytest.approx(0.5)
    # a uniformly scaled image recovers the same contrast (unit-free)
    assert contrast_recovery(3 * phantom(2.5), LESION, BACKGROUNDS, 4.0) == pytest.approx(0.5)


def test_background_variability_and_cov_known_values():
    image = phantom()
    for mask, value in zip(BACKGROUNDS, (0.9, 1.1, 0.9, 1.1), strict=True):
        image[mask] = value
    # ROI means 0.9, 1.1, 0.9, 1.1: sample SD sqrt(4 * 0.01 / 3), mean 1
    assert background_variability(image, BACKGROUNDS) == pytest.approx(np.sqrt(0.04 / 3))
    checker = np.where((np.indices(SHAPE).sum(0) % 2) == 0, 0.8, 1.2)  # mean 1, std 0.2
    region = np.zeros(SHAPE, bool)
    region[10:30, 40:60] = True
    assert background_cov(checker, region) == pytest.approx(0.2)
    assert background_variability(phantom(), BACKGROUNDS) == 0.0


def test_background_rois_lie_inside_and_do_not_overlap():
    background = ~disc_masks(SHAPE, [(48, 48)], 12)[0]
    rois = place_background_rois(background, 5, 6, np.random.default_rng(0))
    assert len(rois) == 6
    assert all(np.all(background[r]) for r in rois)
    assert np.sum(rois, axis=0).max() == 1
