"""Face nodes: pick a detector, then detect, track and align the face of every frame."""
from __future__ import annotations

from comfy_api.latest import io

from latentsync_core import host
from .common import (CATEGORY, DetectorSettings, FaceDetectorType, FacesType, UnetType, auto_resolution,
                     fps_input, output, require_choice, require_model)

FACE_CHOICES = ["largest", "index", "nearest_point"]
RESOLUTIONS = ["auto", "256", "512"]
MASK_SHAPES = ["bowl", "jaw"]
TRACK_CHUNK = 32  # frames converted to uint8 and aligned at a time: bounds the copies of a long IMAGE batch


class LatentSyncFaceDetectorLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from latentsync_core.face import DETECTORS

        return io.Schema(
            node_id="LatentSyncFaceDetectorLoader", display_name="Load Face Detector (LatentSync)", category=CATEGORY,
            description="Chooses the face detector and how the face is followed through the video. auto: the "
                        "official insightface detector when its buffalo_l pack (models/insightface/models/buffalo_l) "
                        "and onnxruntime are installed, else bundled (the log says which). bundled: dlib (offline, "
                        "CPU, installed with the pack; its crop geometry approximates the official). insightface: "
                        "the official detector, run exactly as the official pipeline runs it.",
            inputs=[
                io.Combo.Input("backend", options=list(DETECTORS), default="auto",
                               tooltip="auto: insightface when installed, else bundled. bundled: dlib HOG + 68 "
                                       "landmarks, nothing to download. insightface: the detector the official "
                                       "LatentSync uses (buffalo_l pack + onnxruntime)."),
                io.Int.Input("detect_every", default=1, min=1, max=100,
                             tooltip="Run the detector every k frames and follow the landmarks in between (faster "
                                     "for long videos; 1 = every frame)."),
                io.Float.Input("smoothing", default=0.0, min=0.0, max=1.0, step=0.05,
                               tooltip="Extra temporal smoothing of the face position against jitter: 0 = off, 1 = "
                                       "strongest (adapts to movement, so fast turns do not lag)."),
                io.Combo.Input("which_face", options=FACE_CHOICES, default="largest",
                               tooltip="Which face to follow when a frame shows several: the largest, the "
                                       "face_index-th from the left, or the one nearest (point_x, point_y)."),
                io.Int.Input("face_index", default=0, min=0, max=32,
                             tooltip="With which_face = index: 0 is the leftmost face, 1 the next, ..."),
                io.Float.Input("point_x", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="With which_face = nearest_point: horizontal position, 0 = left edge, 1 = right."),
                io.Float.Input("point_y", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="With which_face = nearest_point: vertical position, 0 = top edge, 1 = bottom."),
                io.Boolean.Input("tracking", default=False, optional=True,
                                 tooltip="insightface only: re-detect in a window around the last face instead of "
                                         "the whole frame (faster; off = exactly as the official)."),
            ],
            outputs=[output(FaceDetectorType, "face_detector",
                            "Detector settings for Face Crop & Align and the all-in-one node.")],
        )

    @classmethod
    def execute(cls, backend: str, detect_every: int, smoothing: float, which_face: str, face_index: int,
                point_x: float, point_y: float, tracking: bool = False) -> io.NodeOutput:
        return io.NodeOutput(detector_settings(backend, detect_every, smoothing, which_face, face_index,
                                               point_x, point_y, tracking))


def detector_settings(backend: str, detect_every: int, smoothing: float, which_face: str, face_index: int,
                      point_x: float, point_y: float, tracking: bool = False) -> DetectorSettings:
    from latentsync_core.face import FaceChoice, get_detector

    require_choice(which_face, FACE_CHOICES, "which_face")
    choice = {"largest": "largest", "index": int(face_index), "nearest_point": (point_x, point_y)}[which_face]
    options = {} if backend == "bundled" else {"tracking": bool(tracking)}
    detector = get_detector(backend, device=str(host.get_device()), **options)
    return DetectorSettings(detector, int(detect_every), float(smoothing), FaceChoice.parse(choice))


class LatentSyncFaceCrop(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LatentSyncFaceCrop", display_name="Face Crop & Align (LatentSync)", category=CATEGORY,
            description="Finds the face in every frame and aligns it into LatentSync's square crop (preview them on "
                        "the faces output). Frames without a face are flagged and later left unchanged.",
            inputs=[
                io.Image.Input("images", tooltip="The video frames (GetVideoComponents' images)."),
                FaceDetectorType.Input("face_detector", tooltip="From Load Face Detector (LatentSync)."),
                fps_input(),
                io.Combo.Input("resolution", options=RESOLUTIONS, default="auto",
                               tooltip="Crop size in pixels. auto: the size the connected U-Net was trained at "
                                       "(LatentSync 1.5: 256, 1.6: 512)."),
                io.Combo.Input("mask_shape", options=MASK_SHAPES, default="bowl",
                               tooltip="Area to regenerate. bowl: the official lower-face mask (keeps the nose). "
                                       "jaw: only below the nose line."),
                UnetType.Input("unet", optional=True,
                               tooltip="The U-Net the faces are for; needed when resolution is auto."),
            ],
            outputs=[
                output(io.Image, "faces", "The aligned face crops (R x R), for preview."),
                output(FacesType, "face_data",
                       "Crops, alignment matrices, boxes, valid flags and frame rate, for the Sampler and Paste Back."),
                output(io.Mask, "mouth_mask", "The area of each crop the model regenerates (1 = regenerated)."),
            ],
        )

    @classmethod
    def execute(cls, images, face_detector, fps: float, resolution: str, mask_shape: str,
                unet=None) -> io.NodeOutput:
        return io.NodeOutput(*crop_faces(images, face_detector, fps, resolution, mask_shape, unet))


def crop_faces(images, face_detector: DetectorSettings, fps: float, resolution: str, mask_shape: str, unet=None):
    from latentsync_core.convert import uint8_to_image
    from latentsync_core.errors import LatentSyncError
    from latentsync_core.pipeline import crop_faces as align_video

    if not isinstance(face_detector, DetectorSettings):
        raise LatentSyncError("the 'face_detector' input must come from a Load Face Detector (LatentSync) node")
    require_choice(resolution, RESOLUTIONS, "resolution")
    require_choice(mask_shape, MASK_SHAPES, "mask_shape")
    if resolution == "auto":
        if unet is None:
            raise LatentSyncError("resolution 'auto' takes the size from the U-Net: connect the U-Net loader to "
                                  "Face Crop & Align's unet input, or choose 256 or 512")
        size = auto_resolution(host.managed_module(require_model(unet, "unet", "unet", "Load LatentSync U-Net")))
    else:
        size = int(resolution)

    # The core's one track-then-align (each IMAGE chunk converted to uint8 once); fps kept exact.
    faces = align_video(images, face_detector.detector, size, fps, mask_shape=mask_shape,
                        every_k=face_detector.every_k, smoothing=face_detector.smoothing,
                        face_choice=face_detector.face_choice, chunk_size=TRACK_CHUNK)
    return (uint8_to_image(faces.crops), faces, faces.regenerated_masks())


NODES = [LatentSyncFaceDetectorLoader, LatentSyncFaceCrop]
