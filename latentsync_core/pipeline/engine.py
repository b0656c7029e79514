"""The lip-sync engine: the one place where aligned faces + audio chunks become new faces, window by window.

Both the graph (Face Crop -> Sampler -> Paste Back) and the streaming runner (CLI, all-in-one node)
feed this object; it owns the window plan (16-frame windows over the active frames, training-rate
spacing, max span), the initial noise (sampler.noise.NoiseSource), the VAE posterior draws, the
DeepCache state (per window, inside sampler.denoise), silence/face gating and batching of several
windows per U-Net call (halved on out-of-memory). Same inputs and seed -> same frames on both paths.

Driving it::

    from latentsync_core.pipeline import LipsyncEngine, SamplerOptions, load_models
    models = load_models(device="cuda", dtype="auto")            # fp16 U-Net and VAE on GPUs
    engine = LipsyncEngine(models.unet, models.vae, resolution=models.resolution,
                           sampler=SamplerOptions(steps=20, guidance=1.5, deepcache_interval=3),
                           batch="auto", compile=False)         # draft: SamplerOptions(scheduler="dpmpp_2m", steps=4)
    # whole files, streaming, bounded memory (what the CLI runs):
    lipsync(video, audio, out, unet=models.unet, vae=models.vae, whisper=models.whisper, engine=engine)
    # frames in memory (what the Sampler node runs): faces = crop_faces(...), audio = audio_features_for_video(...)
    images, latents = engine.sample(faces, audio, active_frames(faces, audio, silence_gating=False))
    # a frame source, output frame by frame (what `lipsync` runs): engine.stream(source, total, chunks_of, detector)

Stages are charged to latentsync_core.profile (vae_encode, unet, vae_decode, restore, detect, align, decode).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .. import host
from ..errors import InputMismatchError, LatentSyncError
from ..face import mouth_mask
from ..media.rate import exact_fps
from ..profile import stage
from ..sampler import NoiseSource, WindowBuilder, denoise, frame_stride, plan_windows
from ..vae import SPATIAL_FACTOR, as_latent_vae
from .batching import auto_batch, is_out_of_memory
from .stages import FaceLatents, SamplerOptions, decode_faces, encode_faces, vae_generator

log = logging.getLogger("latentsync")

DEFAULT_MAX_SPAN = 32

# A window's result: (its frame indices, new faces as IMAGE float [F, R, R, 3] (0..1, not clipped),
# latents [F, 4, h, w] float32 CPU).
WindowResult = tuple[list[int], torch.Tensor, torch.Tensor]


def face_image(faces: torch.Tensor) -> torch.Tensor:
    """Decoded faces [F, 3, R, R] in [-1, 1] -> the IMAGE the graph carries, [F, R, R, 3] float32 0..1.

    Not clamped: restoring resamples the faces before clipping, as the official restore does. The stream
    restores from this same value, so the graph and the stream paste identical faces.
    """
    return ((faces.float().cpu() + 1) / 2).permute(0, 2, 3, 1)


class LipsyncEngine:
    """U-Net + VAE + how to run them over a video's windows. Per-video state lives in each call.

    resolution: face crop size; sampler: SamplerOptions (steps, guidance, DeepCache, scheduler - a draft
    run is e.g. SamplerOptions(scheduler="dpmpp_2m", steps=4) with a TAESD VAE -, noise mode, seed);
    frame_spacing: "auto" / "off" / stride (sampler.windows); batch: windows per U-Net call or "auto";
    compile: torch.compile the U-Net; channels_last: convert the U-Net and VAE convolutions to NHWC (None:
    only on CUDA). It changes the modules in place, so it is off unless asked (the CLI asks for auto).
    The device and dtype are the U-Net's (load_models: fp16 on fast GPUs, the VAE in the same dtype).
    """

    def __init__(self, unet: Any, vae: Any, *, resolution: int, sampler: SamplerOptions | None = None,
                 mask_shape: str = "bowl", max_span: int = DEFAULT_MAX_SPAN, frame_spacing: Any = "auto",
                 batch: int | str = 1, compile: bool = False, channels_last: bool | None = False):
        self.unet = unet
        self.vae = as_latent_vae(vae)
        self.sampler = sampler or SamplerOptions()
        self.resolution = int(resolution)
        if self.resolution % SPATIAL_FACTOR:
            raise InputMismatchError(f"the face resolution must be a multiple of {SPATIAL_FACTOR}, got {resolution}")
        self.mask_shape = mask_shape
        self.keep_mask = 1.0 - mouth_mask(self.resolution, mask_shape)
        self.max_span = int(max_span)
        self.frame_spacing = frame_spacing
        frame_stride(25, frame_spacing)  # validate now, not at the first window
        params = next(unet.parameters())
        self.device, self.dtype = params.device, params.dtype
        if batch == "auto":
            batch = auto_batch(self.device, self.resolution, self.dtype)
        if int(batch) < 1:
            raise ValueError(f"batch must be >= 1 windows or 'auto', got {batch!r}")
        self.batch = int(batch)
        if channels_last if channels_last is not None else self.device.type == "cuda":
            self._to_channels_last()
        self.net = torch.compile(unet, dynamic=False) if compile else unet

    @classmethod
    def from_options(cls, unet: Any, vae: Any, options: Any) -> "LipsyncEngine":
        """From a pipeline.LipsyncOptions (resolution must be set)."""
        if options.resolution is None:
            raise ValueError("the engine needs options.resolution (the face crop size)")
        return cls(unet, vae, resolution=options.resolution, sampler=options.sampler, mask_shape=options.mask_shape,
                   max_span=options.max_span, frame_spacing=options.frame_spacing, batch=options.batch,
                   compile=options.compile, channels_last=options.channels_last)

    def _to_channels_last(self) -> None:
        # The 2-D convolutions (VAE, and the U-Net's per-frame convs) run faster NHWC on tensor cores.
        for module in [self.unet, *[m for m in vars(self.vae).values() if isinstance(m, torch.nn.Module)]]:
            module.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ planning
    def stride(self, fps) -> int:
        return frame_stride(exact_fps(fps), self.frame_spacing)

    def window_builder(self, fps) -> WindowBuilder:
        return WindowBuilder(self.sampler.window, self.max_span, self.stride(fps))

    def plan(self, active: Sequence[bool], fps) -> list[list[int]]:
        """The windows over a whole sequence's active frames (what the stream forms incrementally)."""
        return plan_windows(active, self.sampler.window, self.max_span, self.stride(fps))

    # ------------------------------------------------------------------ running windows
    def runner(self, crops_of: Callable[[list[int]], np.ndarray], audio_of: Callable[[list[int]], torch.Tensor | None],
               progress: host.Progress | None = None) -> "WindowRunner":
        return WindowRunner(self, crops_of, audio_of, progress)

    def sample(self, faces: Any, audio: Any, active: Sequence[bool] | None = None, *,
               on_window: Callable[[int, list[int]], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The Sampler node's work: pipeline.AlignedFaces + audio.FrameAudio -> (IMAGE [N, R, R, 3] with the
        regenerated faces (the original crops elsewhere), latents [N, 4, h, w] (zeros where not regenerated))."""
        from ..convert import uint8_to_image

        check_faces_audio(faces, audio)
        if faces.resolution != self.resolution:
            raise InputMismatchError(f"the faces are {faces.resolution} px but the engine runs {self.resolution} px")
        active = np.ones(len(faces), bool) if active is None else np.asarray(active, bool)
        windows = self.plan(active, faces.fps)
        size = self.resolution // SPATIAL_FACTOR
        generated = uint8_to_image(faces.crops)
        latents_out = torch.zeros((len(faces), 4, size, size))

        def chunks_of(window: list[int]) -> torch.Tensor:
            return torch.cat([audio.chunk_range(i, i + 1) for i in window])

        with host.Progress(len(windows) * self.sampler.steps, "LatentSync") as progress:
            runner = self.runner(lambda w: faces.crops[w], chunks_of, progress)
            for window, image, latents in runner.run_all(windows):
                index = torch.from_numpy(np.asarray(window))
                generated[index] = image
                latents_out[index] = latents
                if on_window is not None:
                    on_window(runner.windows_done, window)
        return generated, latents_out

    def stream(self, source: Any, total: int, audio_chunks: Callable[[list[int]], torch.Tensor], detector: Any,
               **kw) -> Iterator[np.ndarray]:
        """Output frames of a pipeline.FrameSource, in order (see pipeline.streaming.stream_frames)."""
        from .streaming import stream_frames

        return stream_frames(self, source, total, audio_chunks, detector, **kw)


class WindowRunner:
    """Runs windows in order for one video: noise, VAE draws and window numbers follow the order given.

    Closed windows are queued and run as one U-Net batch once `engine.batch` equal-length windows are
    waiting (or a window of another length arrives, or at `flush`): a pure function of the window
    sequence, so the graph and the stream batch the same windows together.
    """

    def __init__(self, engine: LipsyncEngine, crops_of, audio_of, progress: host.Progress | None):
        self.engine = engine
        self.crops_of, self.audio_of = crops_of, audio_of
        self.progress = progress
        opts = engine.sampler
        size = engine.resolution // SPATIAL_FACTOR
        # device/dtype matter only to noise_mode "official", which draws where the official does
        self.noise = NoiseSource(opts.noise_mode, opts.seed, (size, size), device=engine.device, dtype=engine.dtype)
        self.vae_draws = vae_generator(opts.seed)
        self.windows_done = 0
        self.queue: list[list[int]] = []

    @property
    def queued_first(self) -> int | None:
        """First frame of the earliest window not yet run (its frames must stay in memory)."""
        return self.queue[0][0] if self.queue else None

    def add(self, window: list[int]) -> list[WindowResult]:
        done = []
        if self.queue and len(self.queue[0]) != len(window):
            done += self._run_queue()
        self.queue.append(window)
        if len(self.queue) >= self.engine.batch:
            done += self._run_queue()
        return done

    def flush(self) -> list[WindowResult]:
        return self._run_queue() if self.queue else []

    def run_all(self, windows: Sequence[list[int]]) -> Iterator[WindowResult]:
        for window in windows:
            yield from self.add(window)
        yield from self.flush()

    # ------------------------------------------------------------------
    def _run_queue(self) -> list[WindowResult]:
        group, self.queue = self.queue, []
        engine, opts = self.engine, self.engine.sampler
        host.check_interrupt()
        # One encode per window, in window order: the posterior draws come out as in an unbatched run.
        conds = [encode_faces(engine.vae, self.crops_of(w), engine.keep_mask, sample=opts.sample_latents,
                              generator=self.vae_draws, device=engine.device, dtype=engine.dtype) for w in group]
        noises = [self.noise.for_window(self.windows_done + k, w) for k, w in enumerate(group)]
        audios = [self.audio_of(w) for w in group]
        with stage("unet"):
            latents = self._denoise(conds, noises, audios)
        results = []
        for window, cond, lat in zip(group, conds, latents):
            results.append((window, face_image(decode_faces(engine.vae, lat, cond)),
                            lat[0].permute(1, 0, 2, 3).float().cpu()))
        self.windows_done += len(group)
        return results

    def _denoise(self, conds: list[FaceLatents], noises: list[torch.Tensor], audios: list) -> list[torch.Tensor]:
        """Latents [1, 4, F, h, w] per window; a batch that runs out of memory is halved and retried."""
        try:
            return self._denoise_batch(conds, noises, audios)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
            if not is_out_of_memory(exc) or len(conds) == 1:
                raise
            half = len(conds) // 2
            self.engine.batch = max(1, half)
            log.warning("out of GPU memory with %d windows per U-Net call; retrying with %d", len(conds), half)
            del exc
            host.empty_cache()
            return (self._denoise(conds[:half], noises[:half], audios[:half])
                    + self._denoise(conds[half:], noises[half:], audios[half:]))

    def _denoise_batch(self, conds: list[FaceLatents], noises: list[torch.Tensor], audios: list) -> list[torch.Tensor]:
        engine, opts = self.engine, self.engine.sampler
        device, dtype = engine.device, engine.dtype
        cat = lambda ts: torch.cat([t.to(device, dtype) for t in ts])  # noqa: E731
        audio = None
        if audios[0] is not None:
            for a, c in zip(audios, conds):
                if a.shape[0] != len(c):
                    raise InputMismatchError(f"{a.shape[0]} audio chunks for a window of {len(c)} frames")
            audio = torch.stack([a.to(device, dtype) for a in audios])
            audio = audio[0] if len(audios) == 1 else audio
        steps = lambda done, total: self.progress.update(len(conds)) if self.progress else None  # noqa: E731
        out = denoise(engine.net, cat(noises), cat([c.mask for c in conds]), cat([c.masked_latents for c in conds]),
                      cat([c.ref_latents for c in conds]), audio, steps=opts.steps, guidance=opts.guidance,
                      deepcache_interval=opts.deepcache_interval, scheduler=opts.scheduler,
                      cfg_batch=opts.cfg_batch, on_step=steps)
        return list(out.split(1))


# --------------------------------------------------------------------------- graph-side bookkeeping
def check_faces_audio(faces: Any, audio: Any) -> None:
    """Aligned faces and audio features must describe the same video: same exact fps, same frame count."""
    faces_fps, audio_fps = exact_fps(faces.fps), exact_fps(audio.fps)
    if faces_fps != audio_fps:
        raise InputMismatchError(
            f"the audio features were cut for {float(audio_fps):g} fps but the faces come from a "
            f"{float(faces_fps):g} fps video: connect GetVideoComponents' fps output to the fps inputs of both "
            "Audio Features and Face Crop & Align")
    if audio.num_frames != len(faces):
        raise InputMismatchError(
            f"Audio Features covers {audio.num_frames} frames but face_data holds {len(faces)}: connect the same "
            "images to Audio Features' images input as to Face Crop & Align (and set its frame_count to 0)")


def active_frames(faces: Any, audio: Any, silence_gating: bool) -> np.ndarray:
    """Frames that get a new mouth: a face was found, the audio covers them, and (gated) they are not silent."""
    active = np.asarray(faces.info.valid, dtype=bool).copy()
    active[audio.frames_with_audio:] = False
    if silence_gating:
        if audio.silent is None:
            raise LatentSyncError("silence_gating needs the silent-frame flags: turn on silence_detection in the "
                                  "Audio Features node, or turn silence_gating off")
        active &= ~audio.silent.numpy().astype(bool)
    return active
