"""Audio Features: Whisper conditioning for every frame of a video."""
from __future__ import annotations

from comfy_api.latest import io

from latentsync_core import host

from .common import CATEGORY, AudioFeaturesType, WhisperType, fps_input, output, require_model


class LatentSyncAudioFeatures(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LatentSyncAudioFeatures", display_name="Audio Features (LatentSync)", category=CATEGORY,
            description="Encodes the driving audio with Whisper and cuts one feature window per video frame at the "
                        "video's frame rate (any fps). Optionally marks silent frames so the sampler can keep their "
                        "original mouth.",
            inputs=[
                io.Audio.Input("audio", tooltip="The speech to lip-sync to (any sample rate and channel count)."),
                WhisperType.Input("whisper", tooltip="From Load Whisper (LatentSync)."),
                fps_input(),
                io.Int.Input("frame_count", default=0, min=0, max=10_000_000,
                             tooltip="Number of video frames to cover. 0: the length of 'images' when connected, "
                                     "else as many frames as the audio lasts."),
                io.Boolean.Input("silence_detection", default=False,
                                 tooltip="Mark frames in pauses of the speech as silent (the sampler's silence "
                                         "gating can then keep their original mouth)."),
                io.Image.Input("images", optional=True,
                               tooltip="The video frames; their count sets frame_count when it is 0."),
            ],
            outputs=[output(AudioFeaturesType, "audio_features",
                            "Per-frame audio windows (and silent-frame flags) for the LatentSync Sampler.")],
        )

    @classmethod
    def execute(cls, audio, whisper, fps: float, frame_count: int, silence_detection: bool,
                images=None) -> io.NodeOutput:
        return io.NodeOutput(encode_audio(audio, whisper, fps, frame_count, silence_detection, images))


def encode_audio(audio, whisper, fps: float, frame_count: int, silence_detection: bool, images=None):
    from latentsync_core.audio import audio_features_for_video, frames_with_audio
    from latentsync_core.audio.prepare import model_waveform
    from latentsync_core.media.resample import MODEL_SAMPLE_RATE

    require_model(whisper, "whisper", "whisper", "Load Whisper (LatentSync)")
    waveform = model_waveform(audio)
    if frame_count <= 0:
        frame_count = len(images) if images is not None else frames_with_audio(len(waveform), MODEL_SAMPLE_RATE, fps)
    encoder = host.load_to_device(whisper)
    return audio_features_for_video(encoder, waveform, MODEL_SAMPLE_RATE, frame_count, fps, silence=silence_detection)


NODES = [LatentSyncAudioFeatures]
