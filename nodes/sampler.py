"""LatentSync Sampler: new mouths for the aligned faces, window by window, from the audio."""
from __future__ import annotations

from comfy_api.latest import io

from latentsync_core import host

from .common import (CATEGORY, AudioFeaturesType, FacesType, UnetType, clamped_image, frame_spacing_input,
                     frame_spacing_value, output, require_faces, require_model, sampler_inputs, sampler_options,
                     unet_resolution)


def _require_audio(value):
    from latentsync_core.audio import FrameAudio
    from latentsync_core.errors import LatentSyncError

    if not isinstance(value, FrameAudio):
        got = "nothing" if value is None else f"a {type(value).__name__}"
        raise LatentSyncError(f"the 'audio_features' input received {got}; connect an Audio Features (LatentSync) node")
    return value


def check_inputs(unet_module, faces, audio) -> None:
    """The bad combinations a graph can wire up, each named with the inputs to fix."""
    from latentsync_core.errors import InputMismatchError
    from latentsync_core.pipeline import check_faces_audio

    check_faces_audio(faces, audio)
    trained = unet_resolution(unet_module)
    if trained and trained != faces.resolution:
        raise InputMismatchError(
            f"the U-Net was trained on {trained} px faces but Face Crop & Align aligned them at {faces.resolution} px: "
            f"set Face Crop & Align's resolution to {trained} (or auto, with the U-Net connected)")


class LatentSyncSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LatentSyncSampler", display_name="LatentSync Sampler", category=CATEGORY,
            description="Generates a new lower face for every aligned face, conditioned on the audio: VAE-encodes the "
                        "faces, denoises 16-frame windows with the LatentSync U-Net (progress per step; Stop works "
                        "between steps) and decodes them. Frames without a face, past the end of the audio, or silent "
                        "(with silence gating) keep their original face.",
            inputs=[
                UnetType.Input("unet", tooltip="From Load LatentSync U-Net."),
                io.Vae.Input("vae", tooltip="The Stable Diffusion 1.x VAE LatentSync was trained with: load "
                                            "sd-vae-ft-mse with a VAELoader."),
                FacesType.Input("face_data", tooltip="From Face Crop & Align."),
                AudioFeaturesType.Input("audio_features", tooltip="From Audio Features, for the same frames."),
                *sampler_inputs(),
                frame_spacing_input(),
            ],
            outputs=[
                output(io.Image, "generated_faces",
                       "The faces with their new mouths (R x R), for Paste Back; clamped to 0..1 like every IMAGE."),
                output(io.Latent, "latent",
                       "The denoised latents of every regenerated frame (zeros where a face was kept), unscaled as "
                       "ComfyUI's LATENT convention is: VAE Decode shows the new faces before the mouth mask is "
                       "applied."),
            ],
        )

    @classmethod
    def execute(cls, unet, vae, face_data, audio_features, seed: int, steps: int, cfg: float, scheduler: str,
                deepcache_interval: int, noise_mode: str, silence_gating: bool,
                frame_spacing: str = "auto") -> io.NodeOutput:
        generated, latents = sample_faces(unet, vae, face_data, audio_features, seed, steps, cfg, scheduler,
                                          deepcache_interval, noise_mode, silence_gating, frame_spacing)
        return io.NodeOutput(generated, {"samples": latents})


def sample_faces(unet, vae, face_data, audio_features, seed: int, steps: int, cfg: float, scheduler: str,
                 deepcache_interval: int, noise_mode: str, silence_gating: bool, frame_spacing: str = "auto"):
    from latentsync_core.pipeline import LipsyncEngine, active_frames
    from latentsync_core.vae import as_latent_vae
    from latentsync_core.vae.base import unscale_latents

    handle = require_model(unet, "unet", "unet", "Load LatentSync U-Net")
    faces = require_faces(face_data)
    audio = _require_audio(audio_features)
    latent_vae = as_latent_vae(vae, "vae")
    check_inputs(host.managed_module(handle), faces, audio)
    options = sampler_options(seed, steps, cfg, scheduler, deepcache_interval, noise_mode)
    spacing = frame_spacing_value(frame_spacing)
    # The engine the all-in-one node and the CLI run: the same windows, noise and frames.
    engine = LipsyncEngine(host.load_to_device(handle), latent_vae, resolution=faces.resolution, sampler=options,
                           mask_shape=faces.mask_shape, frame_spacing=spacing)
    generated, latents = engine.sample(faces, audio, active_frames(faces, audio, silence_gating))
    return clamped_image(generated), unscale_latents(latents)


NODES = [LatentSyncSampler]
