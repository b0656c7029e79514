"""Paste-back: region-only batches equal whole-frame computation, identity round trips, untouched frames."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from latentsync_core.errors import FaceError
from latentsync_core.face import align_faces, crop_size, restore_faces


def _scene(height, width, seed=0, detail=8):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(height // detail, 2), max(width // detail, 2), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _points(cx, cy, size, angle=0.0):
    base = np.array([[-0.3, -0.25], [0.3, -0.25], [0.0, 0.12]]) * size
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return base @ rot.T + [cx, cy]


def _faces_from(crops):
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1


def _inside_box(affine, shape, resolution):
    """Pixels the paste-back may touch: the warped crop box, where bilinear weights are > 0 (crop
    coordinates in (-1, size)), plus the one-pixel band the official blur reaches past it (2w-erosion then (2w+1)-blur)."""
    w, h = crop_size(resolution)
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    cx = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2]
    cy = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2]
    support = ((cx > -1) & (cx < w) & (cy > -1) & (cy < h)).astype(np.uint8)
    return cv2.dilate(support, np.ones((3, 3), np.uint8)).astype(bool)


@pytest.fixture(scope="module")
def batch():
    """Five frames: faces of several sizes and angles, one across the top-left corner, one absent."""
    frames = np.stack([_scene(241, 317, seed=s, detail=16) for s in range(5)])
    points = np.stack([_points(160, 120, 90), _points(150, 130, 60, 12.0), _points(10, 8, 110, -8.0),
                       np.full((3, 2), np.nan), _points(200, 150, 140, 25.0)])
    crops, affines = align_faces(frames, points, 256, device="cpu")
    rng = np.random.default_rng(3)
    generated = torch.from_numpy(rng.uniform(-1, 1, (5, 3, 256, 256)).astype(np.float32))
    return frames, points, crops, affines, generated


def test_batched_region_restore_equals_full_frame_restore(batch):
    frames, _, _, affines, generated = batch
    region = restore_faces(frames, generated, affines, device="cpu")
    full = restore_faces(frames, generated, affines, device="cpu", region="full")
    np.testing.assert_array_equal(region, full)
    assert (region != frames).any(axis=(1, 2, 3)).tolist() == [True, True, True, False, True]


def test_frames_without_a_face_come_back_bit_identical(batch):
    frames, _, _, affines, generated = batch
    valid = np.array([True, False, True, True, True])
    out = restore_faces(frames, generated, affines, valid, device="cpu")
    np.testing.assert_array_equal(out[[1, 3]], frames[[1, 3]])  # flagged, and NaN affine
    assert out is not frames and (frames == batch[0]).all()


def test_identity_generator_round_trip(batch):
    frames, _, crops, affines, _ = batch
    out = restore_faces(frames, _faces_from(crops), affines, device="cpu")
    for i in (0, 1, 2, 4):
        inside = _inside_box(affines[i], frames.shape[1:3], 256)
        error = np.abs(out[i].astype(int) - frames[i])
        assert error[inside].mean() <= 1.0
        assert (error[~inside] == 0).all()  # exactly the frame outside the crop box


def test_generated_face_lands_where_the_crop_came_from():
    frame = np.full((300, 260, 3), 40, np.uint8)
    points = _points(130, 150, 100, 10.0)[None]
    _, affines = align_faces(frame[None], points, 256, device="cpu")
    white = torch.ones(1, 3, 256, 256)
    out = restore_faces(frame[None], white, affines, device="cpu")[0]
    inside = _inside_box(affines[0], frame.shape[:2], 256)
    w, h = crop_size(256)
    # The soft mask is 1 well inside the box: check a core shrunk by a fifth of the box.
    ys, xs = np.mgrid[0:300, 0:260]
    cx = affines[0, 0, 0] * xs + affines[0, 0, 1] * ys + affines[0, 0, 2]
    cy = affines[0, 1, 0] * xs + affines[0, 1, 1] * ys + affines[0, 1, 2]
    core = (cx > w / 5) & (cx < w * 4 / 5) & (cy > h / 5) & (cy < h * 4 / 5)
    assert (out[core] == 255).all()
    assert (out[~inside] == 40).all()


def test_real_clip_round_trip(media_dir):
    from latentsync_core.face import detect_faces
    from latentsync_core.media.video import read_video

    frames, _ = read_video(media_dir / "demo1_video.mp4", max_frames=3)
    track = detect_faces(frames)
    for resolution in (256, 512):
        crops, affines = align_faces(frames, track.points, resolution, device="cpu")
        out = restore_faces(frames, _faces_from(crops), affines, device="cpu")
        for i in range(len(frames)):
            inside = _inside_box(affines[i], frames.shape[1:3], resolution)
            error = np.abs(out[i].astype(int) - frames[i])
            assert error[inside].mean() <= 1.0
            assert (error[~inside] == 0).all()


def test_4k_frame_restores_only_the_face_region():
    frame = _scene(2160, 3840, detail=64)
    points = _points(1900, 1000, 700, 5.0)[None]
    crops, affines = align_faces(frame[None], points, 256, device="cpu")
    out = restore_faces(frame[None], _faces_from(crops), affines, device="cpu")
    inside = _inside_box(affines[0], frame.shape[:2], 256)
    assert (out[0][~inside] == frame[~inside]).all()
    assert np.abs(out[0][inside].astype(int) - frame[inside]).mean() <= 1.0


def test_restore_rejects_mismatched_inputs(batch):
    frames, _, _, affines, generated = batch
    with pytest.raises(FaceError, match="same N frames"):
        restore_faces(frames[:3], generated, affines)
    with pytest.raises(FaceError, match=r"\[N, 3, R, R\]"):
        restore_faces(frames, generated[:, :, :100], affines)


def test_restore_accepts_grayscale_frames(batch):
    frames, _, _, affines, generated = batch
    gray = frames[..., 0]
    out = restore_faces(gray, generated, affines, device="cpu")
    assert out.shape == frames.shape
    np.testing.assert_array_equal(out[3], np.repeat(gray[3, ..., None], 3, axis=-1))
