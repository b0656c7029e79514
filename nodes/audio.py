"""Audio Features: Whisper conditioning for every frame of a video."""
from __future__ import annotations

from latentsync_core import host

from .common import AUDIO_FEATURES, CATEGORY, FPS_INPUT, WHISPER, require_model


class LatentSyncAudioFeatures:
    DESCRIPTION = ("Encodes the driving audio with Whisper and cuts one feature window per video frame at the "
                   "video's frame rate (any fps). Optionally marks silent frames so the sampler can keep their "
                   "original mouth.")
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = (AUDIO_FEATURES,)
    RETURN_NAMES = ("audio_features",)
    OUTPUT_TOOLTIPS = ("Per-frame audio windows (and silent-frame flags) for the LatentSync Sampler.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "audio": ("AUDIO", {"tooltip": "The speech to lip-sync to (any sample rate and channel count)."}),
                "whisper": (WHISPER, {"tooltip": "From Load Whisper (LatentSync)."}),
                "fps": FPS_INPUT,
                "frame_count": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip":
                                        "Number of video frames to cover. 0: the length of 'images' when connected, "
                                        "else as many frames as the audio lasts."}),
                "silence_detection": ("BOOLEAN", {"default": False, "tooltip":
                                                  "Mark frames in pauses of the speech as silent (the sampler's "
                                                  "silence gating can then keep their original mouth)."}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "The video frames; their count sets frame_count when it is 0."}),
            },
        }

    def encode(self, audio, whisper, fps: float, frame_count: int, silence_detection: bool, images=None):
        from latentsync_core.audio import audio_features_for_video, frames_with_audio
        from latentsync_core.audio.prepare import model_waveform
        from latentsync_core.media.resample import MODEL_SAMPLE_RATE

        require_model(whisper, "whisper", "whisper", "Load Whisper (LatentSync)")
        waveform = model_waveform(audio)
        if frame_count <= 0:
            frame_count = len(images) if images is not None else frames_with_audio(len(waveform), MODEL_SAMPLE_RATE, fps)
        encoder = host.load_to_device(whisper)
        features = audio_features_for_video(encoder, waveform, MODEL_SAMPLE_RATE, frame_count, fps,
                                            silence=silence_detection)
        return (features,)


NODE_CLASS_MAPPINGS = {"LatentSyncAudioFeatures": LatentSyncAudioFeatures}
NODE_DISPLAY_NAME_MAPPINGS = {"LatentSyncAudioFeatures": "Audio Features (LatentSync)"}
