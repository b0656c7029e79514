"""Faces: detect and track, align into LatentSync's crop, paste generated faces back, mouth masks.

Typical use (a long video streams through in chunks with the same tracker and aligner)::

    track = detect_faces(frames, "auto")                   # FaceTrack: points, boxes, valid
    crops, info = crop_track(frames, track, 512)           # crops [N,R,R,3] uint8, FaceCropInfo
    ...                                                    # generate faces [N,3,R,R] in [-1, 1]
    out = restore_faces(frames, faces, info.affines, info.valid)   # blend="seamless": see face.blend
"""
from .align import FaceAligner, FaceCropInfo, align_faces, crop_track
from .detect import DETECTORS, FaceDetector, get_detector
from .geometry import crop_size, face_template
from .mask import mouth_mask
from .restore import restore_faces
from .track import FaceChoice, FaceTrack, FaceTracker, detect_faces

__all__ = [
    "DETECTORS", "FaceAligner", "FaceChoice", "FaceCropInfo", "FaceDetector", "FaceTrack", "FaceTracker",
    "align_faces", "crop_size", "crop_track", "detect_faces", "face_template", "get_detector", "mouth_mask",
    "restore_faces",
]
