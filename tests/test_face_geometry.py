"""Alignment geometry and the batched crop warp, checked against independent references (cv2, closed forms)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from latentsync_core.errors import FaceError
from latentsync_core.face import align_faces, crop_size, face_template
from latentsync_core.face.geometry import AffineTracker, fit_similarity, invert_affines
from latentsync_core.face.resample import lanczos_resize

import torch


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_crop_box_and_template_follow_the_official_numbers():
    assert crop_size(256) == (210, 280)
    assert crop_size(512) == (420, 560)
    np.testing.assert_allclose(face_template(256), [[47.6, 56.0], [162.4, 56.0], [105.0, 112.0]])


def test_fit_recovers_an_exact_similarity():
    template = face_template(256)
    truth = _similarity(1.3, 17.0, 400.0, 250.0)  # template -> frame
    points = _apply(truth, template)[None]
    matrices, bias, ok = fit_similarity(points, template)
    assert ok.all()
    np.testing.assert_allclose(_apply(matrices[0], points[0]), template, atol=1e-9)
    np.testing.assert_allclose(matrices[0], invert_affines(truth[None])[0], atol=1e-9)
    # The official bias compares the normalised noses without undoing the rotation.
    def normalised(p):
        centred = p - p.mean(axis=0)
        return centred / centred.std(ddof=1)

    np.testing.assert_allclose(bias[0], normalised(template)[2] - normalised(points[0])[2], atol=1e-12)
    upright = _apply(_similarity(1.3, 0.0, 400.0, 250.0), template)[None]
    np.testing.assert_allclose(fit_similarity(upright, template)[1], 0.0, atol=1e-12)


def test_fit_rejects_nan_and_coincident_points():
    template = face_template(256)
    points = np.stack([np.full((3, 2), np.nan), np.full((3, 2), 5.0), template])
    matrices, _, ok = fit_similarity(points, template)
    assert ok.tolist() == [False, False, True]
    assert np.isnan(matrices[:2]).all()


def test_bias_smoothing_blends_with_the_previous_frame():
    rng = np.random.default_rng(0)
    template = face_template(256)
    points = _apply(_similarity(0.8, 5.0, 300, 200), template)[None] + rng.normal(0, 3, (4, 3, 2))
    raw, bias, _ = fit_similarity(points, template)
    smoothed = AffineTracker(256, smooth=True)(points)
    expected, previous = [], None
    for b in bias:  # the official rule, written out: 0.8 * current + 0.2 * previous blended value
        previous = b if previous is None else 0.2 * previous + 0.8 * b
        expected.append(previous)
    np.testing.assert_allclose(smoothed[:, :, 2] - raw[:, :, 2], np.array(expected), atol=1e-3)
    np.testing.assert_allclose(AffineTracker(256, smooth=False)(points), raw, atol=1e-3)


@pytest.mark.parametrize("size_in,size_out", [(280, 256), (210, 256), (560, 512), (37, 64)])
def test_lanczos_matches_cv2(size_in, size_out):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (size_in, size_in + 3, 3), dtype=np.uint8)
    expected = cv2.resize(image, (size_out, size_out), interpolation=cv2.INTER_LANCZOS4)
    ours = lanczos_resize(torch.from_numpy(image).permute(2, 0, 1).float(), size_out, size_out)
    ours = ours.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    assert np.abs(ours.astype(int) - expected).max() <= 1


def _scene(height=360, width=300, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 6, width // 6, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _reference_crop(frame: np.ndarray, affine: np.ndarray, resolution: int) -> np.ndarray:
    w, h = crop_size(resolution)
    box = cv2.warpAffine(frame.astype(np.float32), affine.astype(np.float64), (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(127, 127, 127))
    return cv2.resize(box, (resolution, resolution), interpolation=cv2.INTER_LANCZOS4)


@pytest.mark.parametrize("resolution", [256, 512])
def test_align_matches_cv2_warp_and_resize(resolution):
    frames = np.stack([_scene(seed=s) for s in range(3)])
    base = np.array([[120.0, 150.0], [180.0, 152.0], [150.0, 190.0]])
    # Frame 2's face sits across the left edge: the crop reads the 127 fill there.
    points = np.stack([base, base + [7.3, -4.1], base - [130.0, 0.0]])
    crops, affines = align_faces(frames, points, resolution, smooth=False, device="cpu")
    assert crops.shape == (3, resolution, resolution, 3) and crops.dtype == np.uint8
    assert affines.shape == (3, 2, 3) and affines.dtype == np.float32
    for frame, crop, affine in zip(frames, crops, affines):
        reference = _reference_crop(frame, affine, resolution)
        assert np.abs(crop - reference).mean() < 0.35  # cv2 samples on a 1/32 px grid; we do not
    assert (crops[2][:, :8] == 127).all()  # left of the frame edge


def test_align_flags_frames_without_points():
    frames = np.stack([_scene(seed=s) for s in range(3)])
    points = np.array([[[120.0, 150.0], [180.0, 152.0], [150.0, 190.0]]] * 3)
    points[1] = np.nan
    crops, affines = align_faces(frames, points, 256, device="cpu")
    assert np.isnan(affines[1]).all() and np.isfinite(affines[[0, 2]]).all()
    assert (crops[1] == 127).all()


def test_align_accepts_gray_rgba_float_and_odd_sizes():
    frame = _scene(height=271, width=199)
    points = np.array([[[70.0, 110.0], [130.0, 112.0], [100.0, 150.0]]])
    rgb, affines = align_faces(frame[None], points, 256, device="cpu")
    rgba = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 9, np.uint8)], axis=-1)[None]
    np.testing.assert_array_equal(align_faces(rgba, points, 256, device="cpu")[0], rgb)
    np.testing.assert_array_equal(align_faces(frame[None] / 255.0, points, 256, device="cpu")[0], rgb)
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[None]
    crops_gray, _ = align_faces(gray, points, 256, device="cpu")
    assert crops_gray.shape == (1, 256, 256, 3)
    assert (crops_gray[..., 0] == crops_gray[..., 2]).all()
    with pytest.raises(FaceError, match="batch shaped"):
        align_faces(frame[None, None], points, 256)


def test_cpu_and_torch_warp_paths_agree():
    from latentsync_core.face.align import _warp_crops_cpu, _warp_crops_torch
    from latentsync_core.face.geometry import AffineTracker

    frames = np.stack([_scene(seed=s) for s in range(2)])
    points = np.array([[[120.0, 150.0], [180.0, 152.0], [150.0, 190.0]],
                       [[20.0, 40.0], [90.0, 60.0], [50.0, 100.0]]])
    affines = AffineTracker(512, smooth=False)(points)
    fast = _warp_crops_cpu(frames, affines, 512)
    exact = _warp_crops_torch(frames, affines, 512, torch.device("cpu"))
    assert fast.shape == exact.shape == (2, 3, 512, 512)
    assert (fast - exact).abs().mean() < 0.3 and (fast - exact).abs().max() < 8
