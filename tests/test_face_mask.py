"""The procedural mouth mask: official proportions at any resolution, shape options, feathering."""
from __future__ import annotations

import numpy as np
import pytest

from latentsync_core.errors import FaceError
from latentsync_core.face import mouth_mask


@pytest.mark.parametrize("resolution", [256, 512, 333])
def test_bowl_has_the_official_extent_and_area(resolution):
    m = mouth_mask(resolution).numpy()
    assert m.shape == (resolution, resolution) and m.dtype == np.float32
    hard = m > 0.5
    assert abs(hard.mean() - 0.407) < 0.005  # the official mask regenerates 40.7 % of the crop
    rows, cols = np.nonzero(hard)
    s = resolution / 256
    assert abs(rows.min() - 95 * s) <= 1.5 and abs(rows.max() - 242 * s) <= 1.5
    assert abs(cols.min() - 9 * s) <= 1.5 and abs(cols.max() - 247 * s) <= 1.5


def test_bowl_keeps_the_nose_and_eyes():
    m = mouth_mask(256).numpy() > 0.5
    assert not m[:95].any()  # eyes and above are kept
    assert not m[100:127, 80:176].any()  # the nose notch
    assert m[100:127, 10:76].all() and m[100:127, 180:245].all()  # cheeks beside the nose
    assert m[130:200, 40:216].all()  # mouth and chin


def test_jaw_starts_below_the_nose():
    bowl, jaw = mouth_mask(256).numpy() > 0.5, mouth_mask(256, "jaw").numpy() > 0.5
    assert not jaw[:128].any() and (jaw <= bowl).all()
    np.testing.assert_array_equal(jaw[128:], bowl[128:])


def test_feather_softens_only_the_edge():
    hard, soft = mouth_mask(256).numpy(), mouth_mask(256, feather=8).numpy()
    assert soft.min() >= 0 and soft.max() <= 1
    assert ((soft > 0.02) & (soft < 0.98)).sum() > 10 * ((hard > 0.02) & (hard < 0.98)).sum()
    assert soft[170, 128] > 0.99 and soft[30, 128] < 0.01
    assert abs(soft.mean() - hard.mean()) < 0.01


def test_bad_mask_arguments():
    with pytest.raises(FaceError, match="shape"):
        mouth_mask(256, "oval")
    with pytest.raises(FaceError, match="feather"):
        mouth_mask(256, feather=-1)
