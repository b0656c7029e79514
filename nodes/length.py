"""Length Adjust: make the video as long as the audio (or the audio as long as the video)."""
from __future__ import annotations

from comfy_api.latest import io

from .common import CATEGORY, fps_input, output


def _modes():
    from latentsync_core.pipeline import LOOP_MODES, TAIL_MODES

    return list(LOOP_MODES), list(TAIL_MODES)


class LatentSyncLengthAdjust(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        loop_modes, tail_modes = _modes()
        return io.Schema(
            node_id="LatentSyncLengthAdjust", display_name="Length Adjust (LatentSync)", category=CATEGORY,
            description="Matches the video's length to the audio's, at any frame rate, with the same rules as the "
                        "all-in-one node: a shorter video is extended (pingpong, loop, freeze on the last frame) or "
                        "the audio cut to it (trim_audio); a longer video is trimmed to the audio or kept whole.",
            inputs=[
                io.Image.Input("images", tooltip="The video frames."),
                io.Audio.Input("audio", tooltip="The driving audio whose length the video should follow."),
                fps_input(),
                io.Combo.Input("loop_mode", options=loop_modes, default="pingpong",
                               tooltip="When the audio is longer: pingpong plays the video forward then backward "
                                       "(official), loop restarts it, freeze holds the last frame, trim_audio cuts "
                                       "the audio to the video instead."),
                io.Combo.Input("tail_mode", options=tail_modes, default="trim",
                               tooltip="When the video is longer: trim it to the audio (official) or keep it."),
                io.Boolean.Input("pad_with_silence", default=True,
                                 tooltip="When the kept video outlasts the audio, pad the audio with silence to the "
                                         "video's length (otherwise the audio just ends)."),
            ],
            outputs=[
                output(io.Image, "images", "The frames, repeated or cut to the new length."),
                output(io.Audio, "audio", "The audio, cut (or padded with silence) to exactly the video's length."),
                output(io.Int, "frame_count", "Number of frames of the result."),
            ],
        )

    @classmethod
    def execute(cls, images, audio, fps: float, loop_mode: str, tail_mode: str,
                pad_with_silence: bool) -> io.NodeOutput:
        return io.NodeOutput(*adjust_length(images, audio, fps, loop_mode, tail_mode, pad_with_silence))


def adjust_length(images, audio, fps: float, loop_mode: str, tail_mode: str, pad_with_silence: bool):
    import torch

    from latentsync_core.convert import audio_to_clip, clip_to_audio
    from latentsync_core.length import audio_frame_count, fit_audio, frame_index_map

    clip = audio_to_clip(audio)
    index = frame_index_map(len(images), audio_frame_count(clip, fps), loop_mode, tail_mode)
    frames = images[torch.from_numpy(index)].clamp_(0.0, 1.0)  # a fresh copy: cheap to keep the IMAGE range
    fitted = fit_audio(clip, len(index), fps, pad_with_silence)
    return frames, clip_to_audio(fitted), len(index)


NODES = [LatentSyncLengthAdjust]
