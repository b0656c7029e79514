"""Face nodes: pick a detector, then detect, track and align the face of every frame."""
from __future__ import annotations

from latentsync_core import host

from .common import (CATEGORY, FACE_DETECTOR, FACES, FPS_INPUT, UNET, AlignedFaces, DetectorSettings,
                     auto_resolution, require_model)

FACE_CHOICES = ["largest", "index", "nearest_point"]
RESOLUTIONS = ["auto", "256", "512"]
MASK_SHAPES = ["bowl", "jaw"]
TRACK_CHUNK = 32  # frames converted to uint8 and aligned at a time: bounds the copies of a long IMAGE batch


class LatentSyncFaceDetectorLoader:
    DESCRIPTION = ("Chooses the face detector and how the face is followed through the video. bundled: dlib "
                   "(offline, CPU, installed with the pack); insightface: the official detector (buffalo_l pack "
                   "in models/insightface, needs the insightface and onnxruntime packages).")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (FACE_DETECTOR,)
    RETURN_NAMES = ("face_detector",)
    OUTPUT_TOOLTIPS = ("Detector settings for Face Crop & Align and the all-in-one node.",)

    @classmethod
    def INPUT_TYPES(cls):
        from latentsync_core.face import DETECTORS

        return {"required": {
            "backend": (list(DETECTORS), {"default": "bundled", "tooltip":
                                          "bundled: dlib HOG + 68 landmarks, nothing to download. insightface: "
                                          "the detector the official LatentSync uses."}),
            "detect_every": ("INT", {"default": 1, "min": 1, "max": 100, "tooltip":
                                     "Run the detector every k frames and follow the landmarks in between "
                                     "(faster for long videos; 1 = every frame)."}),
            "smoothing": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                                    "Extra temporal smoothing of the face position against jitter: 0 = off, "
                                    "1 = strongest (adapts to movement, so fast turns do not lag)."}),
            "which_face": (FACE_CHOICES, {"default": "largest", "tooltip":
                                          "Which face to follow when a frame shows several: the largest, the "
                                          "face_index-th from the left, or the one nearest (point_x, point_y)."}),
            "face_index": ("INT", {"default": 0, "min": 0, "max": 32, "tooltip":
                                   "With which_face = index: 0 is the leftmost face, 1 the next, ..."}),
            "point_x": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                  "With which_face = nearest_point: horizontal position, 0 = left edge, 1 = right."}),
            "point_y": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                  "With which_face = nearest_point: vertical position, 0 = top edge, 1 = bottom."}),
        }}

    def load(self, backend: str, detect_every: int, smoothing: float, which_face: str, face_index: int,
             point_x: float, point_y: float):
        from latentsync_core.face import FaceChoice, get_detector

        choice = {"largest": "largest", "index": int(face_index), "nearest_point": (point_x, point_y)}[which_face]
        detector = get_detector(backend, device=str(host.get_device()))
        return (DetectorSettings(detector, int(detect_every), float(smoothing), FaceChoice.parse(choice)),)


class LatentSyncFaceCrop:
    DESCRIPTION = ("Finds the face in every frame and aligns it into LatentSync's square crop (preview them on "
                   "the faces output). Frames without a face are flagged and later left unchanged.")
    CATEGORY = CATEGORY
    FUNCTION = "crop"
    RETURN_TYPES = ("IMAGE", FACES, "MASK")
    RETURN_NAMES = ("faces", "face_data", "mouth_mask")
    OUTPUT_TOOLTIPS = (
        "The aligned face crops (R x R), for preview.",
        "Crops, alignment matrices, boxes, valid flags and frame rate, for the Sampler and Paste Back.",
        "The area of each crop the model regenerates (1 = regenerated).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The video frames (GetVideoComponents' images)."}),
                "face_detector": (FACE_DETECTOR, {"tooltip": "From Load Face Detector (LatentSync)."}),
                "fps": FPS_INPUT,
                "resolution": (RESOLUTIONS, {"default": "auto", "tooltip":
                                             "Crop size in pixels. auto: the size the connected U-Net was trained "
                                             "at (LatentSync 1.5: 256, 1.6: 512)."}),
                "mask_shape": (MASK_SHAPES, {"default": "bowl", "tooltip":
                                             "Area to regenerate. bowl: the official lower-face mask (keeps the "
                                             "nose). jaw: only below the nose line."}),
            },
            "optional": {
                "unet": (UNET, {"tooltip": "The U-Net the faces are for; needed when resolution is auto."}),
            },
        }

    def crop(self, images, face_detector: DetectorSettings, fps: float, resolution: str, mask_shape: str, unet=None):
        import numpy as np
        import torch

        from latentsync_core.convert import uint8_to_image
        from latentsync_core.errors import LatentSyncError
        from latentsync_core.face import FaceAligner, FaceCropInfo, FaceTracker, crop_track, mouth_mask

        if not isinstance(face_detector, DetectorSettings):
            raise LatentSyncError("the 'face_detector' input must come from a Load Face Detector (LatentSync) node")
        if resolution == "auto":
            if unet is None:
                raise LatentSyncError("resolution 'auto' takes the size from the U-Net: connect the U-Net loader to "
                                      "Face Crop & Align's unet input, or choose 256 or 512")
            size = auto_resolution(host.managed_module(require_model(unet, "unet", "unet", "Load LatentSync U-Net")))
        else:
            size = int(resolution)

        tracker = FaceTracker(face_detector.detector, face_detector.every_k, face_detector.smoothing,
                              face_detector.face_choice)
        aligner = FaceAligner(size)
        crops, infos = [], []
        with host.Progress(len(images), "aligning faces") as progress:
            for start in range(0, len(images), TRACK_CHUNK):
                host.check_interrupt()
                chunk = images[start:start + TRACK_CHUNK]
                track = tracker.process(chunk)
                chunk_crops, info = crop_track(chunk, track, size, aligner=aligner)
                crops.append(chunk_crops)
                infos.append(info)
                progress.update(len(chunk))
        tracker.finish()

        first = infos[0]
        info = FaceCropInfo(np.concatenate([i.affines for i in infos]), np.concatenate([i.boxes for i in infos]),
                            np.concatenate([i.valid for i in infos]), first.resolution, first.crop_size,
                            first.frame_size)
        crops = np.concatenate(crops)
        mask = mouth_mask(size, mask_shape)
        faces = AlignedFaces(crops, info, mask, mask_shape, float(fps))
        masks = mask.expand(len(crops), -1, -1).clone()
        masks[torch.from_numpy(~info.valid)] = 0.0  # frames without a face are left as they are
        return (uint8_to_image(crops), faces, masks)


NODE_CLASS_MAPPINGS = {
    "LatentSyncFaceDetectorLoader": LatentSyncFaceDetectorLoader,
    "LatentSyncFaceCrop": LatentSyncFaceCrop,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LatentSyncFaceDetectorLoader": "Load Face Detector (LatentSync)",
    "LatentSyncFaceCrop": "Face Crop & Align (LatentSync)",
}
