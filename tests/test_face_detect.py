"""Detection and tracking: the bundled detector on a real photo animated over frames, several faces,
cuts, frames without a face, the real clips, and the optional insightface backend's errors."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from latentsync_core.errors import FaceError, ModelMissingError
from latentsync_core.face import FaceTracker, align_faces, detect_faces, get_detector, restore_faces
from latentsync_core.face.detect import insightface_backend
from latentsync_core.face.track import FaceChoice

FRAME_HW = (480, 400)


@pytest.fixture(scope="module")
def detector():
    return get_detector("bundled")


@pytest.fixture(scope="module")
def astronaut():
    """The photo scaled 1.5x (face ~130 px), cut around the face."""
    image = cv2.resize(data.astronaut(), None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(image[20:620, 100:560])


def _motion(i: int) -> np.ndarray:
    """Astronaut image -> frame transform for frame i: a drift plus a rotation of up to 12 degrees."""
    angle = 12.0 * np.sin(i / 4.0)
    centre = (230.0, 200.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    matrix[:, 2] += [-30 + 3.0 * i, 40 - 2.0 * i]
    return matrix


def _animate(astronaut, count: int) -> tuple[np.ndarray, list[np.ndarray]]:
    motions = [_motion(i) for i in range(count)]
    frames = np.stack([cv2.warpAffine(astronaut, m, FRAME_HW[::-1], flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REFLECT) for m in motions])
    return frames, motions


def _to_frame(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_points_follow_the_moving_photo(detector, astronaut):
    frames, motions = _animate(astronaut, 12)
    track = detect_faces(frames, detector)
    assert track.valid.all() and track.points.shape == (12, 3, 2)
    # Semantics: brows left/right of each other and above the nose, in the photo's own frame.
    still = FaceTracker(detector).process(astronaut[None]).points[0]
    assert still[0, 0] < still[2, 0] < still[1, 0] and still[2, 1] > still[:2, 1].max()
    for i in range(12):
        expected = _to_frame(motions[i], still)
        brow = np.linalg.norm(expected[1] - expected[0])
        assert np.abs(track.points[i] - expected).max() < 0.08 * brow, f"frame {i}"


def test_round_trip_on_the_animated_photo(detector, astronaut):
    frames, _ = _animate(astronaut, 4)
    track = detect_faces(frames, detector)
    crops, affines = align_faces(frames, track.points, 256, device="cpu")
    faces = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
    out = restore_faces(frames, faces, affines, device="cpu")
    ys, xs = np.mgrid[0:FRAME_HW[0], 0:FRAME_HW[1]]
    for i in range(len(frames)):
        cx = affines[i, 0, 0] * xs + affines[i, 0, 1] * ys + affines[i, 0, 2]
        cy = affines[i, 1, 0] * xs + affines[i, 1, 1] * ys + affines[i, 1, 2]
        box = ((cx > -1) & (cx < 210) & (cy > -1) & (cy < 280)).astype(np.uint8)
        inside = cv2.dilate(box, np.ones((3, 3), np.uint8)).astype(bool)  # + the blur's 1-px band
        error = np.abs(out[i].astype(int) - frames[i])
        assert error[inside].mean() <= 1.0
        assert (error[~inside] == 0).all()


def test_frames_without_a_face_are_flagged_and_counted(detector, astronaut, caplog):
    frames, _ = _animate(astronaut, 6)
    frames[2] = 90  # blank frame (also a cut)
    frames[3] = cv2.GaussianBlur(frames[3], (0, 0), 25)  # face blurred away
    with caplog.at_level(logging.INFO, logger="latentsync"):
        track = detect_faces(frames, detector)
    assert track.valid.tolist() == [True, True, False, False, True, True]
    assert np.isnan(track.points[2:4]).all() and track.missing == 2
    assert "found in 4 of 6 frames; 2 frames without a face" in caplog.text
    crops, affines = align_faces(frames, track.points, 256, device="cpu")
    faces = torch.zeros(6, 3, 256, 256)
    out = restore_faces(frames, faces, affines, track.valid, device="cpu")
    np.testing.assert_array_equal(out[2:4], frames[2:4])
    assert (out[[0, 1, 4, 5]] != frames[[0, 1, 4, 5]]).any()


def test_no_face_anywhere_is_a_clear_error(detector):
    frames = np.full((3, 120, 160, 3), 30, np.uint8)
    with pytest.raises(FaceError, match="no face found in any of the 3 frames"):
        detect_faces(frames, detector)


def test_face_below_the_minimum_size_is_not_detected(astronaut):
    small = cv2.resize(astronaut, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)  # face ~50 px
    assert FaceTracker(get_detector("bundled", min_face=80)).process(small[None]).valid.tolist() == [False]
    big = FaceTracker(get_detector("bundled", min_face=80)).process(astronaut[None])
    assert big.valid.tolist() == [True]


def test_several_faces_choice_is_kept_across_frames(detector, astronaut):
    small = cv2.resize(astronaut, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 900, 3), 60, np.uint8)
    canvas[:450, :345] = small  # left: the smaller face
    canvas[:, 360:820] = astronaut[:480]  # right: the larger face
    frames = np.stack([np.roll(canvas, shift, axis=1) for shift in range(0, 12, 3)])
    largest = detect_faces(frames, detector)
    leftmost = detect_faces(frames, detector, face_choice=0)
    near_left = detect_faces(frames, detector, face_choice=(0.1, 0.3))
    assert largest.valid.all() and leftmost.valid.all()
    assert (largest.points[:, 2, 0] > 450).all() and (leftmost.points[:, 2, 0] < 345).all()
    np.testing.assert_allclose(near_left.points, leftmost.points)
    assert not detect_faces(frames, detector, face_choice=1).points[:, 2, 0].min() < 450
    with pytest.raises(FaceError, match="face choice"):
        FaceChoice.parse("biggest")


def test_sudden_cut_switches_to_the_new_shot(detector, astronaut):
    frames_a, _ = _animate(astronaut, 3)
    shot_b = np.ascontiguousarray(np.flip(frames_a, axis=2))  # mirrored shot: face elsewhere
    shot_b[:, :, :] = np.roll(shot_b, 60, axis=1)
    frames = np.concatenate([frames_a, shot_b])
    tracker = FaceTracker(detector, every_k=10)  # no scheduled detection: only the cut can trigger one
    track = tracker.process(frames)
    truth = FaceTracker(detector).process(shot_b[:1])
    assert track.valid.all() and tracker.state.cuts == 1
    np.testing.assert_allclose(track.points[3], truth.points[0], atol=1.0)


def test_streaming_chunks_equal_one_pass(detector, astronaut):
    frames, _ = _animate(astronaut, 9)
    whole = detect_faces(frames, detector, every_k=3, smoothing=0.5)
    streamed = detect_faces(iter([frames[:2], frames[2], frames[3:7], frames[7], frames[8]]), detector,
                            every_k=3, smoothing=0.5)
    np.testing.assert_array_equal(whole.points, streamed.points)
    chunked = detect_faces(frames, detector, every_k=3, smoothing=0.5, chunk_size=4)
    np.testing.assert_array_equal(whole.points, chunked.points)


def test_smoothing_reduces_jitter(detector, astronaut):
    rng = np.random.default_rng(0)
    frames = np.stack([cv2.add(astronaut[:480, :400], rng.integers(0, 25, (480, 400, 3), dtype=np.uint8))
                       for _ in range(12)])  # a still photo with sensor noise
    raw = detect_faces(frames, detector).points
    smooth = detect_faces(frames, detector, smoothing=1.0).points
    spread = lambda p: np.abs(p - p.mean(axis=0)).mean()
    assert spread(smooth) < spread(raw)
    with pytest.raises(FaceError, match="smoothing"):
        detect_faces(frames, detector, smoothing=2.0)


def test_bad_detector_arguments():
    with pytest.raises(FaceError, match="unknown face detector"):
        get_detector("mtcnn")
    with pytest.raises(FaceError, match="every_k"):
        FaceTracker(get_detector("bundled"), every_k=0)


def test_insightface_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSYNC_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelMissingError, match="buffalo_l"):
        get_detector("insightface")
    error = insightface_backend.missing_pack_error()
    assert isinstance(error, ModelMissingError)
    text = str(error)
    assert str(tmp_path / "insightface" / "models" / "buffalo_l") in text and insightface_backend.PACK_URL in text
    assert insightface_backend.find_pack() is None
    pack = tmp_path / "insightface" / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    for name in insightface_backend.PACK_FILES:
        (pack / name).write_bytes(b"")
    assert insightface_backend.find_pack() == tmp_path / "insightface"


def test_official_box_filter():
    accept = insightface_backend.passes_official_filter
    assert accept(np.array([10, 10, 110, 140.0]), 0.9)
    assert not accept(np.array([10, 10, 110, 140.0]), 0.4)  # low score
    assert not accept(np.array([10, 10, 50, 140.0]), 0.9)  # narrower than 50
    assert not accept(np.array([10, 10, 110, 80.0]), 0.9)  # shorter than 80
    assert not accept(np.array([10, 10, 300, 100.0]), 0.9)  # w/h above 1.5


def test_real_clips_detection_rate(media_dir, detector):
    from latentsync_core.media.video import iter_video_frames

    demo1 = detect_faces((f for i, f in enumerate(iter_video_frames(media_dir / "demo1_video.mp4"))
                          if i % 5 == 0), detector)
    demo2 = detect_faces(iter_video_frames(media_dir / "demo2_video.mp4", start=200, max_frames=30,
                                           chunk_size=10), detector)
    for track in (demo1, demo2):
        assert track.valid.mean() >= 0.98
        brow = np.linalg.norm(track.points[:, 1] - track.points[:, 0], axis=-1)
        assert 60 < brow.mean() < 200 and brow.std() < 0.1 * brow.mean()
    assert len(demo1) == 50 and len(demo2) == 30


def test_insightface_without_tracking_picks_the_largest_face_on_every_frame():
    """Official: whole-frame detection and the largest face per frame, even when the two faces swap sizes."""
    left_big, right_small = [10, 10, 110, 140], [200, 10, 260, 100]
    left_small, right_big = [10, 10, 70, 100], [200, 10, 300, 140]
    per_frame = [[left_big, right_small], [left_small, right_big], [left_big, right_small], [left_small, right_big]]

    class FakeSCRFD:
        calls = 0

        def detect(self, frame):
            boxes = per_frame[FakeSCRFD.calls % len(per_frame)]
            FakeSCRFD.calls += 1
            return np.array([[*b, 0.9] for b in boxes], np.float32), None

    class FakeLandmarks:  # 106 points spread over the box, so the alignment points follow it
        grid = np.random.default_rng(0).uniform(0.2, 0.8, (106, 2))

        def get(self, frame, box):
            return box[:2] + self.grid * (box[2:] - box[:2])

    detector = insightface_backend.InsightFaceDetector.__new__(insightface_backend.InsightFaceDetector)
    detector._scrfd, detector._landmark, detector.tracking = FakeSCRFD(), FakeLandmarks(), False
    frames = np.zeros((4, 200, 320, 3), np.uint8)
    track = FaceTracker(detector).process(frames)
    assert track.valid.all()
    np.testing.assert_array_equal(track.boxes, np.array([left_big, right_big, left_big, right_big], np.float32))
    assert np.all(track.points == np.round(track.points))  # the official rounding
    # an explicit choice is also made afresh on every frame: the rightmost face throughout
    FakeSCRFD.calls = 0
    rightmost = FaceTracker(detector, face_choice=1).process(frames)
    np.testing.assert_array_equal(rightmost.boxes,
                                  np.array([right_small, right_big, right_small, right_big], np.float32))
