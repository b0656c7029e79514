"""SCRFD face detection (insightface ``det_10g.onnx``) on onnxruntime, without the insightface package.

Reproduces what insightface's ``RetinaFace``/SCRFD wrapper does for a single detection size, because
the LatentSync models were trained on crops found that way:

* letterbox: scale the frame to fit ``input_size`` keeping its aspect ratio (``int`` truncation of the
  scaled side, OpenCV bilinear resize), paste it at the top-left of a black canvas;
* blob: channels swapped (the model sees the frame's channels reversed), ``(x - 127.5) / 128``, NCHW;
* outputs: for strides 8, 16, 32 a score ``[K*2, 1]``, box distances ``[K*2, 4]`` and keypoint
  distances ``[K*2, 10]`` (K = cells of the stride's grid, 2 anchors per cell, row-major), in
  units of the stride;
* decode: anchor centre = cell ``(x, y) * stride``; box = centre -/+ distances (left, top, right,
  bottom); keypoints = centre + (dx, dy) pairs; keep scores ``>= threshold``;
* back to frame pixels by dividing by the letterbox scale; greedy NMS at IoU 0.4 with insightface's
  ``+1`` pixel area convention, candidates in descending score order.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

STRIDES = (8, 16, 32)
NUM_ANCHORS = 2
INPUT_MEAN, INPUT_STD = 127.5, 128.0
NMS_THRESHOLD = 0.4


@dataclass
class Letterbox:
    image: np.ndarray  # uint8 [H_in, W_in, 3]
    scale: float       # frame pixels * scale = input pixels


def letterbox(frame: np.ndarray, input_size: tuple[int, int]) -> Letterbox:
    """Fit ``frame`` (uint8 ``[H, W, 3]``) into ``input_size`` ``(width, height)`` at the top-left."""
    in_w, in_h = input_size
    h, w = frame.shape[:2]
    if h / w > in_h / in_w:
        new_h = in_h
        new_w = int(new_h / (h / w))
    else:
        new_w = in_w
        new_h = int(new_w * (h / w))
    canvas = np.zeros((in_h, in_w, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(frame, (new_w, new_h))
    return Letterbox(canvas, new_h / h)


def to_blob(image: np.ndarray, mean: float, std: float) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> float32 ``[1, 3, H, W]``: channel order reversed, ``(x - mean) / std``."""
    swapped = image[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(((swapped - np.float32(mean)) * np.float32(1.0 / std)).transpose(2, 0, 1)[None])


def anchor_centers(height: int, width: int, stride: int) -> np.ndarray:
    """``[height * width * NUM_ANCHORS, 2]`` (x, y) centres, row-major cells, anchors of a cell adjacent."""
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    centers = (np.stack([xs, ys], axis=-1).reshape(-1, 2) * stride).astype(np.float32)
    return np.repeat(centers, NUM_ANCHORS, axis=0)


def decode_stride(scores: np.ndarray, boxes: np.ndarray, kps: np.ndarray, stride: int,
                  input_hw: tuple[int, int], threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs of one stride -> (scores [n], boxes [n, 4], keypoints [n, 5, 2]) above ``threshold``,
    in input pixels."""
    centers = anchor_centers(input_hw[0] // stride, input_hw[1] // stride, stride)
    scores = np.asarray(scores, np.float32).reshape(-1)
    dist = np.asarray(boxes, np.float32).reshape(-1, 4) * stride
    kdist = np.asarray(kps, np.float32).reshape(-1, 10) * stride
    if not (len(scores) == len(dist) == len(kdist) == len(centers)):
        raise ValueError(f"SCRFD stride {stride}: expected {len(centers)} anchors for a {input_hw} input, got "
                         f"scores {len(scores)}, boxes {len(dist)}, keypoints {len(kdist)}")
    keep = scores >= threshold
    c, d, k = centers[keep], dist[keep], kdist[keep]
    decoded = np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], axis=-1)
    points = k.reshape(-1, 5, 2) + c[:, None, :]
    return scores[keep], decoded, points


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = NMS_THRESHOLD) -> list[int]:
    """Indices kept by greedy NMS (highest score first; areas with insightface's +1 convention)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")[::-1]
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= threshold]
    return keep


def decode_outputs(outputs: list[np.ndarray], input_hw: tuple[int, int], scale: float, threshold: float,
                   nms_threshold: float = NMS_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """The 9 raw outputs (scores x3, boxes x3, keypoints x3, strides 8/16/32) -> ``[n, 5]`` (box, score)
    and ``[n, 5, 2]`` keypoints in frame pixels, after NMS, highest score first."""
    if len(outputs) != 3 * len(STRIDES):
        raise ValueError(f"SCRFD with keypoints has {3 * len(STRIDES)} outputs, this model has {len(outputs)}")
    n = len(STRIDES)
    # A model exported with a batch axis gives [1, K, C]; take the one image.
    outputs = [o[0] if np.ndim(o) == 3 else o for o in outputs]
    parts = [decode_stride(outputs[i], outputs[i + n], outputs[i + 2 * n], s, input_hw, threshold)
             for i, s in enumerate(STRIDES)]
    scores = np.concatenate([p[0] for p in parts])
    if scores.size == 0:
        return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
    boxes = np.concatenate([p[1] for p in parts]) / scale
    kps = np.concatenate([p[2] for p in parts]) / scale
    order = np.argsort(scores, kind="stable")[::-1]
    dets = np.hstack([boxes, scores[:, None]]).astype(np.float32)[order]
    kps = kps[order].astype(np.float32)
    keep = nms(dets[:, :4], dets[:, 4], nms_threshold)
    return dets[keep], kps[keep]


class SCRFD:
    """``det_10g.onnx`` on an onnxruntime session; `detect` takes a uint8 ``[H, W, 3]`` frame."""

    def __init__(self, session, det_size: int = 640, threshold: float = 0.5):
        self.session = session
        cfg = session.get_inputs()[0]
        self.input_name = cfg.name
        self.output_names = [o.name for o in session.get_outputs()]
        if len(self.output_names) != 9:
            raise ValueError(f"expected the SCRFD detector with keypoints (9 outputs), the model has "
                             f"{len(self.output_names)}: not det_10g.onnx?")
        h, w = cfg.shape[2:4]
        # A model with a fixed input size must be fed that size; det_10g's is dynamic.
        self.input_size = (w, h) if isinstance(h, int) and isinstance(w, int) else (int(det_size), int(det_size))
        self.threshold = float(threshold)

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        box = letterbox(frame, self.input_size)
        blob = to_blob(box.image, INPUT_MEAN, INPUT_STD)
        outputs = self.session.run(self.output_names, {self.input_name: blob})
        return decode_outputs(outputs, (self.input_size[1], self.input_size[0]), box.scale, self.threshold)
