"""LatentSync Sampler: new mouths for the aligned faces, window by window, from the audio."""
from __future__ import annotations

from latentsync_core import host

from .common import (AUDIO_FEATURES, CATEGORY, FACES, UNET, check_fps_match, require_faces, require_model,
                     sampler_inputs, sampler_options, unet_resolution)


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

    check_fps_match(faces.fps, audio.fps)
    if audio.num_frames != len(faces):
        raise InputMismatchError(
            f"Audio Features covers {audio.num_frames} frames but face_data holds {len(faces)}: connect the same "
            "images to Audio Features' images input as to Face Crop & Align (and set its frame_count to 0)")
    trained = unet_resolution(unet_module)
    if trained and trained != faces.resolution:
        raise InputMismatchError(
            f"the U-Net was trained on {trained} px faces but Face Crop & Align aligned them at {faces.resolution} px: "
            f"set Face Crop & Align's resolution to {trained} (or auto, with the U-Net connected)")


def active_frames(faces, audio, silence_gating: bool):
    """Frames that get a new mouth: a face was found, the audio covers them, and (gated) they are not silent."""
    import numpy as np

    from latentsync_core.errors import LatentSyncError

    active = np.asarray(faces.info.valid, dtype=bool).copy()
    active[audio.frames_with_audio:] = False
    if silence_gating:
        if audio.silent is None:
            raise LatentSyncError("silence_gating needs the silent-frame flags: turn on silence_detection in the "
                                  "Audio Features node, or turn silence_gating off")
        active &= ~audio.silent.numpy().astype(bool)
    return active


class LatentSyncSampler:
    DESCRIPTION = ("Generates a new lower face for every aligned face, conditioned on the audio: VAE-encodes the "
                   "faces, denoises 16-frame windows with the LatentSync U-Net (progress per step; Stop works "
                   "between steps) and decodes them. Frames without a face, past the end of the audio, or silent "
                   "(with silence gating) keep their original face.")
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE", "LATENT")
    RETURN_NAMES = ("generated_faces", "latent")
    OUTPUT_TOOLTIPS = ("The faces with their new mouths (R x R), for Paste Back (not clipped: values may stray "
                       "slightly outside 0..1, as VAE output does).",
                       "The denoised latents of every frame (zeros where a face was kept), for advanced use.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "unet": (UNET, {"tooltip": "From Load LatentSync U-Net."}),
            "vae": ("VAE", {"tooltip": "The Stable Diffusion 1.x VAE LatentSync was trained with: load "
                                       "sd-vae-ft-mse with a VAELoader."}),
            "face_data": (FACES, {"tooltip": "From Face Crop & Align."}),
            "audio_features": (AUDIO_FEATURES, {"tooltip": "From Audio Features, for the same frames."}),
            **sampler_inputs(),
        }}

    def sample(self, unet, vae, face_data, audio_features, seed: int, steps: int, cfg: float, scheduler: str,
               deepcache_interval: int, noise_mode: str, silence_gating: bool):
        import numpy as np
        import torch

        from latentsync_core.convert import uint8_to_image
        from latentsync_core.pipeline import (LipsyncOptions, decode_faces, encode_faces, keep_mask_from_mouth,
                                              sample_window)
        from latentsync_core.pipeline.stages import vae_generator
        from latentsync_core.sampler import NoiseSource, plan_windows
        from latentsync_core.vae import SPATIAL_FACTOR, as_latent_vae

        handle = require_model(unet, "unet", "unet", "Load LatentSync U-Net")
        faces = require_faces(face_data)
        audio = _require_audio(audio_features)
        latent_vae = as_latent_vae(vae, "vae")
        check_inputs(host.managed_module(handle), faces, audio)
        options = sampler_options(seed, steps, cfg, scheduler, deepcache_interval, noise_mode)

        active = active_frames(faces, audio, silence_gating)
        # The streaming pipeline's window rule, so the graph and the all-in-one node agree frame for frame.
        windows = plan_windows(active, options.window, LipsyncOptions().max_span)
        net = host.load_to_device(handle)
        weights = next(net.parameters())
        size = faces.resolution // SPATIAL_FACTOR
        keep = keep_mask_from_mouth(faces.mouth_mask)
        noise = NoiseSource(options.noise_mode, options.seed, (size, size))
        vae_draws = vae_generator(options.seed)

        generated = uint8_to_image(faces.crops)
        latents_out = torch.zeros((len(faces), 4, size, size))
        with host.Progress(len(windows) * options.steps, "LatentSync") as progress:
            for number, window in enumerate(windows):
                host.check_interrupt()
                conditioning = encode_faces(latent_vae, faces.crops[window], keep, sample=options.sample_latents,
                                            generator=vae_draws, device=weights.device, dtype=weights.dtype)
                chunks = torch.cat([audio.chunk_range(i, i + 1) for i in window])
                latents = sample_window(net, conditioning, chunks, noise.for_window(number, window), options,
                                        on_step=lambda done, total: progress.update(1))
                new_faces = decode_faces(latent_vae, latents, conditioning)
                index = torch.from_numpy(np.asarray(window))
                # Not clamped: Paste Back resamples the faces before clipping, as the official restore does, so the
                # graph gives the all-in-one node's frames; previews and savers clip to 0..1 themselves.
                generated[index] = ((new_faces.float().cpu() + 1) / 2).permute(0, 2, 3, 1)
                latents_out[index] = latents[0].permute(1, 0, 2, 3).float().cpu()
        return (generated, {"samples": latents_out})


NODE_CLASS_MAPPINGS = {"LatentSyncSampler": LatentSyncSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"LatentSyncSampler": "LatentSync Sampler"}
