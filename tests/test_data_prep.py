"""Dataset preparation: scene cuts, frame-rate conversion, segments, aligned clips + manifest, filters, resume."""
from __future__ import annotations

import json

import numpy as np
import pytest

from latentsync_core.data import (ClipRecord, DatasetError, PrepareOptions, SceneOptions, cuts_from_scores,
                                  detect_scene_cuts, load_clips, plan_segments, prepare_dataset, resampled_indices)
from latentsync_core.data.prepare import face_runs, shifted_audio
from tests.talking_clip import mouth_envelope, write_talking_video, one_torch_thread  # noqa: F401  (autouse fixture)

OPTIONS = PrepareOptions(resolution=64, segment_seconds=1.6)  # 40-frame segments keep the test clips short


# --------------------------------------------------------------------------- pure helpers
def test_scene_cut_is_found_and_slow_change_is_not():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frames = []
    for i in range(60):
        frame = np.clip(base.astype(int) + i, 0, 255).astype(np.uint8)  # a slow fade: no cut
        frames.append(255 - frame if i >= 37 else frame)               # a hard cut at frame 37
    assert detect_scene_cuts(np.stack(frames)) == [37]
    assert detect_scene_cuts(np.stack(frames[:37])) == []
    # Cuts closer than min_scene_frames are merged into the first.
    scores = np.full(60, 1.0)
    scores[[20, 25, 45]] = 80.0
    assert cuts_from_scores(scores, SceneOptions(min_scene_frames=15)) == [20, 45]


def test_frame_rate_conversion_picks_the_nearest_frames():
    assert list(resampled_indices(10, 25, 25)) == list(range(10))
    thirty = resampled_indices(30, 30, 25)  # one second: 25 frames, every sixth source frame skipped
    assert len(thirty) == 25 and len(set(thirty)) == 25 and thirty[-1] <= 29
    assert np.all(np.abs(thirty / 30 - np.arange(25) / 25) <= 0.5 / 30 + 1e-9)
    twenty_four = resampled_indices(24, 24, 25)
    assert len(twenty_four) == 25 and len(set(twenty_four)) == 24  # one frame shown twice


def test_segments_and_face_runs():
    assert plan_segments(100, [50], 40, 32) == [(0, 50), (50, 100)]  # remainders under 32 frames join
    assert plan_segments(130, [], 40, 32) == [(0, 40), (40, 80), (80, 130)]
    assert plan_segments(200, [], 40, 32)[-1] == (160, 200)
    assert face_runs(np.array([1, 1, 0, 0, 1, 1, 1, 0, 1], bool)) == [(0, 2), (4, 7), (8, 9)]


def test_shifted_audio_delays_by_whole_frames():
    wave = np.zeros(16000, np.float32)
    wave[6400] = 1.0  # frame 10 at 25 fps (640 samples per frame)
    clip = shifted_audio(wave, 5, 20, 25, 0)
    assert np.flatnonzero(clip).tolist() == [(10 - 5) * 640]
    delayed = shifted_audio(wave, 5, 20, 25, 3)
    assert np.flatnonzero(delayed).tolist() == [(10 - 5 + 3) * 640]
    assert shifted_audio(wave, 0, 5, 25, 2)[:1280].sum() == 0  # before the start: silence, not wrapped


# --------------------------------------------------------------------------- the whole folder
@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    (root / "sub").mkdir()
    write_talking_video(root / "speaker.mp4", 90, seed=1, cut_at=50)
    write_talking_video(root / "sub" / "thirty.mp4", 45, seed=2, fps=30)
    (root / "broken.mp4").write_bytes(b"\x00not a video")
    (root / "notes.txt").write_text("ignored")
    return root


@pytest.fixture(scope="module")
def prepared(source_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    return out, prepare_dataset(source_dir, out, OPTIONS)


def test_prepare_writes_aligned_clips_and_a_manifest(prepared, source_dir):
    from latentsync_core.media.audio_file import read_audio
    from latentsync_core.media.video import probe_video, read_video

    out, report = prepared
    assert report.videos == 3 and report.broken == 1
    root, records = load_clips(out)
    assert root == out and report.clips == len(records) >= 2
    by_source = {r.source: r for r in records}
    assert set(by_source) == {str(source_dir / "speaker.mp4"), str(source_dir / "sub" / "thirty.mp4")}
    for record in records:
        info = probe_video(record.path(root))
        assert (info.width, info.height, info.fps) == (64, 64, 25)
        assert info.num_frames == record.frames >= 32 and record.resolution == 64
        audio = read_audio(record.path(root))
        assert audio.sample_rate == 16000 and audio.num_channels == 1
        assert abs(audio.duration - record.frames / 25) < 0.05
        assert record.sync_confidence is None and record.quality is None  # steps skipped (no models)
    # The speaker clip ends at the scene cut (frame 50; the mirrored second shot is a separate scene).
    speaker = by_source[str(source_dir / "speaker.mp4")]
    assert speaker.start_frame == 0 and speaker.frames == 50
    # Alignment: the painted mouth lies in the crop's lower centre, and its darkness follows the envelope.
    frames, _ = read_video(speaker.path(root))
    lower = frames[:, 36:56, 16:48].astype(float).mean(axis=(1, 2, 3))
    envelope = mouth_envelope(90, seed=1)[:50]
    assert np.corrcoef(lower, envelope)[0, 1] < -0.8
    state = [json.loads(line) for line in (out / "prepared_sources.jsonl").read_text().splitlines()]
    assert {s["status"] for s in state} == {"done", "broken"}
    assert [s["scene_cuts"] for s in state if s["source"].endswith("speaker.mp4")] == [[50]]


def test_prepare_resumes_without_duplicates(prepared, source_dir):
    out, first = prepared
    manifest = (out / "manifest.jsonl").read_text()
    again = prepare_dataset(source_dir, out, OPTIONS)
    assert again.resumed == 3 and again.clips == 0
    assert (out / "manifest.jsonl").read_text() == manifest
    # A run stopped after writing a source's clips but before marking it done redoes it, once.
    state = out / "prepared_sources.jsonl"
    lines = [line for line in state.read_text().splitlines() if "thirty" not in line]
    state.write_text("".join(line + "\n" for line in lines))
    redo = prepare_dataset(source_dir, out, OPTIONS)
    assert redo.resumed == 2 and redo.clips == 1
    records = load_clips(out)[1]
    assert len(records) == first.clips and len({r.clip for r in records}) == len(records)


def test_filters_drop_and_record(source_dir, tmp_path, fixture_models):
    from latentsync_core.syncnet import load_syncnet

    only = tmp_path / "in"
    only.mkdir()
    (only / "speaker.mp4").symlink_to(source_dir / "speaker.mp4")
    syncnet = load_syncnet(fixture_models / "latentsync" / "stable_syncnet.pt")
    strict = PrepareOptions(resolution=64, segment_seconds=1.6, min_sync_confidence=10.0)  # unreachable (max 2)
    dropped = prepare_dataset(only, tmp_path / "strict", strict, syncnet=syncnet)
    assert dropped.clips == 0 and dropped.dropped_sync == 1
    # The default relative filter (official threshold on StableSyncNet's scale) judges random weights
    # arbitrarily; ratio 1 (confidence >= the whole median distance) is unreachable, so it drops.
    unclear = prepare_dataset(only, tmp_path / "unclear", PrepareOptions(resolution=64, segment_seconds=1.6,
                                                                         max_offset=15, min_sync_ratio=1.0),
                              syncnet=syncnet)
    assert unclear.clips == 0 and unclear.dropped_sync == 1
    assert "Every clip was dropped by the sync filter: set min_sync_ratio and min_sync_confidence to 0" \
        in unclear.summary()
    # min_sync_confidence 0 turns off only the absolute floor: the ratio still judges (and drops) the clip
    ratio_only = prepare_dataset(only, tmp_path / "ratio_only", PrepareOptions(
        resolution=64, segment_seconds=1.6, max_offset=15, min_sync_ratio=1.0, min_sync_confidence=0.0),
        syncnet=syncnet)
    assert ratio_only.clips == 0 and ratio_only.dropped_sync == 1
    kept = prepare_dataset(only, tmp_path / "kept", PrepareOptions(resolution=64, segment_seconds=1.6, max_offset=15,
                                                                   min_sync_ratio=0),
                           syncnet=syncnet, quality=lambda crops: 55.0 + crops.shape[0] * 0)
    (record,) = load_clips(tmp_path / "kept")[1]
    assert kept.hint == "" and "sync filter: keeps clips with" not in " ".join(kept.notes)
    assert any(note.startswith("sync filter: off (every clip kept)") for note in kept.notes)
    assert record.sync_confidence is not None and abs(record.av_offset) <= 15 and record.quality == 55.0
    low = prepare_dataset(only, tmp_path / "low", OPTIONS, quality=lambda crops: 12.0)
    assert low.clips == 0 and low.dropped_quality == 1


def test_bad_dataset_folders_are_explained(tmp_path, source_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no videos found"):
        prepare_dataset(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DatasetError, match="must not be inside the input folder"):
        prepare_dataset(source_dir, source_dir / "out")
    with pytest.raises(DatasetError, match="does not exist"):
        load_clips(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no manifest.jsonl and no videos"):
        load_clips(tmp_path / "empty")
    (tmp_path / "bad.jsonl").write_text('{"clip": "a.mp4"}\n')
    with pytest.raises(DatasetError, match="line 1 is not a clip record"):
        load_clips(tmp_path / "bad.jsonl")


def test_plain_folder_of_clips_is_a_dataset(prepared, tmp_path):
    out, _ = prepared
    root, records = load_clips(out / "clips")
    assert root == out / "clips" and all(isinstance(r, ClipRecord) and r.fps == 25 for r in records)
    assert sorted(r.frames for r in records) == sorted(r.frames for r in load_clips(out)[1])


def test_prepare_cli_runs_the_same_function(source_dir, tmp_path, capsys, fixture_models):
    from latentsync_core.cli import main

    only = tmp_path / "in"
    only.mkdir()
    (only / "thirty.mp4").symlink_to(source_dir / "sub" / "thirty.mp4")
    code = main(["prepare", "--input", str(only), "--output", str(tmp_path / "out"), "--resolution", "64",
                 "--segment-seconds", "1.6", "--no-sync"])
    assert code == 0 and "1 clips (38 frames) from 1 videos"  # 45 frames at 30 fps = 1.5 s in capsys.readouterr().out
    assert main(["prepare", "--input", str(tmp_path / "none"), "--output", str(tmp_path / "o2")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_video_without_a_face_is_skipped_and_counted(tmp_path):
    from latentsync_core.media.audio_file import AudioClip
    from latentsync_core.media.writer import write_video

    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (1, 128, 128, 3), dtype=np.uint8), 40, axis=0)
    write_video(tmp_path / "in" / "wall.mp4", frames, 25, audio=AudioClip(rng.standard_normal((1, 25600)) * 0.1, 16000))
    report = prepare_dataset(tmp_path / "in", tmp_path / "out", OPTIONS)
    assert report.clips == 0 and report.dropped_no_face == 1 and report.broken == 0
    state = json.loads((tmp_path / "out" / "prepared_sources.jsonl").read_text())
    assert state["status"] == "done" and state["clips"] == 0


def test_sync_ratio_is_the_official_threshold_on_a_relative_scale():
    from latentsync_core.data.prepare import passes_sync_ratio

    default = PrepareOptions().min_sync_ratio
    assert default == pytest.approx(3 / 14)
    # SyncNet v2 scale: confidence 3 at a median distance of 14 is the official borderline.
    assert passes_sync_ratio(3.0, 11.0, default) and not passes_sync_ratio(2.9, 11.1, default)
    # The same criterion on StableSyncNet's unit-vector scale (median ~1.3).
    assert passes_sync_ratio(0.3, 1.0, default) and not passes_sync_ratio(0.2, 1.1, default)
    assert passes_sync_ratio(0.0, 1.0, None) and passes_sync_ratio(0.0, 1.0, 0)
    assert PrepareOptions().detector == "auto"


def test_each_sync_check_is_switched_off_by_its_own_value_and_the_run_says_which_are_on(tmp_path):
    from latentsync_core.data.prepare import check_sync_options, sync_filter_note

    default = sync_filter_note(PrepareOptions())
    assert default == ("sync filter: keeps clips with confidence >= 0.2143 x median distance (min_sync_ratio) and "
                       "|offset| <= 6 frames (max_offset); offsets are corrected")
    no_floor = sync_filter_note(PrepareOptions(min_sync_confidence=0.0))
    assert no_floor == default  # 0 on the absolute floor leaves the other checks on
    assert "confidence >= 0.5 (min_sync_confidence)" in sync_filter_note(PrepareOptions(min_sync_confidence=0.5))
    assert sync_filter_note(PrepareOptions(min_sync_ratio=0, max_offset=15)).startswith("sync filter: off")
    for name, value in (("min_sync_ratio", -0.1), ("min_sync_confidence", -1.0), ("max_offset", -2)):
        with pytest.raises(DatasetError, match=f"{name} must be >= 0"):
            check_sync_options(PrepareOptions(**{name: value}))

