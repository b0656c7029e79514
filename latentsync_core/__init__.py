"""LatentSync lip-sync: models, audio features, faces, sampler and pipeline, usable without ComfyUI."""
__version__ = "0.1.0"
