"""The seamless paste-back: frame pixels outside the warped mouth mask are untouched, the mouth
interior is the official paste of the generated face, and the seam is weaker than crop_box's when
the generated face has a colour/brightness offset."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from latentsync_core.errors import FaceError
from latentsync_core.face import align_faces, mouth_mask, restore_faces
from latentsync_core.face.blend import blend_weights, frame_weight

R = 128


def _scene(height, width, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 200, (height // 16, width // 16, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), (0, 0), 3)


def _offset_faces(crops, mouth, interior):
    """Generated faces = the crops with a colour/brightness offset inside the mouth area (outside it the
    official decoder copies the original pixels back), and new content (stripes) in the mouth interior."""
    faces = crops.astype(np.float32)
    shifted = faces * 1.1 + np.array([18.0, 4.0, -12.0])
    texture = 25 * np.sin(np.arange(R)[None, :, None] / 3.0) * interior[None, :, :, None]
    inside = mouth[None, :, :, None]
    faces = np.clip(faces * (1 - inside) + (shifted + texture) * inside, 0, 255)
    return torch.from_numpy(faces).permute(0, 3, 1, 2) / 127.5 - 1


@pytest.fixture(scope="module")
def case():
    frames = np.stack([_scene(240, 320, seed) for seed in range(2)])
    points = np.array([[[115, 90], [205, 90], [160, 142]], [[110, 88], [203, 96], [155, 145]]], np.float32)
    crops, affines = align_faces(frames, points, R, False)
    mouth = mouth_mask(R).numpy()
    interior = (blend_weights(R)[1] <= 0).astype(np.float32) * mouth
    faces = _offset_faces(crops, mouth, interior)
    official = restore_faces(frames, faces, affines)
    seamless = restore_faces(frames, faces, affines, blend="seamless")
    return frames, faces, affines, official, seamless


def _seam_energy(image, reference, weight):
    """Mean squared gradient of (image - reference) over the transition band of a blend weight."""
    diff = image.astype(np.float32) - reference.astype(np.float32)
    gx, gy = cv2.Sobel(diff, cv2.CV_32F, 1, 0), cv2.Sobel(diff, cv2.CV_32F, 0, 1)
    band = (weight > 0.02) & (weight < 0.98)
    return float((gx ** 2 + gy ** 2).sum(-1)[band].mean())


def test_no_change_outside_the_mask(case):
    frames, _, affines, _, seamless = case
    m, _ = blend_weights(R)
    for i in range(len(frames)):
        outside = frame_weight(m, affines[i], frames.shape[1:3]) <= 0
        assert outside.mean() > 0.5
        np.testing.assert_array_equal(seamless[i][outside], frames[i][outside])
        assert (seamless[i] != frames[i]).any()


def test_mouth_interior_is_the_official_paste(case):
    frames, _, affines, official, seamless = case
    m, w = blend_weights(R)
    # Interior: full weight, no correction, and a margin for the resampling kernels of the paste.
    core = cv2.erode(((m >= 1) & (w <= 0)).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(np.float32)
    for i in range(len(frames)):
        interior = frame_weight(core, affines[i], frames.shape[1:3]) >= 1
        assert interior.sum() > 200
        np.testing.assert_array_equal(seamless[i][interior], official[i][interior])


def test_seam_is_weaker_than_crop_box(case):
    frames, _, affines, official, seamless = case
    m, _ = blend_weights(R)
    mouth_edge = mouth_mask(R).numpy()
    for i in range(len(frames)):
        # crop_box's visible seam is the hard mouth-mask edge of the generated face; ours is the feather band
        sharp = frame_weight(cv2.GaussianBlur(mouth_edge, (0, 0), 1.0), affines[i], frames.shape[1:3])
        soft = frame_weight(m, affines[i], frames.shape[1:3])
        ours = max(_seam_energy(seamless[i], frames[i], sharp), _seam_energy(seamless[i], frames[i], soft))
        theirs = _seam_energy(official[i], frames[i], sharp)
        assert ours < 0.25 * theirs


def test_unknown_blend_is_a_clear_error(case):
    frames, faces, affines, _, _ = case
    with pytest.raises(FaceError, match="blend must be one of"):
        restore_faces(frames, faces, affines, blend="poisson")


def test_frames_without_a_face_and_bad_shapes(case):
    frames, faces, affines, _, _ = case
    out = restore_faces(frames, faces, affines, np.array([True, False]), blend="seamless")
    np.testing.assert_array_equal(out[1], frames[1])
    assert (out[0] != frames[0]).any()
    with pytest.raises(FaceError, match="same N frames"):
        restore_faces(frames, faces[:1], affines, blend="seamless")
