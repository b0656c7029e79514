"""Test double of the comfy.model_management functions the pack calls."""
import torch

interrupt_processing = False
calls = []


class InterruptProcessingException(Exception):
    pass


def get_torch_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def should_use_fp16(device=None, *args, **kwargs):
    return False


def should_use_bf16(device=None, *args, **kwargs):
    return True


def soft_empty_cache(force=False):
    calls.append("soft_empty_cache")


def throw_exception_if_processing_interrupted():
    global interrupt_processing
    if interrupt_processing:
        interrupt_processing = False
        raise InterruptProcessingException()
