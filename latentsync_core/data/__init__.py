"""Training data: dataset preparation (scene cuts, segments, aligned faces, sync/quality filters) and the manifest.

Entry points: `prepare_dataset(input_dir, output_dir, PrepareOptions(...), syncnet=..., quality=...)`
and `load_clips(manifest_or_folder)`.
"""
from .manifest import MANIFEST_NAME, VIDEO_EXTENSIONS, ClipRecord, DatasetError, find_videos, load_clips, read_records
from .prepare import PrepareOptions, PrepareReport, QualityScorer, plan_segments, prepare_dataset, resampled_indices
from .scenes import SceneOptions, cuts_from_scores, detect_scene_cuts, scene_spans

__all__ = [
    "MANIFEST_NAME", "VIDEO_EXTENSIONS", "ClipRecord", "DatasetError", "PrepareOptions", "PrepareReport",
    "QualityScorer", "SceneOptions", "cuts_from_scores", "detect_scene_cuts", "find_videos", "load_clips",
    "plan_segments", "prepare_dataset", "read_records", "resampled_indices", "scene_spans",
]
