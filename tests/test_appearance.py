"""cfld.metrics.appearance: the garment colour difference (ΔE00 of mean CIELAB colours), on constructed
images where the answer is known, and on synthetic persons against their own ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfld.metrics.appearance import garment_delta_e, mean_garment_delta_e


def scene(upper, lower, background=(0.9, 0.9, 0.9), size=16):
    """One (H, W, 3) image: upper garment in rows 2-7, lower in rows 9-14, columns 4-11; and its masks."""
    image = np.empty((size, size, 3))
    image[:] = background
    image[2:8, 4:12], image[9:15, 4:12] = upper, lower
    masks = np.zeros((2, size, size), bool)
    masks[0, 2:8, 4:12], masks[1, 9:15, 4:12] = True, True
    return image, masks


def test_identical_garments_score_zero_and_white_against_black_scores_100():
    truth, masks = scene((0.8, 0.1, 0.1), (0.1, 0.2, 0.7))
    assert np.allclose(garment_delta_e(truth[None], truth[None], masks[None]), 0)
    # CIEDE2000 of L* 100 against L* 0 (a* = b* = 0): the lightness weight S_L is 1 at mean L* 50, so 100
    white, _ = scene((1, 1, 1), (1, 1, 1))
    black, _ = scene((0, 0, 0), (0, 0, 0))
    assert np.allclose(garment_delta_e(black[None], white[None], masks[None]), 100, atol=1e-3)


def test_only_the_garment_pixels_count():
    truth, masks = scene((0.8, 0.1, 0.1), (0.1, 0.2, 0.7))
    other = truth.copy()
    other[0, :], other[:, 15] = (0, 1, 0), (1, 0, 1)  # background and a column outside both garments changed
    assert np.allclose(garment_delta_e(other[None], truth[None], masks[None]), 0)
    other[3, 5] = (0, 1, 0)  # one pixel of the top
    scores = garment_delta_e(other[None], truth[None], masks[None])[0]
    assert scores[0] > 0.5 and scores[1] == 0


def test_a_different_garment_scores_far_above_a_slightly_different_shade():
    truth, masks = scene((0.8, 0.1, 0.1), (0.1, 0.2, 0.7))
    shade, _ = scene((0.78, 0.11, 0.1), (0.1, 0.21, 0.68))
    swapped, _ = scene((0.1, 0.2, 0.7), (0.8, 0.1, 0.1))
    close = mean_garment_delta_e(shade[None], truth[None], masks[None])
    far = mean_garment_delta_e(swapped[None], truth[None], masks[None])
    assert 0 < close < 2 and far > 30


def test_it_measures_colour_not_the_phase_of_a_pattern():
    truth, masks = scene((0.8, 0.1, 0.1), (0.1, 0.2, 0.7))
    truth[2:8:2, 4:12] = (1, 1, 0)  # yellow stripes on the top
    shifted = truth.copy()
    shifted[2:8, 4:12] = truth[[3, 2, 5, 4, 7, 6], 4:12]  # the stripes one row off, the same colours
    assert np.allclose(garment_delta_e(shifted[None], truth[None], masks[None]), 0)


def test_tensors_and_arrays_agree_and_hidden_garments_are_nan():
    a, masks = scene((0.8, 0.1, 0.1), (0.1, 0.2, 0.7))
    b, _ = scene((0.6, 0.3, 0.1), (0.2, 0.2, 0.5))
    masks2 = np.stack([masks, masks])
    masks2[1, 1] = False  # the second image's lower garment is hidden
    arrays = garment_delta_e(np.stack([a, b]), np.stack([b, a]), masks2)
    tensors = garment_delta_e(torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2),
                              torch.from_numpy(np.stack([b, a])).permute(0, 3, 1, 2), torch.from_numpy(masks2))
    assert np.allclose(arrays, tensors, equal_nan=True) and np.isnan(arrays[1, 1]) and np.isfinite(arrays[:, 0]).all()
    assert np.isclose(mean_garment_delta_e(np.stack([a, b]), np.stack([b, a]), masks2), np.nanmean(arrays))
    assert np.isnan(mean_garment_delta_e(a[None], b[None], np.zeros((1, 2, 16, 16), bool)))
    with pytest.raises(ValueError, match="shapes differ"):
        garment_delta_e(a[None], b[None], masks[None, :, :8])


def test_synthetic_persons_keep_their_colours_and_another_person_does_not():
    from cfld.data.synthetic import SyntheticPersons

    data = SyntheticPersons(8, (64, 64), (64, 64), (64, 64), seed=11, photo_size=(128, 88))
    truth = torch.stack([(data[i]["img_tgt"] + 1) / 2 for i in range(8)])
    other = torch.stack([(data.target_worn_by(i, (i + 1) % 8) + 1) / 2 for i in range(8)])
    masks = np.stack([data.garment_masks(i) for i in range(8)])
    assert mean_garment_delta_e(truth, truth, masks) == 0
    assert mean_garment_delta_e(other, truth, masks) > 10
