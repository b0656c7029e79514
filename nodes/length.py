"""Length Adjust: make the video as long as the audio (or the audio as long as the video)."""
from __future__ import annotations

from .common import CATEGORY, FPS_INPUT


def _modes():
    from latentsync_core.pipeline import LOOP_MODES, TAIL_MODES

    return list(LOOP_MODES), list(TAIL_MODES)


class LatentSyncLengthAdjust:
    DESCRIPTION = ("Matches the video's length to the audio's, at any frame rate, with the same rules as the "
                   "all-in-one node: a shorter video is extended (pingpong, loop, freeze on the last frame) or the "
                   "audio cut to it (trim_audio); a longer video is trimmed to the audio or kept whole.")
    CATEGORY = CATEGORY
    FUNCTION = "adjust"
    RETURN_TYPES = ("IMAGE", "AUDIO", "INT")
    RETURN_NAMES = ("images", "audio", "frame_count")
    OUTPUT_TOOLTIPS = ("The frames, repeated or cut to the new length.",
                       "The audio, cut (or padded with silence) to exactly the video's length.",
                       "Number of frames of the result.")

    @classmethod
    def INPUT_TYPES(cls):
        loop_modes, tail_modes = _modes()
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The video frames."}),
            "audio": ("AUDIO", {"tooltip": "The driving audio whose length the video should follow."}),
            "fps": FPS_INPUT,
            "loop_mode": (loop_modes, {"default": "pingpong", "tooltip":
                                       "When the audio is longer: pingpong plays the video forward then backward "
                                       "(official), loop restarts it, freeze holds the last frame, trim_audio "
                                       "cuts the audio to the video instead."}),
            "tail_mode": (tail_modes, {"default": "trim", "tooltip":
                                       "When the video is longer: trim it to the audio (official) or keep it."}),
            "pad_with_silence": ("BOOLEAN", {"default": True, "tooltip":
                                             "When the kept video outlasts the audio, pad the audio with silence to "
                                             "the video's length (otherwise the audio just ends)."}),
        }}

    def adjust(self, images, audio, fps: float, loop_mode: str, tail_mode: str, pad_with_silence: bool):
        import torch

        from latentsync_core.convert import audio_to_clip, clip_to_audio
        from latentsync_core.length import audio_frame_count, fit_audio, frame_index_map

        clip = audio_to_clip(audio)
        index = frame_index_map(len(images), audio_frame_count(clip, fps), loop_mode, tail_mode)
        frames = images[torch.from_numpy(index)]
        fitted = fit_audio(clip, len(index), fps, pad_with_silence)
        return (frames, clip_to_audio(fitted), len(index))


NODE_CLASS_MAPPINGS = {"LatentSyncLengthAdjust": LatentSyncLengthAdjust}
NODE_DISPLAY_NAME_MAPPINGS = {"LatentSyncLengthAdjust": "Length Adjust (LatentSync)"}
