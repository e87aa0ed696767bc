"""Which GPU the ``nsd`` profile's stages fit, and the settings that make them fit a smaller one.

A memory model per stage: the weights of the networks the stage loads (parameter counts of the published
configurations, :data:`PARAMETERS`) at the profile's dtype, plus its activations per batch (:data:`ACTIVATIONS`,
measured). Every job runs beside nothing else: :func:`recon.stages.compute` drops the models a job loaded once it
ends on a GPU (:func:`recon.models.release`), so a stage's peak is its own networks and batch.

:func:`fit` chooses, for a card of ``gpu_memory_gb`` (or the one torch finds), the largest generation batch and
+G batch that fit, and VAE slicing (the pipelines decode one image at a time) where a whole batch's decoding does
not. None of these trades the authors' arithmetic: precision stays the profile's. A stage that cannot fit at
its smallest setting is named with what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .config import TARGET_ROIS, ConfigError, Profile

GB = 1e9

#: parameters of each network the nsd profile loads, counted on models built from their published configurations
#: (benchmarks/nsd_dryrun.py) on the meta device; tests/test_gpu_budget.py counts them again
PARAMETERS = {
    "SD 1.4 UNet": 859_520_964,
    "SD 2.0 UNet": 865_910_724,
    "SD 2 depth UNet": 865_913_604,
    "VAE": 83_653_863,
    "SD 1.4 text encoder": 123_060_480,
    "SD 2 text encoder": 340_387_840,
    "SD 2 depth's DPT-Hybrid": 122_377_985,
    "BLIP": 223_971_644,
    "DPT-Large": 343_030_465,
    "CLIP ViT-L/14": 427_616_513,
    "VGG19": 143_667_240,  # torchvision's; the authors' Caffe VGG19 (recon.kamitani) has as many
    "relu7 generator": 56_097_891,  # the authors' DGN (recon.kamitani.AlexNetGenerator), with generator "authors"
    "AlexNet": 61_100_840,
    "Inception-v3": 23_834_568,
}

#: activations in GB, float32, (fixed, per row): the peak anonymous memory of one call on the CPU at NSD's sizes,
#: at two batch sizes (benchmarks/nsd_scale.py --activations; 2026-12-06, torch 2.14.1, random weights). UNet rows
#: are latents at 64 x 64 (classifier-free guidance runs two rows per generation), VAE rows 512 px images, VGG19
#: rows 224 px images through forward and backward (+G), relu7 generator rows a 4096-d code to a 256 px image and
#: its gradient back (+G with generator "authors"; measured 2026-12-06: 0.04 GB at 2 rows, 0.14 at 8)
ACTIVATIONS = {
    "unet": (0.28, 0.145),
    "vae decode": (0.44, 0.607),
    "vae encode": (0.0, 0.67),
    "vgg19 forward and backward": (0.04, 0.080),
    "relu7 generator forward and backward": (0.01, 0.016),
}
#: one NSD subject's sizes (the decoders' memory depends on them): training trials of 37 sessions, distinct
#: training images, test images, and the voxels of the largest decoder (the six ROIs of section 2.1)
NSD_SIZES = dict(n_trials=24_980, n_images=8_859, n_test=982, n_voxels=14_000)
#: activations allowed to the transformers stages (BLIP, DPT, CLIP), not measured: a ViT-L batch of 16 at 384 px
#: holds ~0.4 GB at once in float32 (577 tokens x 1024 per layer output, one layer's 16 x 577^2 attention)
TRANSFORMER_ACTIVATIONS_GB = 1.0
#: the CUDA context and the allocator's slack, beside every stage
CUDA_OVERHEAD_GB = 1.0
#: the share of the card a stage may plan for
HEADROOM = 0.9


#: the networks each diffusion pipeline holds
PIPELINE_NETWORKS = {
    "sd": ("SD 1.4 UNet", "VAE", "SD 1.4 text encoder"),
    "sd2": ("SD 2.0 UNet", "VAE", "SD 2 text encoder"),
    "sd_depth": ("SD 2 depth UNet", "VAE", "SD 2 text encoder", "SD 2 depth's DPT-Hybrid"),
}


def weights_gb(networks, dtype_bytes: int) -> float:
    return sum(PARAMETERS[n] for n in networks) * dtype_bytes / GB


def activation_gb(kind: str, rows: int, half: bool = False) -> float:
    fixed, per_row = ACTIVATIONS[kind]
    return (fixed + per_row * rows) * (0.5 if half else 1.0)


@dataclass(frozen=True)
class Settings:
    """What :func:`fit` may change: images per generation batch (``Profile.batch_size`` counts generations), +G's
    batch and whether the pipelines decode one image at a time."""

    batch_size: int
    generator_batch_size: int
    vae_slicing: bool

    @classmethod
    def of(cls, profile: Profile) -> "Settings":
        """The profile's own (each field a profile field of the same name)."""
        return cls(**{f.name: getattr(profile, f.name) for f in fields(cls)})

    def changes(self, profile: Profile) -> dict:
        """The fields whose values differ from ``profile``'s."""
        mine = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in mine.items() if value != getattr(profile, name)}


def _bytes(dtype: str) -> int:
    return {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}[dtype]


def generation_gb(profile: Profile, networks, batch_size: int, vae_slicing: bool, autocast: bool) -> float:
    """One generation batch: ``batch_size`` generations of ``profile.n_samples`` per image (as
    :func:`recon.methods.img2img` batches them), two UNet rows each, decoded together or one at a time."""
    generations = max(1, batch_size // profile.n_samples) * profile.n_samples
    unet = activation_gb("unet", 2 * generations, autocast)
    decode = activation_gb("vae decode", 1 if vae_slicing else generations, autocast)
    encode = activation_gb("vae encode", max(1, batch_size // profile.n_samples))  # before autocast (the authors')
    return weights_gb(networks, _bytes(profile.dtype)) + max(unet, decode, encode)


def gan_gb(profile: Profile, batch: int) -> float:
    """+G: VGG19 forward and backward in float32, its activations scaled by the generator's area, and with generator
    "authors" the relu7 generator's weights and its own forward and backward (its 256 px image, VGG19 its 224 crop)."""
    fixed, per_image = ACTIVATIONS["vgg19 forward and backward"]
    gb = weights_gb(["VGG19"], 4) + fixed + batch * per_image * (profile.generator_size / 224) ** 2
    if profile.generator == "authors":
        fixed, per_image = ACTIVATIONS["relu7 generator forward and backward"]
        gb += weights_gb(["relu7 generator"], 4) + fixed + batch * per_image
    return gb


def stage_peaks(profile: Profile, settings: Settings) -> dict[str, float]:
    """GPU memory (GB) of each stage that holds models, at ``settings``, CUDA's overhead included."""
    autocast = profile.sd_autocast is not None
    from .experiment import decoder_alphas
    from .ridge_streamed import memory_bytes

    n_alphas = max(len(decoder_alphas(profile, target)) for target in TARGET_ROIS)
    decoder = memory_bytes(NSD_SIZES["n_trials"], NSD_SIZES["n_images"], NSD_SIZES["n_test"], NSD_SIZES["n_voxels"],
                           profile.ridge_block_size, n_alphas, profile.cv_folds)["device"] / GB
    peaks = {
        "decoders (ridge, voxel side on the GPU)": decoder,
        "img2img (SD 1.4)": generation_gb(profile, PIPELINE_NETWORKS["sd"], settings.batch_size,
                                          settings.vae_slicing, autocast),
        "img2img (SD 2.0, control)": generation_gb(profile, PIPELINE_NETWORKS["sd2"], settings.batch_size,
                                                   settings.vae_slicing, autocast),
        "depth2img (SD 2 depth)": generation_gb(profile, PIPELINE_NETWORKS["sd_depth"], settings.batch_size,
                                                settings.vae_slicing, False),
        "+G": gan_gb(profile, settings.generator_batch_size),
        "captions (BLIP)": weights_gb(["BLIP"], _bytes(profile.dtype)) + TRANSFORMER_ACTIVATIONS_GB,
        "features and depth (DPT-Large)": weights_gb(["DPT-Large"], _bytes(profile.dtype)) + TRANSFORMER_ACTIVATIONS_GB,
        "evaluation (CLIP, AlexNet, Inception-v3)": weights_gb(["CLIP ViT-L/14"], _bytes(profile.dtype))
        + weights_gb(["AlexNet", "Inception-v3"], 4) + TRANSFORMER_ACTIVATIONS_GB,
    }
    return {stage: gb + CUDA_OVERHEAD_GB for stage, gb in peaks.items()}


def _candidates(profile: Profile):
    """Settings from the profile's own down to the smallest: fewer whole images per generation batch, then VAE
    slicing (+G's batch is halved apart)."""
    yield Settings.of(profile)
    per_image = profile.n_samples
    images = max(1, profile.batch_size // per_image)
    for slicing in sorted({profile.vae_slicing, True}):
        for n in range(images, 0, -1):
            yield Settings(n * per_image, profile.generator_batch_size, slicing)


def fit(profile: Profile, gpu_memory_gb: float | None = None) -> tuple[Profile, dict[str, float]]:
    """``profile`` with the largest settings whose every stage fits ``gpu_memory_gb`` (default: the profile's
    ``gpu_memory_gb``, else the card torch finds), and those stages' peaks. Raises :class:`ConfigError` naming a
    stage that does not fit at its smallest setting."""
    card = gpu_memory_gb or profile.gpu_memory_gb or detected_gpu_gb(profile.device)
    budget = card * HEADROOM
    chosen = None
    for candidate in _candidates(profile):
        peaks = stage_peaks(profile, candidate)
        generation = {s: gb for s, gb in peaks.items() if s != "+G"}
        if max(generation.values()) <= budget:
            chosen = candidate
            break
    if chosen is None:
        raise _too_big(profile, peaks, card)
    gan_batch = chosen.generator_batch_size
    while gan_batch > 1 and gan_gb(profile, gan_batch) + CUDA_OVERHEAD_GB > budget:
        gan_batch //= 2
    chosen = Settings(chosen.batch_size, gan_batch, chosen.vae_slicing)
    peaks = stage_peaks(profile, chosen)
    if max(peaks.values()) > budget:
        raise _too_big(profile, peaks, card)
    changes = chosen.changes(profile)
    # unchanged, the profile itself: the same cache keys as a run that never asked
    return (profile.replace(**changes) if changes else profile), peaks


def _too_big(profile: Profile, peaks: dict[str, float], card: float) -> ConfigError:
    stage, need = max(peaks.items(), key=lambda item: item[1])
    return ConfigError(f"the {profile.name} profile's stage {stage!r} needs {need:.1f} GB of GPU memory at its "
                       f"smallest setting, more than {HEADROOM:.0%} of this {card:.0f} GB card")


def detected_gpu_gb(device: str) -> float:
    """The total memory of the GPU ``device`` names (torch.cuda.mem_get_info)."""
    import torch

    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        raise ConfigError(f"no GPU to size on device {device!r}: set gpu_memory_gb to plan for one")
    return torch.cuda.mem_get_info(torch.device(device))[1] / GB


def fit_to_device(profile: Profile) -> Profile:
    """``profile`` as a run on its device uses it: on a GPU, :func:`fit` to the card (``gpu_memory_gb`` or the one
    found); on the CPU unchanged. :func:`recon.preflight.prepare` calls it for the command line and the notebooks,
    once it has checked the device, so both plan the same batches and read each other's cache entries."""
    if not str(profile.device).startswith("cuda"):
        return profile
    return fit(profile)[0]
