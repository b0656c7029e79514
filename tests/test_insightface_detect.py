"""The insightface (buffalo_l) backend on onnxruntime: SCRFD decoding and the landmark crop against
independent re-statements of insightface's formulas, the official point rounding, and the whole
detector on ONNX fixtures with the real signatures (``auto`` choosing it, dlib otherwise)."""
from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import pytest

from latentsync_core.face.detect import get_detector, resolve_detector, scrfd
from latentsync_core.face.detect.landmark106 import crop_transform, decode_landmarks
from latentsync_core.face.points import official_points_106



def _onnx_packages():
    """The end-to-end tests need onnxruntime (runtime, optional) and onnx (writes the fixtures; test-only)."""
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


# ----------------------------------------------------------------- (a) SCRFD decoding
def _reference_decode(outputs, size, scale, threshold, nms_iou):
    """insightface's SCRFD post-processing re-stated with explicit loops over cells and anchors."""
    cands = []
    for level, stride in enumerate((8, 16, 32)):
        scores, dists, kdists = (np.asarray(outputs[level + 3 * k]) for k in range(3))
        cells = size // stride
        row = 0
        for cy in range(cells):
            for cx in range(cells):
                for _anchor in range(2):
                    score = float(scores[row, 0])
                    if score >= threshold:
                        x, y = cx * stride, cy * stride
                        d = dists[row].astype(np.float64) * stride
                        box = [x - d[0], y - d[1], x + d[2], y + d[3]]
                        k = kdists[row].astype(np.float64) * stride
                        pts = [[x + k[2 * j], y + k[2 * j + 1]] for j in range(5)]
                        cands.append((score, np.array(box) / scale, np.array(pts) / scale))
                    row += 1
    cands.sort(key=lambda c: -c[0])
    kept = []
    for score, box, pts in cands:
        ok = True
        for _, kbox, _ in kept:
            iw = max(0.0, min(box[2], kbox[2]) - max(box[0], kbox[0]) + 1)
            ih = max(0.0, min(box[3], kbox[3]) - max(box[1], kbox[1]) + 1)
            inter = iw * ih
            union = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) + (kbox[2] - kbox[0] + 1) * (kbox[3] - kbox[1] + 1) - inter
            if inter / union > nms_iou:
                ok = False
                break
        if ok:
            kept.append((score, box, pts))
    return kept


def _raw_outputs(rng, size):
    outs = []
    for kind, width in enumerate((1, 4, 10)):
        for stride in (8, 16, 32):
            n = (size // stride) ** 2 * 2
            if kind == 0:
                outs.append((rng.random((n, 1)) ** 6).astype(np.float32))  # a few dozen above 0.5
            elif kind == 1:
                outs.append((rng.random((n, 4)) * 6 + 0.5).astype(np.float32))
            else:
                outs.append((rng.standard_normal((n, 10)) * 2).astype(np.float32))
    return outs


def test_scrfd_decoding_matches_the_reference_formulas():
    rng = np.random.default_rng(3)
    size, scale = 256, 0.4
    outputs = _raw_outputs(rng, size)
    dets, kps = scrfd.decode_outputs(outputs, (size, size), scale, threshold=0.5)
    ref = _reference_decode(outputs, size, scale, 0.5, 0.4)
    assert 5 < len(ref) == len(dets)
    for (score, box, pts), det, kp in zip(ref, dets, kps):
        assert det[4] == pytest.approx(score)
        np.testing.assert_allclose(det[:4], box, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(kp, pts, rtol=1e-5, atol=1e-3)
    # A batch axis on the outputs ([1, K, C], as some exports have) decodes the same.
    dets3, _ = scrfd.decode_outputs([o[None] for o in outputs], (size, size), scale, threshold=0.5)
    np.testing.assert_array_equal(dets3, dets)


def test_scrfd_letterbox_and_blob():
    frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    box = scrfd.letterbox(frame, (512, 512))
    assert box.scale == pytest.approx(288 / 720)  # width fills 512, height int(512 * 720 / 1280) = 288
    assert box.image[288:].max() == 0 and box.image[:288].any()
    tall = scrfd.letterbox(frame.transpose(1, 0, 2).copy(), (512, 512))
    assert tall.scale == pytest.approx(512 / 1280) and tall.image[:, 288:].max() == 0
    blob = scrfd.to_blob(box.image, 127.5, 128.0)
    assert blob.shape == (1, 3, 512, 512) and blob.dtype == np.float32
    # Channel 0 of the blob is the image's last channel: insightface's swapRB.
    np.testing.assert_allclose(blob[0, 0], (box.image[:, :, 2].astype(np.float64) - 127.5) / 128.0, atol=1e-6)


# ----------------------------------------------------------------- (b) landmarks and the three points
def test_landmark_crop_transform_and_denormalisation():
    box = np.array([100.0, 50.0, 260.0, 250.0])  # w 160, h 200 -> scale 192 / 300
    matrix = crop_transform(box)
    s = 192 / 300
    np.testing.assert_allclose(matrix, [[s, 0, 96 - 180 * s], [0, s, 96 - 150 * s]])
    raw = np.zeros(212, np.float32)  # all points at the crop centre (0 -> 96 px) map to the box centre
    raw[0:2] = (-1.0, 1.0)           # point 0 at crop (0, 192)
    out = decode_landmarks(raw[None], matrix)
    np.testing.assert_allclose(out[1], (180, 150), atol=1e-4)
    np.testing.assert_allclose(out[0], (180 - 96 / s, 150 + 96 / s), atol=1e-3)


def _reference_points(landmarks):
    """The official two roundings, re-stated with Python's round (halves to even, like np.round)."""
    ints = [[round(float(x)), round(float(y))] for x, y in landmarks]
    groups = ([43, 48, 49, 51, 50], [101, 102, 103, 104, 105], [74, 77, 83, 86])
    return np.array([[round(sum(Fraction(ints[i][c]) for i in g) / len(g)) for c in (0, 1)] for g in groups],
                    dtype=np.float32)


def test_official_points_and_rounding():
    rng = np.random.default_rng(7)
    lmk = rng.uniform(100, 400, (106, 2))
    # Ties that the two roundings must break half-to-even: x.5 landmarks and a nose mean of x.5.
    lmk[74], lmk[77], lmk[83], lmk[86] = (200.5, 300.5), (201.5, 301.0), (203.0, 302.0), (204.0, 303.0)
    lmk[43] = (150.5, 99.5)
    got = official_points_106(lmk)
    np.testing.assert_array_equal(got, _reference_points(lmk))
    # Nose x: rounded landmarks 200, 202, 203, 204 -> mean 202.25 -> 202; y: 300, 301, 302, 303 -> 301.5 -> 302.
    np.testing.assert_array_equal(got[2], (202, 302))
    assert not np.allclose(got, np.round(lmk[[43, 48, 49, 51, 50]].mean(0)))  # sanity: not a trivial match
    with pytest.raises(ValueError, match="106"):
        official_points_106(lmk[:68])


# ----------------------------------------------------------------- (c) end to end on ONNX fixtures
@pytest.fixture(scope="module")
def pack_root(tmp_path_factory):
    _onnx_packages()
    from latentsync_core.fixtures.insightface_onnx import write_buffalo_l

    root = tmp_path_factory.mktemp("insightface_models")
    write_buffalo_l(root, seed=1)
    return root


def test_fixture_files_have_the_real_signatures(pack_root):
    ort = _onnx_packages()
    folder = pack_root / "insightface" / "models" / "buffalo_l"
    det = ort.InferenceSession(str(folder / "det_10g.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[:2]) for i in det.get_inputs()] == [("input.1", [1, 3])]
    assert [o.name for o in det.get_outputs()] == ["448", "471", "494", "451", "474", "497", "454", "477", "500"]
    assert all(isinstance(d, str) for d in det.get_inputs()[0].shape[2:])  # dynamic H, W like det_10g
    outs = det.run(None, {"input.1": np.zeros((1, 3, 512, 512), np.float32)})  # the official det_size
    assert [outs[0].shape, outs[4].shape, outs[8].shape] == [(8192, 1), (2048, 4), (512, 10)]
    lmk = ort.InferenceSession(str(folder / "2d106det.onnx"), providers=["CPUExecutionProvider"])
    assert lmk.get_inputs()[0].shape[1:] == [3, 192, 192]
    assert lmk.run(None, {lmk.get_inputs()[0].name: np.zeros((1, 3, 192, 192), np.float32)})[0].shape == (1, 212)


def test_auto_picks_insightface_when_the_pack_is_present(pack_root, tmp_path, monkeypatch, caplog):
    from latentsync_core.fixtures.insightface_onnx import DEFAULT_FACES

    monkeypatch.setenv("LATENTSYNC_MODELS_DIR", str(pack_root))
    with caplog.at_level(logging.INFO, logger="latentsync"):
        detector = get_detector("auto", device="cpu")
    assert detector.name == "insightface" and resolve_detector("auto") == "insightface"
    assert "insightface buffalo_l" in caplog.text and "official" in caplog.text
    frame = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    (found,) = detector.detect(frame)
    np.testing.assert_allclose(found.box, DEFAULT_FACES[0][:4], atol=0.5)
    points = detector.points(detector.landmarks(frame, found.box))
    assert np.array_equal(points, np.round(points))  # official rounding applied
    assert points[0, 0] < points[2, 0] < points[1, 0] and points[2, 1] > points[:2, 1].max()

    monkeypatch.setenv("LATENTSYNC_MODELS_DIR", str(tmp_path))  # no pack -> the bundled fallback says so
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="latentsync"):
        fallback = get_detector("auto")
    assert fallback.name == "bundled"
    assert "bundled dlib detector runs" in caplog.text and "approximate" in caplog.text


def test_face_crop_on_a_real_clip_frame(pack_root, media_dir, monkeypatch):
    from latentsync_core.face import align_faces, detect_faces
    from latentsync_core.media.video import iter_video_frames

    monkeypatch.setenv("LATENTSYNC_MODELS_DIR", str(pack_root))
    frames = next(iter(iter_video_frames(media_dir / "demo1_video.mp4", max_frames=3, chunk_size=3)))
    detector = get_detector("auto", device="cpu")
    track = detect_faces(frames, detector)
    assert track.valid.all()
    # Whole-frame detection every frame (the default): every frame's box is the planted detection.
    assert np.ptp(track.boxes, axis=0).max() < 1.0
    crops, affines = align_faces(frames, track.points, 256, True)
    assert crops.shape == (3, 256, 256, 3) and np.isfinite(affines).all() and crops.std() > 5


def test_missing_onnxruntime_is_a_clear_error(pack_root, monkeypatch):
    import sys

    from latentsync_core.errors import FaceError
    from latentsync_core.face.detect.insightface_backend import InsightFaceDetector

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(FaceError, match="pip install onnxruntime"):
        InsightFaceDetector(device="cpu", root=pack_root / "insightface")
    monkeypatch.setenv("LATENTSYNC_MODELS_DIR", str(pack_root))
    assert resolve_detector("auto") == "bundled"  # the pack alone is not enough: auto falls back


def test_fixtures_command_writes_the_pack(tmp_path, capsys):
    _onnx_packages()
    from latentsync_core.fixtures.__main__ import main

    assert main([str(tmp_path), "--only", "whisper", "--tiny-only", "--insightface"]) == 0
    out = capsys.readouterr().out
    assert "insightface:" in out
    assert (tmp_path / "insightface" / "models" / "buffalo_l" / "det_10g.onnx").is_file()
    assert (tmp_path / "insightface" / "models" / "buffalo_l" / "2d106det.onnx").is_file()
