"""`python -m latentsync_core batch` on a local 2-worker Ray: jobs complete with the right frames and audio,
bad jobs fail alone with the CLI's message, a worker killed with SIGKILL mid-job has its job retried,
a re-run skips complete outputs, Ctrl-C leaves no partial file. Clips are cut from ../shared/media here."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from latentsync_core.batch.jobs import read_jobs
from latentsync_core.batch.manifest import DONE, FAILED, Manifest, partial_files

FPS = 25
RATE = 16000


def _defaults(**changes):
    from latentsync_core.cli import _build_parser

    args = _build_parser().parse_args(["batch", "--jobs", "j.jsonl", "--out", "o", "--weights", "random-tiny",
                                       "--steps", "1"])
    for key, value in changes.items():
        setattr(args, key, value)
    return args


def _write_jobs(path: Path, jobs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(job) + "\n" for job in jobs))
    return path


# ---------------------------------------------------------------- jobs file and manifest (no Ray)
def test_jobs_go_through_the_run_parser_with_batch_defaults(tmp_path):
    (tmp_path / "jobs.csv").write_text("video,audio,out,steps,loop-mode,silence,id\n"
                                       "a.mp4,a.wav,x/a.mp4,3,loop,true,first\n"
                                       "b.mp4,b.wav,,,,false,\n"
                                       "c.mp4,c.wav,c.mp4,many,,,\n")
    jobs = read_jobs(tmp_path / "jobs.csv", tmp_path / "out", _defaults(seed=7))
    first, second, third = jobs
    assert first.error is None and first.name == "first"
    assert first.output == (tmp_path / "out" / "x" / "a.mp4").resolve()
    assert first.video == str((tmp_path / "a.mp4").resolve())
    assert (first.options["steps"], first.options["loop_mode"], first.options["silence"]) == (3, "loop", True)
    assert first.options["seed"] == 7 and first.options["weights"] == "random-tiny"  # from the command line
    assert second.error is None and second.output.name == "b_b.mp4"
    assert (second.options["steps"], second.options["loop_mode"], second.options["silence"]) == (1, "pingpong", False)
    assert "line 4" in third.error and "--steps: invalid int value: 'many'" in third.error
    assert first.fingerprint != second.fingerprint


def test_invalid_job_lines_fail_alone_with_the_reason(tmp_path):
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text('{"video": "a.mp4", "audio": "a.wav", "out": "a.mp4"}\n'
                         '{"video": "b.mp4", "audio": "b.wav", "out": "a.mp4"}\n'
                         '{"video": "c.mp4"}\n'
                         '{"video": "d.mp4", "audio": "d.wav", "weights": "official"}\n'
                         '{"video": "e.mp4", "audio": "e.wav", "colour": 3}\n'
                         '{"video": "f.mp4", \n')
    jobs = read_jobs(jobs_file, tmp_path, _defaults())
    assert jobs[0].error is None
    errors = [job.error for job in jobs[1:]]
    assert "line 2" in errors[0] and "also the output of line 1" in errors[0]
    assert "line 3" in errors[1] and "missing 'audio'" in errors[1]
    assert "line 4" in errors[2] and "--weights on the batch command line" in errors[2]
    assert "line 5" in errors[3] and "unrecognized arguments: --colour 3" in errors[3]
    assert "line 6" in errors[4] and "not valid JSON" in errors[4]


def test_manifest_ignores_a_torn_last_line_and_partials_match_the_writer_temp_names(tmp_path):
    from latentsync_core.atomic import temp_sibling

    manifest = Manifest(tmp_path).load()
    manifest.append({"job": "a", "output": str(tmp_path / "a.mp4"), "status": DONE, "frames": 3})
    manifest.append({"job": "b", "output": str(tmp_path / "b.mp4"), "status": FAILED, "frames": 0})
    with open(manifest.path, "a") as handle:
        handle.write('{"job": "c", "outp')  # a crash in the middle of a write
    reloaded = Manifest(tmp_path).load()
    assert sorted(r["job"] for r in reloaded.records.values()) == ["a", "b"]
    reloaded.compact()
    assert [json.loads(line)["job"] for line in manifest.path.read_text().splitlines()] == ["a", "b"]
    target = tmp_path / "we[ird] name.mp4"
    temp = temp_sibling(target)
    temp.write_bytes(b"partial")
    (tmp_path / ".we[ird] name.partial-x.mkv").write_bytes(b"other suffix")
    assert partial_files(target) == [temp]


def test_ray_stays_optional(monkeypatch, tmp_path, capsys):
    import subprocess
    import sys

    code = ("import sys, latentsync_core.cli, latentsync_core.batch.jobs, latentsync_core.batch.manifest; "
            "latentsync_core.cli._build_parser(); assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, check=True)
    from latentsync_core.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.delitem(sys.modules, "latentsync_core.batch.driver", raising=False)
    code = main(["batch", "--jobs", str(tmp_path / "jobs.jsonl"), "--out", str(tmp_path), "--weights", "random-tiny"])
    assert code == 1 and "pip install -r requirements-batch.txt" in capsys.readouterr().err


# ---------------------------------------------------------------- on Ray
@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the batch tests need Ray: pip install -r requirements-batch.txt")
    from latentsync_core.batch.driver import connect

    if ray.is_initialized():
        ray.shutdown()
    connect(num_cpus=2)  # one local Ray for the whole module: starting it costs seconds
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(media_dir, tmp_path_factory):
    from scipy.io import wavfile

    from latentsync_core.media.writer import write_video
    from tests.node_media import trimmed_shared_clip

    root = tmp_path_factory.mktemp("batch_media")
    trimmed_shared_clip(media_dir / "demo1_video.mp4", root / "face.mp4", num_frames=25)
    rate, speech = wavfile.read(media_dir / "demo1_audio.wav")
    assert rate == RATE and speech.ndim == 1
    audio = {}
    for seconds in (1.0, 0.6, 1.4):  # same length as the video, shorter (tail trimmed), longer (pingpong)
        path = root / f"speech_{seconds}.wav"
        wavfile.write(path, rate, speech[int(2.0 * rate): int((2.0 + seconds) * rate)])
        audio[seconds] = path
    write_video(root / "no_face.mp4", np.full((12, 96, 96, 3), 128, np.uint8), FPS)
    (root / "corrupt.mp4").write_bytes(b"this is not a video" * 50)
    return root, audio


def _run(jobs_file: Path, out_dir: Path, on_event=None, **kwargs):
    from latentsync_core.batch.driver import run_batch

    return run_batch(jobs_file, out_dir, _defaults(), workers=2, max_retries=kwargs.pop("max_retries", 2),
                     on_event=on_event, **kwargs)


GOOD = [("speech_1.0", 1.0), ("speech_0.6", 0.6), ("speech_1.4", 1.4), ("again_1.0", 1.0)]
VICTIM = "speech_1.4"  # the longest job: killed once while it is writing its output


def _kill_when_writing(out_dir: Path, killed: list):
    """on_event hook: SIGKILL the worker process running VICTIM's first attempt once its temp file exists."""
    def watch(pid: int, output: Path):
        deadline = time.monotonic() + 120
        while not partial_files(output) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    def on_event(event):
        if event["event"] == "started" and event["job"] == VICTIM and event["attempt"] == 1:
            threading.Thread(target=watch, args=(event["worker"]["pid"], Path(event["output"])),
                             daemon=True).start()
    return on_event


@pytest.fixture(scope="module")
def first_run(local_ray, clips, tmp_path_factory):
    root, audio = clips
    out_dir = tmp_path_factory.mktemp("batch_out")
    good = [{"id": name, "video": "face.mp4", "audio": audio[seconds].name, "out": f"{name}.mp4"}
            for name, seconds in GOOD]
    bad = [{"id": "missing", "video": "nowhere.mp4", "audio": audio[1.0].name, "out": "missing.mp4"},
           {"id": "no_face", "video": "no_face.mp4", "audio": audio[1.0].name, "out": "no_face.mp4"},
           {"id": "corrupt", "video": "corrupt.mp4", "audio": audio[1.0].name, "out": "corrupt.mp4"}]
    jobs = good[:2] + bad[:1] + good[2:3] + bad[1:] + good[3:]
    killed: list[int] = []
    summary = _run(_write_jobs(root / "jobs.jsonl", jobs), out_dir, on_event=_kill_when_writing(out_dir, killed))
    records = {r["job"]: r for r in Manifest(out_dir).load().records.values()}
    return root, out_dir, summary, records, killed, good


def test_good_jobs_complete_with_their_frame_counts_and_the_driving_audio(first_run, clips):
    from latentsync_core.media.video import probe_video

    _, audio = clips
    _, out_dir, summary, records, _, _ = first_run
    assert summary.done == 4 and summary.failed == 3
    for name, seconds in GOOD:
        record = records[name]
        assert record["status"] == DONE and record["error"] is None
        out = out_dir / f"{name}.mp4"
        assert record["output"] == str(out)
        info = probe_video(out)
        assert info.num_frames == record["frames"]
        assert abs(info.num_frames - seconds * FPS) <= 2, (name, info.num_frames)  # one frame per 40 ms of audio
        assert (info.width, info.height) == (400, 400) and info.fps == FPS
        assert _audio_match(out, audio[seconds]) > 0.9, name
    assert not list(out_dir.glob(".*partial*")), "temp files left behind"


def test_bad_jobs_fail_alone_with_the_clis_message(first_run, clips, capsys):
    from latentsync_core.cli import main

    root, out_dir, _, records, _, _ = first_run
    for name in ("missing", "no_face", "corrupt"):
        assert records[name]["status"] == FAILED and not (out_dir / f"{name}.mp4").exists()
    assert "no face found" in records["no_face"]["error"]
    assert "corrupt.mp4" in records["corrupt"]["error"]
    code = main(["run", "--weights", "random-tiny", "--steps", "1", "--video", str(root / "nowhere.mp4"),
                 "--audio", str(root / "speech_1.0.wav"), "--out", str(out_dir / "cli.mp4")])
    assert code == 1
    assert capsys.readouterr().err.strip() == f"error: {records['missing']['error']}"


def test_a_worker_killed_mid_job_is_replaced_and_the_job_retried(first_run):
    from latentsync_core.media.video import probe_video

    _, out_dir, summary, records, killed, _ = first_run
    assert len(killed) == 1, "the test never caught the victim job writing its output"
    victim = records[VICTIM]
    assert victim["status"] == DONE and victim["attempts"] == 2 and summary.retried == 1
    assert not victim["worker"].endswith(f":{killed[0]}")  # finished by another worker process
    assert probe_video(out_dir / f"{VICTIM}.mp4").num_frames == victim["frames"]


def test_a_second_run_skips_every_complete_job(first_run):
    root, out_dir, _, _, _, good = first_run
    before = {p.name: p.stat().st_mtime_ns for p in out_dir.glob("*.mp4")}
    manifest_before = Manifest(out_dir).load().records
    summary = _run(_write_jobs(root / "again.jsonl", good), out_dir)
    assert (summary.skipped, summary.done, summary.failed) == (4, 0, 0)
    assert {p.name: p.stat().st_mtime_ns for p in out_dir.glob("*.mp4")} == before
    assert Manifest(out_dir).load().records == manifest_before


def test_a_job_whose_output_was_damaged_or_changed_is_not_complete(first_run):
    root, out_dir, _, _, _, good = first_run
    manifest = Manifest(out_dir).load()
    jobs = read_jobs(_write_jobs(root / "again.jsonl", good), out_dir, _defaults())
    assert all(manifest.is_complete(j.output, j.fingerprint) for j in jobs)
    changed = read_jobs(_write_jobs(root / "seed.jsonl", [{**good[0], "seed": 5}]), out_dir, _defaults())[0]
    assert not manifest.is_complete(changed.output, changed.fingerprint)
    output = Path(jobs[0].output)
    original = output.read_bytes()
    try:
        output.write_bytes(original[: len(original) // 2])  # e.g. a disk that filled up after the run
        assert not manifest.is_complete(output, jobs[0].fingerprint)
    finally:
        output.write_bytes(original)
    assert manifest.is_complete(output, jobs[0].fingerprint)


def test_ctrl_c_keeps_complete_outputs_and_leaves_no_partial_one(local_ray, clips, tmp_path):
    import _thread

    root, audio = clips
    jobs = _write_jobs(root / "interrupt.jsonl", [
        {"id": "quick", "video": "no_face.mp4", "audio": audio[0.6].name, "out": "quick.mp4"},
        {"id": "long", "video": "face.mp4", "audio": audio[1.4].name, "out": "long.mp4"}])

    def interrupt_when_writing(event):
        if event["event"] == "started" and event["job"] == "long":
            def watch():
                while not partial_files(Path(event["output"])):
                    time.sleep(0.01)
                _thread.interrupt_main()  # what Ctrl-C does to the driver
            threading.Thread(target=watch, daemon=True).start()

    with pytest.raises(KeyboardInterrupt):
        _run(jobs, tmp_path, on_event=interrupt_when_writing, max_retries=0)
    assert not (tmp_path / "long.mp4").exists() and not partial_files(tmp_path / "long.mp4")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files, no model scratch
    records = Manifest(tmp_path).load().records
    assert str(tmp_path / "long.mp4") not in records  # not recorded: the next run redoes it
    assert all(r["status"] == FAILED and "no face" in r["error"] for r in records.values())


def _audio_match(video: Path, wav: Path) -> float:
    """Peak normalised cross-correlation of the output's audio track with the driving wav (1 = same)."""
    import av
    from scipy.io import wavfile

    _, reference = wavfile.read(wav)
    reference = reference.astype(np.float32)
    with av.open(str(video)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    out = np.concatenate(chunks)
    n = min(len(out), len(reference))
    best = 0.0
    for lag in range(-1200, 1201, 8):
        a = out[max(lag, 0): max(lag, 0) + n - abs(lag)]
        b = reference[max(-lag, 0): max(-lag, 0) + len(a)]
        if len(a) > RATE // 4:
            best = max(best, float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9)))
    return best
