"""Graph path (what Face Crop & Align, Audio Features, Sampler and Paste Back run) and the stream (CLI,
all-in-one node) give the same frames bit for bit on the same inputs and seed, at 25 and 23.976 fps.

The graph carries fps as a float on its sockets; the stream has the file's exact Fraction. Both go
through media.rate.exact_fps, so they pick the same Whisper positions (a float fps would not: see the
last test)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from latentsync_core.audio import audio_features_for_video, chunk_centres
from latentsync_core.convert import image_to_uint8, uint8_to_image
from latentsync_core.face import restore_faces
from latentsync_core.media.audio_file import AudioClip
from latentsync_core.media.rate import exact_fps
from latentsync_core.pipeline import (FrameSource, LipsyncEngine, SamplerOptions, active_frames, crop_faces,
                                      faces_to_tensor, stream_frames)
from tests.node_media import AUDIO_RATE, face_frames, speech_like_audio

R = 64
FRAMES = 20


@pytest.fixture(scope="module")
def models(fixture_models):
    from latentsync_core.audio import load_whisper
    from latentsync_core.unet import load_unet
    from latentsync_core.vae import load_vae

    unet = load_unet(fixture_models / "latentsync" / "latentsync_unet.pt", device="cpu", dtype=torch.float32)
    vae = load_vae(fixture_models / "vae" / "sd-vae-ft-mse.safetensors")
    whisper = load_whisper(fixture_models / "whisper" / "tiny.pt", "cpu", torch.float32)
    return unet, vae, whisper


@pytest.fixture(scope="module")
def clip():
    frames = face_frames(FRAMES)
    frames[7:9] = 90  # two frames without a face: passed through bit-identical on both paths
    return frames


def _graph(models, frames, audio, fps_float, silence):
    """The node bodies' core calls, with fps as the float a socket carries."""
    unet, vae, whisper = models
    images = uint8_to_image(frames)
    faces = crop_faces(images, "bundled", R, fps_float)
    features = audio_features_for_video(whisper, audio, None, len(images), fps_float, silence=silence)
    engine = LipsyncEngine(unet, vae, resolution=R, sampler=SamplerOptions(steps=1, seed=11, deepcache_interval=0))
    generated, _ = engine.sample(faces, features, active_frames(faces, features, silence))
    # Paste Back: frames whose face changed get it restored, the others stay as they are.
    changed = faces.info.valid & (image_to_uint8(generated) != faces.crops).reshape(len(faces), -1).any(axis=1)
    out = image_to_uint8(images)
    index = np.flatnonzero(changed)
    out[index] = restore_faces(out[index], faces_to_tensor(generated[torch.from_numpy(index)]),
                               faces.info.affines[index])
    return out, faces, features


def _stream(models, frames, audio, fps, silence):
    """What pipeline.lipsync runs, with the exact Fraction a file reports."""
    unet, vae, whisper = models
    source = FrameSource.open(frames, fps=fps)
    features = audio_features_for_video(whisper, audio, None, len(frames), source.fps, silence=silence, lazy=True)
    silent = features.silent.numpy() if features.silent is not None else np.zeros(len(frames), bool)
    engine = LipsyncEngine(unet, vae, resolution=R, sampler=SamplerOptions(steps=1, seed=11, deepcache_interval=0))
    chunks = lambda idx: torch.cat([features.chunk_range(i, i + 1) for i in idx])  # noqa: E731
    out = stream_frames(engine, source, len(frames), chunks, "bundled", chunk_size=6, prefetch=2,
                        regenerate=lambda i: i < features.frames_with_audio and not silent[i])
    return np.stack(list(out)), features


@pytest.mark.parametrize("fps,silence", [(Fraction(25), False), (Fraction(24000, 1001), True)])
def test_graph_and_stream_give_identical_frames(models, clip, fps, silence):
    audio = AudioClip(speech_like_audio(FRAMES / float(fps), AUDIO_RATE), AUDIO_RATE)
    graph, faces, graph_audio = _graph(models, clip, audio, float(fps), silence)
    streamed, stream_audio = _stream(models, clip, audio, fps, silence)
    assert faces.fps == fps and graph_audio.fps == fps == stream_audio.fps  # exact on both paths
    assert np.array_equal(graph, streamed)
    assert np.array_equal(streamed[7:9], clip[7:9])  # no face: untouched
    changed = np.abs(streamed.astype(np.int16) - clip.astype(np.int16)).reshape(FRAMES, -1).max(axis=1)
    assert (changed > 10).sum() >= 10  # most frames did get a new mouth
    if silence:
        assert graph_audio.silent.any() and (changed[graph_audio.silent.numpy()] == 0).all()


def test_socket_floats_recover_the_exact_rate_and_its_whisper_positions():
    for exact in (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001), Fraction(25), Fraction(50)):
        assert exact_fps(float(exact)) == exact
        assert np.array_equal(chunk_centres(200_000, exact_fps(float(exact))), chunk_centres(200_000, exact))
    # The float itself drifts: at 23.976 fps it picks other positions on some of 200,000 frames.
    rate = Fraction(24000, 1001)
    assert (chunk_centres(200_000, float(rate)) != chunk_centres(200_000, rate)).sum() > 0
    assert exact_fps(23.976) == Fraction(2997, 125)  # a hand-typed rate is kept as typed
    with pytest.raises(Exception, match="fps must be positive"):
        exact_fps(0.0)
