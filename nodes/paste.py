"""Paste Back (Blend): put the generated faces back into the original frames."""
from __future__ import annotations

from comfy_api.latest import io

from .common import CATEGORY, FacesType, output, require_choice, require_faces, unclamped_frames

BLENDS = ["crop_box", "mouth", "seamless"]
PASTE_CHUNK = 16  # frames converted and blended at a time


def check_paste_inputs(images, generated_faces, faces) -> None:
    from latentsync_core.errors import InputMismatchError

    if len(images) != len(faces):
        raise InputMismatchError(
            f"'images' has {len(images)} frames but 'face_data' was made from a video of {len(faces)} frames: connect "
            "the same frames that went into Face Crop & Align (after the same Length Adjust, if any)")
    frame_size = (int(images.shape[1]), int(images.shape[2]))
    if frame_size != tuple(faces.info.frame_size):
        raise InputMismatchError(
            f"'images' are {frame_size[1]}x{frame_size[0]} but 'face_data' was made from {faces.info.frame_size[1]}x"
            f"{faces.info.frame_size[0]} frames: connect the frames the faces were cropped from")
    r = faces.resolution
    if len(generated_faces) != len(faces) or tuple(generated_faces.shape[1:3]) != (r, r):
        raise InputMismatchError(
            f"'generated_faces' holds {len(generated_faces)} faces of {generated_faces.shape[2]}x{generated_faces.shape[1]} "
            f"but 'face_data' describes {len(faces)} faces of {r}x{r}: connect the Sampler that used this face_data")


class LatentSyncPasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LatentSyncPasteBack", display_name="Paste Back (Blend, LatentSync)", category=CATEGORY,
            description="Warps each generated face back into its frame and blends it in with a soft edge. Frames "
                        "whose face was not changed (no face, silent, past the audio) come back untouched.",
            inputs=[
                io.Image.Input("images", tooltip="The original frames (the ones Face Crop & Align cropped)."),
                io.Image.Input("generated_faces", tooltip="The Sampler's generated_faces."),
                FacesType.Input("face_data", tooltip="From Face Crop & Align: where each face goes back."),
                io.Combo.Input("blend", options=BLENDS, default="crop_box",
                               tooltip="crop_box: paste the whole face crop with a soft edge (official). mouth: change "
                                       "only the regenerated mouth area, feathered, and keep the rest of the face as "
                                       "it was. seamless: the mouth area with a feathered edge plus colour and "
                                       "brightness matching at the edge, so no seam shows (frame pixels outside it "
                                       "are untouched)."),
                io.Float.Input("feather", default=8.0, min=0.0, max=64.0, step=0.5,
                               tooltip="With blend = mouth: width in crop pixels of the soft edge around the mouth "
                                       "area."),
            ],
            outputs=[output(io.Image, "images", "The original frames with the new mouths.")],
        )

    @classmethod
    def execute(cls, images, generated_faces, face_data, blend: str, feather: float) -> io.NodeOutput:
        return io.NodeOutput(paste_faces(images, generated_faces, face_data, blend, feather))


def paste_faces(images, generated_faces, face_data, blend: str, feather: float):
    import numpy as np
    import torch

    from latentsync_core import host
    from latentsync_core.convert import image_to_uint8, uint8_to_image
    from latentsync_core.face import mouth_mask, restore_faces
    from latentsync_core.pipeline import faces_to_tensor

    faces = require_faces(face_data)
    require_choice(blend, BLENDS, "blend")
    check_paste_inputs(images, generated_faces, faces)
    generated_u8 = image_to_uint8(generated_faces)
    # A face identical to its aligned original was not regenerated: leaving its frame alone keeps it
    # bit-identical instead of resampling the face region for nothing.
    changed = np.asarray(faces.info.valid, bool) & (generated_u8 != faces.crops).reshape(len(faces), -1).any(axis=1)
    region = mouth_mask(faces.resolution, faces.mask_shape, feather)[None, None] if blend == "mouth" else None

    out = images.clone()
    index = np.flatnonzero(changed)
    with host.Progress(len(index), "pasting faces") as progress:
        for start in range(0, len(index), PASTE_CHUNK):
            host.check_interrupt()
            part = index[start:start + PASTE_CHUNK]
            new = faces_to_tensor(unclamped_frames(generated_faces, torch.from_numpy(part)))
            if region is not None:
                new = new * region + faces_to_tensor(faces.crops[part]) * (1 - region)
            frames = image_to_uint8(images[torch.from_numpy(part)])
            restored = restore_faces(frames, new, faces.info.affines[part], inplace=True,
                                     blend="seamless" if blend == "seamless" else "crop_box",
                                     mask_shape=faces.mask_shape)
            out[torch.from_numpy(part)] = uint8_to_image(restored)
            progress.update(len(part))
    return out.clamp_(0.0, 1.0)  # IMAGE convention; pasted frames are uint8-exact already, the rest are the inputs


NODES = [LatentSyncPasteBack]
