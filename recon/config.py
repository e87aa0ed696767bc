"""Profiles: everything that differs between the real dataset and the embedded toy one.

The science code never asks "am I the toy?"; it reads paths, model ids and sizes from a
:class:`Profile`. ``toy`` is the default and runs on a laptop CPU; ``nsd`` names the real
Natural Scenes Dataset on disk and the real Hugging Face model ids.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .errors import ReconError

SUBJECTS = ("subj01", "subj02", "subj05", "subj07")

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The seven labelled streams ROIs the paper decodes from (``unknown`` is excluded).
STREAMS_ROIS = ("early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal")
#: ROIs for the captions, GAN and depth decoders (paper, section 2.1).
MULTI_ROIS = ("early", "ventral", "midventral", "midlateral", "lateral", "parietal")
#: decoding target -> ROIs it is decoded from (baseline as in [30]; the rest as in section 2.1)
TARGET_ROIS = {
    "z": ("early",),
    "c": ("ventral",),
    "c_sd2": ("ventral",),
    "blip": MULTI_ROIS,
    "dpt": MULTI_ROIS,
    "vgg": MULTI_ROIS,
}

METHODS = ("[30]", "+T", "+T+G", "+T+G+D")
#: Table 1's seven evaluation metrics (recon.evaluate computes them), in the paper's order
METRICS = ("CLIP(Early)", "CLIP(Middle)", "CLIP(Late)", "CNN(Early)", "CNN(Middle)", "CNN(Late)", "Inception-v3")
#: what each method reads that was decoded from the brain (as ``Experiment.reconstruct`` passes it)
METHOD_INPUTS = {"[30]": ("z", "c"), "+T": ("z", "caption"), "+T+G": ("gan", "caption"),
                 "+T+G+D": ("gan", "caption", "depth")}
#: what can stand for a decoded input in an oracle run, computed from the seen image itself by the same code: its
#: features z and c, BLIP's caption of it, +G on its VGG19 features, DPT's depth of it; or, for the caption, the
#: image's first COCO caption (``coco caption``)
TRUE_INPUTS = ("z", "c", "caption", "coco caption", "gan", "depth")


class ConfigError(ReconError, ValueError):
    """A profile, subject or parameter value that cannot be used."""


#: MindEye resizes originals and reconstructions to 425 px before the peers' PixCorr and SSIM (evaluate.pixel_metrics)
PEER_RESOLUTION = 425


def check_subject(subject: str) -> str:
    """Return ``subject`` if it is one of the paper's four subjects, else fail naming them."""
    if subject not in SUBJECTS:
        raise ConfigError(f"unknown subject {subject!r}; valid subjects are {', '.join(SUBJECTS)}")
    return subject


def default_cache_dir() -> Path:
    return Path(os.environ.get("RECON_CACHE", REPO_ROOT / ".cache" / "recon"))


def default_zoo_dir() -> Path:
    return Path(os.environ.get("RECON_ZOO", REPO_ROOT / "zoo"))


def default_results_dir(profile: str) -> Path:
    """``results/<profile>/`` in the repository (committed for ``toy``); ``RECON_RESULTS`` moves the base."""
    return Path(os.environ.get("RECON_RESULTS", REPO_ROOT / "results")) / profile


class Simulation(Protocol):
    """What a profile with a simulated NSD carries (the toy's ``recon.toy.simulate.SimulationConfig``): the design
    the reader needs, and how to write the tree. The science calls it and never imports the simulator."""

    trials_per_session: int
    n_sessions: int

    def write(self, root: Path, progress: bool = True) -> Path:
        """Write the simulated NSD under ``root`` (reusing a complete tree of the same configuration)."""
        ...


@dataclass(frozen=True)
class ModelIds:
    """Where each model comes from: a Hugging Face id (``nsd``) or a local zoo folder (``toy``)."""

    sd: str  # StableDiffusionImg2ImgPipeline, SD 1.4 in the paper
    sd2: str  # the same pipeline with the SD 2.0 (OpenCLIP) text encoder, control analysis
    sd_depth: str  # StableDiffusionDepth2ImgPipeline, SD 2 depth
    blip: str  # BlipForConditionalGeneration + processor
    dpt: str  # DPTForDepthEstimation + image processor
    clip_eval: str  # CLIPModel whose vision tower gives CLIP Early / Middle / Late
    # torchvision weights: an enum name (``IMAGENET1K_V1``), a local safetensors file, or
    # ``seed:N`` for a seeded random initialisation of the same architecture.
    alexnet: str
    inception: str
    vgg19: str


@dataclass(frozen=True)
class Profile:
    name: str
    nsd_root: Path
    models: ModelIds
    trials_per_session: int
    n_sessions: int
    image_size: int  # generation resolution, pixels
    eval_resolution: int  # AlexNet / Inception input (299 in the paper's protocol)
    clip_eval_layers: tuple[int, int]  # hidden states for CLIP Early / Middle
    vgg_layers: tuple[str, ...]  # torchvision VGG19 ``features`` indices matched by +G
    vgg_width_divisor: int  # 1 = torchvision's VGG19; >1 narrows every layer (toy, CPU)
    vgg_pool: int  # decoded VGG maps are average-pooled to at most pool x pool
    generator_steps: int  # +G optimisation steps
    generator_lr: float
    num_inference_steps: int = 50
    strength: float = 0.8
    guidance_scale: float = 5.0
    # where img2img and depth2img noise the init latent (recon.sampling): "compvis", the authors' DDIMSampler,
    # one DDIM step above the first step denoised (801 for 50 steps at 0.8); "diffusers", at that step (781)
    init_noise: str = "compvis"
    # how a run's generations draw their noise (recon.methods.SAMPLE_NOISE): "authors", every image's generations
    # continue one stream seeded by ``seed`` (the k-th generation of every image starts from the same noise, as
    # in the authors' scripts); "independent", each (image, sample) its own generator
    sample_noise: str = "authors"
    repetition_penalty: float = 1.5
    caption_beams: int = 3  # BLIP beam search: the authors' decode_captions.py (tests/test_authors_pipeline.py)
    caption_max_length: int = 20  # tokens, the prompt's included (as their generate call counts them)
    caption_min_length: int = 5
    # text the caption decoder starts from and that is stripped from its output: the authors' BLIP starts
    # from its model.prompt "a picture of " (nsd); None starts from the BOS token alone (toy: the zoo's BLIP
    # was trained on bare captions, so a prompt would be text it never saw)
    caption_prompt: str | None = None
    # BLIP's ViT input: the authors' img2feat_blip.py resizes to 240 px (Lanczos) and feeds ToTensor()'s [0, 1]
    # pixels, not mean/std normalised, giving 1 + 15 x 15 tokens (nsd). None / True: the model's own
    # processor (toy: the zoo's BLIP at the 64 px and the normalisation it was trained with)
    blip_image_size: int | None = None
    blip_normalise: bool = True
    # z, the init latent of [30] and +T (the authors' img2feat_sd.py and diffusion_decoding.py): the stimulus
    # encoded at z_encode_size px (nsd: 320 -> 4 x 40 x 40), a sample of the VAE posterior ("sample"; "mean":
    # its mean); for img2img the decoded z is decoded to an image, clamped, resized to image_size and encoded
    # again (z_init "image"; "latent" passes the decoded latent straight in, which needs z_encode_size ==
    # image_size). toy: 40 of its 64 px, the authors' ratio 320 / 512
    z_encode_size: int | None = None  # None: image_size
    z_latent: str = "sample"
    z_init: str = "image"
    # the decoders' intercept: False, as the authors' ridge.py (himalaya's RidgeCV, fit_intercept=False, on
    # standardised voxels, targets not centred), so each decoded feature lacks its training mean; True fits it
    decoder_intercept: bool = False
    # the decoders' algebra (ridge_streamed.StreamedRidgeCV's dtype): "float32", or "float64", whose predictions,
    # rounded once to feature_dtype, do not depend on the BLAS's code path and so on the CPU's vendor
    decoder_dtype: str = "float32"
    n_samples: int = 5
    seed: int = 0
    device: str = "cpu"
    # the weights of every transformers / diffusers model (SD, SD 2 depth, BLIP, DPT, CLIP): float32 on nsd, as the
    # authors load them; "float16" halves their GPU memory at the cost of the authors' arithmetic
    dtype: str = "float32"
    # SD 1.4 / 2.0 img2img run under torch.autocast in this dtype (nsd: "float16", the authors' precision_scope
    # around their whole sampling loop: VAE encoding, DDIM and decoding); None: the weights' dtype throughout.
    # depth2img never does (the authors' SD 2 script calls torch.autocast("cuda") without entering it)
    sd_autocast: str | None = None
    batch_size: int = 16
    # the GPU the run plans for (recon.gpu_budget.fit): None, the card torch finds when a GPU run starts; a number of
    # GB plans for that card. Fitting lowers batch_size and generator_batch_size and turns on vae_slicing (the
    # pipelines decode one image at a time), never the precision
    gpu_memory_gb: float | None = None
    vae_slicing: bool = False
    cache_dir: Path = field(default_factory=default_cache_dir)
    # ridge alphas per target family, as in the authors' code
    alphas_lowdim: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    alphas_highdim: tuple[float, ...] = (1e4, 2e4, 4e4)
    cv_folds: int = 5
    overlap_list: Path | None = None  # test images also in the generator's training data
    # threads every product is computed on (recon.threads): the CPU profiles fix it, so that their numbers do not
    # depend on the machine's core count; None leaves the libraries' own (nsd, on a GPU)
    compute_threads: int | None = None
    ridge_backend: str = "torch"  # himalaya backend; "torch_cuda" on a GPU
    ridge_block_size: int = 4096  # target columns decoded at once (bounds memory for BLIP / DPT)
    feature_dtype: str = "float16"  # stimulus features and decoded predictions on disk
    # targets stored in float16 whatever feature_dtype says (nsd: DPT, whose float32 features and predictions would
    # take 16.2 GB more, 72.2 GB of the 64 GB disk budget; benchmarks/nsd_scale.py)
    features_float16: tuple[str, ...] = ()
    # +G: "pixels" optimises the image itself (smoothness prior), "vae" the SD VAE decoder's latent
    # (too costly at 512 px), "authors" the authors' relu7 generator from the cookbook's files (authors_gan_dir,
    # below), "dgn:<file>" Shen et al.'s deep generator network from converted weights (not the authors' arithmetic)
    generator: str = "pixels"
    generator_size: int = 224  # +G image side (VGG19's input size in Shen et al.)
    generator_batch_size: int = 32
    # +G's optimisation (methods.images_from_vgg_features): "sgd" is the authors' (bdpy's icnn as their
    # recon_icnn_image_vgg19_dgn_relu7gen_gd.py runs it: SGD, momentum 0.9, learning rate generator_lr -> generator_lr_end
    # linearly, the gradient divided by its mean absolute value, the code shrunk by generator_decay after each step,
    # the loss weighted by 1 / ||t||^2 per layer); "adam" is Adam at generator_lr
    generator_optimiser: str = "adam"
    generator_lr_end: float = 1e-10
    generator_momentum: float = 0.9
    generator_decay: float = 0.0
    # each +G image clipped at its pct / 2 extreme percentiles and stretched to 0-255, as the authors finish it
    # (bdpy normalize_image(clip_extreme(x, pct=4))); None: clamped to [0, 1]
    generator_contrast_pct: float | None = None
    # each decoded VGG19 layer standardised over its units and rescaled to the reference SD (the layer's SD over
    # the subject's training images, averaged over units), as the authors rescale to ImageNet's (feat_std0)
    generator_rescale_features: bool = False
    # +G's arithmetic (methods.images_from_vgg_features): None, the networks' own dtype; "float64" runs float64
    # copies, so that another CPU's kernels cannot steer the (chaotic) optimisation
    generator_dtype: str | None = None
    # +G's code rounded to this grid after every step (None: never). Each step then starts from the same code
    # on every CPU, so rounding differences cannot accumulate from step to step; they survive only where a step
    # lands within float64 rounding of a grid boundary
    generator_code_quantum: float | None = None
    # +G with the authors' own networks and files (recon.kamitani): generator "authors" is their relu7 generator,
    # models.vgg19 "authors" their Caffe VGG19 (with their feat_std0 rescaling where generator_rescale_features).
    # authors_gan_dir: the folder of the Kamitani lab cookbook's files (their models/pytorch; nsd: from
    # RECON_AUTHORS_GAN_DIR), None fails at once where they are needed, naming the first file
    authors_gan_dir: Path | None = None
    # the authors' VGG19's input channels (recon.kamitani.CHANNEL_ORDERS): "authors", RGB minus the BGR-ordered means
    # as their make_vgg19bdpy.py computes the targets (kept: their +G is consistent with it); "caffe", BGR as trained
    vgg19_channel_order: str = "authors"
    # True: betas z-scored per voxel within each session (NSD's usual preparation). False: raw
    # betas / 300, standardised per voxel over the training trials by the decoder, exactly as the
    # authors' make_subjmri.py + ridge.py do.
    zscore_betas_per_session: bool = True
    simulation: Simulation | None = None  # a simulated NSD, written on first use (the toy's: recon.toy.simulate)
    results_dir: Path | None = None  # where the book writes its result tables (recon.results); None: nowhere

    @property
    def z_size(self) -> int:
        """The side, in pixels, at which the stimulus is encoded to z."""
        return self.z_encode_size or self.image_size

    def replace(self, **changes) -> "Profile":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown profile field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    @property
    def subjects(self) -> tuple[str, ...]:
        return SUBJECTS

    @property
    def generation_settings(self) -> dict:
        """The sampling settings every reconstruction shares (:func:`recon.recipes.reconstruct`; its key holds them)."""
        return dict(n_samples=self.n_samples, strength=self.strength, guidance_scale=self.guidance_scale,
                    num_inference_steps=self.num_inference_steps, seed=self.seed, batch_size=self.batch_size,
                    sample_noise=self.sample_noise)

    @property
    def generation_key(self) -> dict:
        """What a reconstruction's key holds of the sampling: its settings, how the pipelines' scheduler noises the
        init latent (:mod:`recon.sampling`, chosen where the models load) and their arithmetic."""
        return self.generation_settings | {"init_noise": self.init_noise, "dtype": self.dtype,
                                           "sd_autocast": self.sd_autocast, "vae_slicing": self.vae_slicing}

    def feature_dtype_of(self, target: str) -> str:
        """The dtype ``target``'s stimulus features and decoded predictions are stored in."""
        return "float16" if target in self.features_float16 else self.feature_dtype


def nsd(**overrides) -> Profile:
    """The real Natural Scenes Dataset on disk (``RECON_NSD_ROOT``) and the real model ids, on a GPU."""
    root = overrides.pop("nsd_root", None) or os.environ.get("RECON_NSD_ROOT") or "/data/nsd"
    defaults = dict(
        name="nsd",
        nsd_root=Path(root),
        models=ModelIds(
            sd="CompVis/stable-diffusion-v1-4",
            sd2="stabilityai/stable-diffusion-2-base",
            sd_depth="stabilityai/stable-diffusion-2-depth",
            blip="Salesforce/blip-image-captioning-base",
            dpt="Intel/dpt-large",
            clip_eval="openai/clip-vit-large-patch14",
            alexnet="IMAGENET1K_V1",
            inception="IMAGENET1K_V1",
            vgg19="authors",  # their Caffe VGG_ILSVRC_19_layers from the cookbook's file (recon.kamitani)
        ),
        trials_per_session=750,
        n_sessions=37,
        image_size=512,
        eval_resolution=299,
        clip_eval_layers=(6, 12),
        z_encode_size=320,
        caption_prompt="a picture of ",
        blip_image_size=240,
        blip_normalise=False,
        # the authors' +G layers: conv1_2, conv2_2, conv3_4, conv4_4, conv5_4 before their ReLU, fc6, fc7, fc8
        vgg_layers=("2", "7", "16", "25", "34", "fc6", "fc7", "fc8"),
        vgg_width_divisor=1,
        vgg_pool=14,  # not the authors' full maps (~6.1M targets): pooled so that decoded maps fit the disk
        generator_steps=200,
        # the authors' recipe; the pixels generator optimises in Caffe's 0-255 units, the units of lr 2
        generator_optimiser="sgd",
        generator_lr=2.0,
        generator_lr_end=1e-10,
        generator_momentum=0.9,
        generator_decay=0.01,
        generator_contrast_pct=4.0,
        generator_rescale_features=True,
        generator_batch_size=64,
        # +G as the authors': their relu7 generator and Caffe VGG19 from the Kamitani lab cookbook's files
        # (recon.kamitani), which cannot be fetched here: a run without them fails at once naming the first one;
        # generator="pixels" with models.vgg19="IMAGENET1K_V1" runs without them, a deviation the fidelity table names
        generator="authors",
        authors_gan_dir=Path(os.environ["RECON_AUTHORS_GAN_DIR"]) if os.environ.get("RECON_AUTHORS_GAN_DIR") else None,
        device="cuda",
        dtype="float32",  # the authors' weights and arithmetic, SD 1.4 sampled under autocast (sd_autocast)
        sd_autocast="float16",
        feature_dtype="float32",  # as the authors' np.save of float32 features, where the disk allows
        features_float16=("dpt",),
        ridge_backend="torch_cuda",
        batch_size=8,
        zscore_betas_per_session=False,  # the authors' preprocessing
        results_dir=default_results_dir("nsd"),
    )
    return Profile(**(defaults | overrides))


def _is_int(value) -> bool:
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_parameters(profile: Profile) -> None:
    """Every run-time parameter checked before anything is computed (the notebooks' papermill parameters
    and the CLI's options arrive here): each failure names the parameter, the value and what is accepted.
    Whether this machine has the device is :func:`check_device`'s question, asked where a run starts (a
    profile may describe a GPU run on a machine without one)."""
    for name, least in (("seed", 0), ("n_samples", 1), ("n_sessions", 1)):
        value = getattr(profile, name)
        if not _is_int(value) or value < least:
            raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    if profile.simulation is not None and profile.n_sessions > profile.simulation.n_sessions:
        raise ConfigError(f"n_sessions must be at most {profile.simulation.n_sessions} on the {profile.name} profile "
                          f"(its simulated NSD has that many sessions per subject), got {profile.n_sessions}")
    if not 0.0 < profile.strength <= 1.0:
        raise ConfigError(f"strength must be in (0, 1], got {profile.strength}")
    for name, allowed in (("z_latent", ("sample", "mean")), ("z_init", ("image", "latent")),
                          ("generator_optimiser", ("adam", "sgd")), ("init_noise", ("compvis", "diffusers")),
                          ("sample_noise", ("authors", "independent")), ("vgg19_channel_order", ("authors", "caffe")),
                          ("dtype", ("float32", "float16", "bfloat16")), ("sd_autocast", (None, "float16", "bfloat16")),
                          ("feature_dtype", ("float32", "float16"))):
        if getattr(profile, name) not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}, got {getattr(profile, name)!r}")
    unknown = [t for t in profile.features_float16 if t not in TARGET_ROIS]
    if unknown:
        raise ConfigError(f"features_float16 names decoding targets, one of {', '.join(TARGET_ROIS)}; got {unknown}")
    if profile.z_init == "latent" and profile.z_encode_size not in (None, profile.image_size):
        raise ConfigError(f"z_init 'latent' passes decoded z straight to img2img, so z_encode_size "
                          f"({profile.z_encode_size}) must equal image_size ({profile.image_size}); use z_init 'image'")
    if not isinstance(profile.device, str) or not profile.device:
        raise ConfigError(f"device must be a torch device name such as 'cpu' or 'cuda', got {profile.device!r}")


def check_device(device) -> None:
    """``device`` must name a torch device this machine has: ``cpu``, ``cuda`` / ``cuda:N`` with a GPU, ``mps``."""
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return
    if kind not in ("cuda", "mps") or (index and not index.isdigit()):
        raise ConfigError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    import torch  # only for a device other than the CPU

    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("device is 'mps', but this machine has no Apple GPU that torch can use; use device='cpu'")
        return
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if found == 0:
        raise ConfigError(f"device is {device!r}, but torch finds no CUDA GPU here (torch {torch.__version__}, "
                          f"built for CUDA {torch.version.cuda}); use device='cpu'")
    if index and int(index) >= found:
        raise ConfigError(f"device is {device!r}, but torch finds {found} CUDA GPU(s) (cuda:0..cuda:{found - 1})")
