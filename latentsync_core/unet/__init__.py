"""Our own LatentSync U-Net: loads the official 1.5 / 1.6 checkpoints unchanged (see model.py for the call contract)."""
from .config import DEFAULT_CONFIG, infer_config, normalize_config
from .deepcache import DeepCacheState
from .loader import load_unet
from .model import LatentSyncUNet

__all__ = ["DEFAULT_CONFIG", "DeepCacheState", "LatentSyncUNet", "infer_config", "load_unet", "normalize_config"]
