"""Module-scoped tiny U-Net (seed 3) and tiny SD-shaped VAE (seed 2) shared by the engine and stage tests:
import the two fixtures into a test module to use them."""
from __future__ import annotations

import pytest

from latentsync_core.unet.tiny import tiny_unet
from latentsync_core.vae import load_vae
from latentsync_core.vae.fixture import write_vae_fixture


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_vae")
    write_vae_fixture(root, seed=2)
    return load_vae(root / "vae" / "sd-vae-ft-mse")


@pytest.fixture(scope="module")
def unet():
    return tiny_unet(seed=3)
