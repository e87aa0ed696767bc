"""Dry run of the ``nsd`` profile: the real architectures with random weights, every stage of every method.

    python benchmarks/nsd_dryrun.py                                        # CPU, float32
    python benchmarks/nsd_dryrun.py --device cuda --dtype float16 --steps 10 --out dryrun.json
    python benchmarks/nsd_dryrun.py --tiny                                 # tiny configs (the test)

Before the real weights and the real NSD are in hand, this answers "does every stage run at the real
sizes, and how long does each take?". Each model is built from its published configuration (written
out below, since nothing may be downloaded) with seeded random weights and saved with
``save_pretrained`` into a folder laid out like its Hub repository; an ``nsd`` profile whose model
ids point at those folders then loads them through ``recon.models``, exactly as it loads the Hub
ids. Every stage (features, ridge decoding, BLIP captions, DPT depth, +G, img2img for [30], +T and
+T+G, depth2img for +T+G+D, evaluation features and scores) runs on random 512 px images through
the package's own functions, timed one by one. Scores are meaningless here: the weights are random.

Tokenizers cannot be downloaded either: the toy zoo's tokenizers are reused (smaller vocabularies,
so every token id stays inside the real embedding tables). BLIP generates ids over its full
vocabulary, of which the toy tokenizer decodes only a few, so the +T captions come out empty (the
pipelines take empty prompts; the text encoders still run on 77 tokens).

A stage fails (and the run exits non-zero naming it) on an exception or on NaN / infinite output,
which float16 overflow would produce silently. ``peak MB`` is the process's peak resident memory during
the stage on the CPU (including whatever earlier stages left resident), the peak allocated GPU
memory on a GPU.

The folders get a ``manifest.json`` of their files, in the zoo's format, because ``recon.models``
checks every local folder against the manifest beside it; it records what they are (published
configuration, random weights), so nothing is patched.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import platform
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from recon import evaluate, features, methods, models, recipes
from recon import manifest
from recon.config import METHODS, ModelIds, Profile, default_zoo_dir
from recon.profiles import get_profile
from recon.experiment import LOW_DIMENSIONAL, TRIAL_AVERAGED
from recon.ridge_streamed import StreamedRidgeCV, image_means
from recon.stages import STAGES

# ----------------------------------------------------------------------------------------------------
# Published configurations, as in each Hub repository's config.json (defaults left out).

#: CompVis/stable-diffusion-v1-4, unet/config.json
SD14_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[320, 640, 1280, 1280], layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768, attention_head_dim=8,
)
#: vae/config.json, the same autoencoder in SD 1.4, SD 2 base and SD 2 depth
SD_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512], layers_per_block=2, act_fn="silu", latent_channels=4,
    norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
)
#: text_encoder/config.json: the text tower of openai/clip-vit-large-patch14
SD14_TEXT = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
    bos_token_id=0, eos_token_id=2, pad_token_id=1,
)
#: scheduler/scheduler_config.json (PNDM; recon.models swaps in DDIM from this config, as for the Hub)
SD_SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, prediction_type="epsilon",
)
#: stabilityai/stable-diffusion-2-base, unet/config.json
SD2_UNET = SD14_UNET | dict(cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20], use_linear_projection=True)
#: its text_encoder/config.json: OpenCLIP ViT-H/14's text tower, penultimate layer (23 of 24 layers kept)
SD2_TEXT = SD14_TEXT | dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                            hidden_act="gelu", projection_dim=512)
#: stabilityai/stable-diffusion-2-depth, unet/config.json: the latent plus one depth channel
SD2_DEPTH_UNET = SD2_UNET | dict(in_channels=5)
#: its depth_estimator/config.json: DPT-Hybrid (Intel/dpt-hybrid-midas), a BiT-ResNet stem under ViT-B/16.
#: These are the values I am most confident of; the Bit backbone's widths are transformers' defaults
#: (stage 3 = 1024 channels at 24 x 24, matching backbone_featmap_shape). The dry run never runs it
#: (the decoded depth is passed in), but the pipeline loads it.
SD2_DEPTH_ESTIMATOR = dict(
    is_hybrid=True, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    image_size=384, patch_size=16, backbone_out_indices=[2, 5, 8, 11], neck_hidden_sizes=[256, 512, 768, 768],
    reassemble_factors=[1, 1, 1, 0.5], fusion_hidden_size=256, readout_type="project",
    backbone_featmap_shape=[1, 1024, 24, 24], neck_ignore_stages=[0, 1],
    backbone_config=dict(model_type="bit", layer_type="bottleneck", global_padding="same", depths=[3, 4, 9],
                         out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True),
)
#: Salesforce/blip-image-captioning-base, config.json
BLIP_BASE = dict(
    vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=384, patch_size=16, layer_norm_eps=1e-5),
    text_config=dict(vocab_size=30524, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, max_position_embeddings=512, encoder_hidden_size=768,
                     bos_token_id=30522, sep_token_id=102, pad_token_id=0, eos_token_id=2),
    projection_dim=512, image_text_hidden_size=256,
)
#: Intel/dpt-large, config.json: ViT-L/16 at 384 px, 577 tokens x 1024 per read-out layer
DPT_LARGE = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, image_size=384,
    patch_size=16, backbone_out_indices=[5, 11, 17, 23], neck_hidden_sizes=[256, 512, 1024, 1024],
    reassemble_factors=[4, 2, 1, 0.5], fusion_hidden_size=256, readout_type="project", qkv_bias=True,
    head_in_index=-1, layer_norm_eps=1e-12,
)
#: openai/clip-vit-large-patch14, config.json
CLIP_L14 = dict(
    text_config=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                     bos_token_id=0, eos_token_id=2, pad_token_id=1),
    vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       image_size=224, patch_size=14, hidden_act="quick_gelu"),
    projection_dim=768,
)

# Tiny configurations of the same classes (for the test): every width cut, depths and layouts kept
# where they are cheap. Each dict is merged over its published one.
_TINY_UNET = dict(
    sample_size=8, block_out_channels=[16, 32], layers_per_block=1, norm_num_groups=8,
    down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
)
_TINY_TEXT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
_TINY_VIT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=64)
TINY = {
    "sd_unet": _TINY_UNET | dict(cross_attention_dim=16, attention_head_dim=4),
    "sd2_unet": _TINY_UNET | dict(cross_attention_dim=24, attention_head_dim=[2, 4]),
    "sd2_depth_unet": _TINY_UNET | dict(cross_attention_dim=24, attention_head_dim=[2, 4]),
    "vae": dict(block_out_channels=[8, 8, 16, 16], layers_per_block=1, norm_num_groups=8, sample_size=64),
    "sd_text": _TINY_TEXT,
    "sd2_text": _TINY_TEXT | dict(hidden_size=24),
    "depth_estimator": _TINY_VIT | dict(
        neck_hidden_sizes=[8, 16, 16, 16], fusion_hidden_size=8, backbone_out_indices=[0, 1, 2, 3],
        backbone_featmap_shape=[1, 64, 4, 4],
        backbone_config=dict(embedding_size=8, hidden_sizes=[16, 32, 64], depths=[1, 1, 1], num_groups=8)),
    "blip": dict(vision_config=_TINY_VIT, text_config=_TINY_TEXT | dict(encoder_hidden_size=16), projection_dim=16,
                 image_text_hidden_size=16),
    "dpt": _TINY_VIT | dict(neck_hidden_sizes=[8, 16, 16, 16], fusion_hidden_size=8, backbone_out_indices=[0, 1, 2, 3]),
    "clip": dict(text_config=_TINY_TEXT, vision_config=_TINY_VIT | dict(image_size=32, patch_size=8),
                 projection_dim=16),
}
#: profile fields the tiny run changes (the evaluation nets need >= 75 px; VGG19 narrowed as in ``toy``)
#: the narrowed VGG19 has no fully connected layers: the tiny run matches the authors' conv layers only
TINY_PROFILE = dict(image_size=64, eval_resolution=96, clip_eval_layers=(1, 2), vgg_width_divisor=8, generator_size=64,
                    vgg_layers=("2", "7", "16", "25", "34"))


def merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied, nested dicts merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


@dataclass(frozen=True)
class Architectures:
    """Every model's configuration and every processor's input size for one dry run."""

    configs: dict
    clip_size: int = 224  # CLIPImageProcessor, openai/clip-vit-large-patch14
    blip_size: int = 384  # BlipImageProcessor, Salesforce/blip-image-captioning-base
    dpt_size: int = 384  # DPTImageProcessor, Intel/dpt-large and the SD 2 depth feature extractor

    @classmethod
    def published(cls) -> "Architectures":
        return cls({"sd_unet": SD14_UNET, "sd2_unet": SD2_UNET, "sd2_depth_unet": SD2_DEPTH_UNET, "vae": SD_VAE,
                    "sd_text": SD14_TEXT, "sd2_text": SD2_TEXT, "depth_estimator": SD2_DEPTH_ESTIMATOR,
                    "blip": BLIP_BASE, "dpt": DPT_LARGE, "clip": CLIP_L14})

    @classmethod
    def tiny(cls) -> "Architectures":
        full = cls.published().configs
        return cls({name: merged(config, TINY[name]) for name, config in full.items()}, clip_size=32, blip_size=64,
                   dpt_size=64)


# ----------------------------------------------------------------------------------------------------
# Writing the model folders, laid out like the Hub repositories.

#: folder name (the Hub repository's) -> (profile role, what it is)
FOLDERS = {
    "stable-diffusion-v1-4": ("sd", "StableDiffusionPipeline"),
    "stable-diffusion-2-base": ("sd2", "StableDiffusionPipeline"),
    "stable-diffusion-2-depth": ("sd_depth", "StableDiffusionDepth2ImgPipeline"),
    "blip-image-captioning-base": ("blip", "BlipForConditionalGeneration"),
    "dpt-large": ("dpt", "DPTForDepthEstimation"),
    "clip-vit-large-patch14": ("clip_eval", "CLIPModel"),
}


def zoo_tokenizer(kind: str, folder: str, max_length: int):
    """A toy-zoo tokenizer with the real model's context length (nothing can be downloaded)."""
    import transformers

    path = default_zoo_dir() / folder
    return getattr(transformers, kind).from_pretrained(path, model_max_length=max_length)


def clip_image_processor(size: int):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def dpt_image_processor(size: int):
    from transformers import DPTImageProcessor

    return DPTImageProcessor(size={"height": size, "width": size}, keep_aspect_ratio=False, ensure_multiple_of=1)


def diffusion_parts(arch: Architectures, unet: str, text: str, seed: int) -> dict:
    """UNet, VAE, text encoder and scheduler of one Stable Diffusion checkpoint, seeded."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    return dict(unet=UNet2DConditionModel.from_config(arch.configs[unet]),
                vae=AutoencoderKL.from_config(arch.configs["vae"]),
                text_encoder=CLIPTextModel(CLIPTextConfig(**arch.configs[text])),
                scheduler=PNDMScheduler.from_config(SD_SCHEDULER))


def write_sd(folder: Path, arch: Architectures, seed: int, sd2: bool) -> None:
    """SD 1.4 or SD 2 base: unet/, vae/, text_encoder/, tokenizer/, scheduler/, feature_extractor/.

    The Hub folders also hold the safety checker, which ``recon.models`` never loads."""
    from diffusers import StableDiffusionPipeline

    parts = diffusion_parts(arch, "sd2_unet" if sd2 else "sd_unet", "sd2_text" if sd2 else "sd_text", seed)
    tokenizer = zoo_tokenizer("CLIPTokenizer", "sd2-img2img/tokenizer" if sd2 else "sd-img2img/tokenizer", 77)
    pipe = StableDiffusionPipeline(**parts, tokenizer=tokenizer, safety_checker=None, requires_safety_checker=False,
                                   feature_extractor=clip_image_processor(arch.clip_size))
    pipe.save_pretrained(folder)


def write_sd_depth(folder: Path, arch: Architectures, seed: int) -> None:
    """SD 2 depth: as SD 2 base plus depth_estimator/ (DPT-Hybrid) and its feature_extractor/."""
    from diffusers import StableDiffusionDepth2ImgPipeline
    from transformers import DPTConfig, DPTForDepthEstimation

    parts = diffusion_parts(arch, "sd2_depth_unet", "sd2_text", seed)
    depth_estimator = DPTForDepthEstimation(DPTConfig(**arch.configs["depth_estimator"]))
    tokenizer = zoo_tokenizer("CLIPTokenizer", "sd2-img2img/tokenizer", 77)
    pipe = StableDiffusionDepth2ImgPipeline(**parts, tokenizer=tokenizer, depth_estimator=depth_estimator,
                                            feature_extractor=dpt_image_processor(arch.dpt_size))
    pipe.save_pretrained(folder)


def write_blip(folder: Path, arch: Architectures, seed: int) -> None:
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    torch.manual_seed(seed)
    BlipForConditionalGeneration(BlipConfig(**arch.configs["blip"])).save_pretrained(folder)
    image_processor = BlipImageProcessor(size={"height": arch.blip_size, "width": arch.blip_size})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=zoo_tokenizer("BertTokenizer", "blip", 512))
    processor.save_pretrained(folder)


def write_dpt(folder: Path, arch: Architectures, seed: int) -> None:
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(seed)
    DPTForDepthEstimation(DPTConfig(**arch.configs["dpt"])).save_pretrained(folder)
    dpt_image_processor(arch.dpt_size).save_pretrained(folder)


def write_clip(folder: Path, arch: Architectures, seed: int) -> None:
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    torch.manual_seed(seed)
    CLIPModel(CLIPConfig(**arch.configs["clip"])).save_pretrained(folder)
    processor = CLIPProcessor(image_processor=clip_image_processor(arch.clip_size),
                              tokenizer=zoo_tokenizer("CLIPTokenizer", "clip", 77))
    processor.save_pretrained(folder)


WRITERS = {
    "stable-diffusion-v1-4": lambda folder, arch, seed: write_sd(folder, arch, seed, sd2=False),
    "stable-diffusion-2-base": lambda folder, arch, seed: write_sd(folder, arch, seed, sd2=True),
    "stable-diffusion-2-depth": write_sd_depth,
    "blip-image-captioning-base": write_blip,
    "dpt-large": write_dpt,
    "clip-vit-large-patch14": write_clip,
}


DGN_FILE = "dgn.safetensors"


def write_dgn(path: Path, seed: int) -> str:
    """Shen et al.'s deep generator network with random weights, saved as ``generator='dgn:<file>'`` reads it."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    network = methods.DeepGeneratorNetwork()
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    return f"{path.stat().st_size / 1e6:.1f} MB written"


COOKBOOK = "cookbook"  # the authors' models/pytorch folder, as the Kamitani lab cookbook lays it out
#: bdpy's VGG19 layer names, each with its channel count (the feat_std0 table has one SD per channel)
BDPY_VGG19_CHANNELS = {"conv1_1": 64, "conv1_2": 64, "conv2_1": 128, "conv2_2": 128,
                       **{f"conv3_{i}": 256 for i in range(1, 5)}, **{f"conv4_{i}": 512 for i in range(1, 5)},
                       **{f"conv5_{i}": 512 for i in range(1, 5)}, "fc6": 4096, "fc7": 4096, "fc8": 1000}
#: the authors' +G layers (their script's), which the dry run's "authors" generator matches at full size
AUTHORS_LAYERS = ("2", "7", "16", "25", "34", "fc6", "fc7", "fc8")


def write_cookbook(folder: Path, seed: int) -> str:
    """The five files the authors' +G script loads (recon.kamitani.FILES), with random weights under bdpy's keys
    and shapes (full size: bdpy's architectures are fixed), a mean image near ImageNet's, random feat_std0 and
    code bounds, as ``generator='authors'`` / ``models.vgg19='authors'`` read them."""
    import scipy.io

    from recon import kamitani

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    for name in kamitani.FILES:
        (folder / kamitani.FILES[name][0]).parent.mkdir(parents=True, exist_ok=True)
    torch.save(kamitani.CaffeVGG19().state_dict(), folder / kamitani.FILES["vgg19_weights"][0])
    torch.save(kamitani.AlexNetGenerator().state_dict(), folder / kamitani.FILES["generator_weights"][0])
    np.save(folder / kamitani.FILES["image_mean"][0],
            np.float32([104.0, 116.7, 122.7]).reshape(3, 1, 1) + rng.normal(0, 5, (3, 256, 256)).astype(np.float32))
    scipy.io.savemat(folder / kamitani.FILES["feature_std"][0],
                     {name: rng.uniform(0.5, 3.0, (1, c)) for name, c in BDPY_VGG19_CHANNELS.items()})
    np.savetxt(folder / kamitani.FILES["code_upper_bound"][0], rng.uniform(0.5, 4.0, (1, kamitani.CODE_SIZE)),
               delimiter=" ")
    return folder_size(folder)


def folder_size(folder: Path) -> str:
    return f"{sum(p.stat().st_size for p in folder.rglob('*') if p.is_file()) / 1e6:.1f} MB written"


def write_manifest(root: Path, arch_name: str, seeds: dict[str, int]) -> str:
    """The zoo's manifest format over the dry-run folders, so ``recon.models`` can check them."""
    entries = {}
    for name, (_, model_class) in FOLDERS.items():
        files = manifest.file_table(root / name)
        entries[name] = {"class": model_class, "seed": seeds[name], "steps": 0, "train_seconds": 0.0,
                         "recipe": f"{arch_name} configuration of {name} in benchmarks/nsd_dryrun.py, seeded random "
                                   "weights (nothing downloaded); toy-zoo tokenizer",
                         "bytes": sum(f["bytes"] for f in files.values()), "files": files}
    content = {"built_with": {"torch": torch.__version__}, "dryrun": arch_name, "models": entries}
    (root / manifest.MANIFEST).write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    return f"{sum(len(e['files']) for e in entries.values())} files"


def model_ids(root: Path, seed: int) -> ModelIds:
    """The profile's model ids: the written folders, and seeded torchvision nets of the real architectures."""
    ids = {role: str(root / name) for name, (role, _) in FOLDERS.items()}
    return ModelIds(**ids, alexnet=f"seed:{seed}", inception=f"seed:{seed}", vgg19=f"seed:{seed}")


# ----------------------------------------------------------------------------------------------------
# Timing stages.


class StageFailed(RuntimeError):
    """A stage raised; ``stage`` names it (the exception is chained as the cause)."""

    def __init__(self, stage: str):
        super().__init__(f"stage {stage!r} failed")
        self.stage = stage


def describe(value) -> str:
    """A short shape description of a stage's output."""
    if isinstance(value, np.ndarray):
        return f"{tuple(value.shape)} {value.dtype}"
    if isinstance(value, torch.nn.Module):
        return f"{sum(p.numel() for p in value.parameters()) / 1e6:.1f} M params"
    if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
        rows = {v.shape[0] for v in value.values()}
        width = sum(int(np.prod(v.shape[1:])) for v in value.values())
        return f"{len(value)} arrays, ({'/'.join(map(str, sorted(rows)))}, {width}) in all"
    if isinstance(value, dict):
        return f"{len(value)} values"
    if isinstance(value, (list, tuple)):
        return f"{len(value)} items"
    if isinstance(value, str):
        return value
    return type(value).__name__


def check_finite(value) -> None:
    """Raise ``FloatingPointError`` if a float array (or a dict of them) holds NaN or infinite values."""
    arrays = value.values() if isinstance(value, dict) else [value]
    for array in arrays:
        if isinstance(array, np.ndarray) and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise FloatingPointError(f"{int((~np.isfinite(array)).sum())} non-finite values in a {array.shape} output")


def reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        return
    try:  # Linux: writing 5 resets this process's peak resident set (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb(device: str) -> float | None:
    """Peak GPU memory allocated, or peak resident memory of this process, since the last reset."""
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


@dataclass
class Stages:
    """Runs named stages in order and times each; the first failure stops the run, naming its stage."""

    device: str = "cpu"
    rows: list = field(default_factory=list)
    echo: bool = True

    HEADER = f"{'stage':<48} {'seconds':>9} {'images/s':>9} {'peak MB':>9}  output"

    def run(self, product: str | None, name: str, fn, images: int | None = None):
        """``product``: the stage of :data:`recon.stages.STAGES` whose product this times (None: the dry run's own
        set-up); ``images``: how many images the stage takes in or puts out (None: not an image stage).

        A stage also fails on NaN or infinite values: in its float output, or cast to uint8 images
        (which numpy only warns about), as float16 overflow or a constant depth map would make them."""
        if product is not None and product not in STAGES:
            raise ValueError(f"stage {name!r}: unknown product {product!r}; expected one of {', '.join(STAGES)}")
        reset_peak_memory(self.device)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message="invalid value encountered in cast", category=RuntimeWarning)
                out = fn()
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            check_finite(out)
        except Exception as err:
            raise StageFailed(name) from err
        seconds = time.perf_counter() - start
        row = {"stage": name, "product": product, "seconds": round(seconds, 3), "images": images,
               "images_per_s": round(images / seconds, 4) if images else None,
               "peak_MB": peak_memory_mb(self.device), "output": describe(out)}
        self.rows.append(row)
        if self.echo:
            print(self.format(row), flush=True)
        return out

    @staticmethod
    def format(row: dict) -> str:
        rate = f"{row['images_per_s']:9.3f}" if row["images_per_s"] else f"{'-':>9}"
        peak = f"{row['peak_MB']:9.0f}" if row["peak_MB"] is not None else f"{'-':>9}"
        return f"{row['stage']:<48} {row['seconds']:9.2f} {rate} {peak}  {row['output']}"


def release_models() -> None:
    """Drop every model ``recon.models`` memoised, so the next stage's models fit beside nothing else."""
    models.release()


# ----------------------------------------------------------------------------------------------------
# The analysis, stage by stage, through the package's functions.

CAPTIONS = ("a small red circle on the grass", "a large blue square in front of a dark room")


@dataclass(frozen=True)
class Settings:
    device: str = "cpu"
    dtype: str = "float32"  # the models' weights (the nsd profile's: float32, the authors')
    sd_autocast: str | None = "float16"  # SD img2img under torch.autocast (the nsd profile's, the authors')
    steps: int = 2  # DDIM steps; with strength 0.8, int(steps * 0.8) of them denoise
    strength: float = 0.8
    gan_steps: int = 2
    generator: str | None = None  # +G generator: authors, pixels, vae or dgn; None: the nsd profile's ("authors")
    n_images: int = 2
    n_samples: int = 2
    batch_size: int | None = None  # None: 1 on the CPU (memory), the nsd profile's batching on a GPU
    seed: int = 0
    tiny: bool = False
    n_train_images: int = 6  # random "training images" of the ridge decoders, each shown on two trials
    n_voxels: int = 48


def generator_of(settings: Settings) -> str:
    """The +G generator the run uses: the one asked for, or the ``nsd`` profile's own."""
    return settings.generator or get_profile("nsd").generator


def dryrun_profile(root: Path, settings: Settings) -> Profile:
    """The ``nsd`` profile pointed at the written folders, with the run's device, dtype and step counts."""
    profile = get_profile("nsd", nsd_root=root / "nsd", cache_dir=root / "cache")
    changes = dict(models=model_ids(root / "models", settings.seed), device=settings.device, dtype=settings.dtype,
                   sd_autocast=settings.sd_autocast,
                   num_inference_steps=settings.steps, strength=settings.strength,
                   generator_steps=settings.gan_steps, n_samples=settings.n_samples, seed=settings.seed,
                   ridge_backend="torch_cuda" if settings.device.startswith("cuda") else "torch")
    generator = generator_of(settings)
    changes["generator"] = f"dgn:{root / 'models' / DGN_FILE}" if generator == "dgn" else generator
    if settings.tiny:
        changes |= TINY_PROFILE
    if generator == models.AUTHORS:  # their generator and VGG19, full size even in a tiny run
        changes |= dict(models=dataclasses.replace(changes["models"], vgg19=models.AUTHORS),
                        authors_gan_dir=root / "models" / COOKBOOK, vgg_width_divisor=1, generator_size=224,
                        vgg_layers=AUTHORS_LAYERS)
    return profile.replace(**changes)


def random_stimuli(settings: Settings, size: int) -> tuple[np.ndarray, list[list[str]]]:
    rng = np.random.default_rng(settings.seed)
    images = rng.integers(0, 256, size=(settings.n_images, size, size, 3), dtype=np.uint8)
    return images, [[CAPTIONS[i % 2], CAPTIONS[(i + 1) % 2]] for i in range(settings.n_images)]


def batching(batch: int | None) -> dict:
    """Keyword arguments for a batched function: the package's own default unless the run fixes one."""
    return {} if batch is None else {"batch_size": batch}


def decoded(target: str, truth: np.ndarray, p: Profile, settings: Settings, seed: int) -> np.ndarray:
    """``Experiment.decoded``'s recipe (:func:`recon.recipes.ridge_decode`) on random betas: ``StreamedRidgeCV`` on
    per-image training targets scattered around the true test features (so predictions have the real shape and a
    plausible scale), trial-averaged betas where the authors averaged, DPT one layer at a time (later layers reuse
    the decomposition), the predictions stored in the profile's dtype for the target (``feature_dtype_of``)."""
    rng = np.random.default_rng(seed)
    n_images = settings.n_train_images
    shown = np.arange(2 * n_images) % n_images  # every training image on two trials
    noise = rng.standard_normal((n_images, *truth.shape[1:]), dtype=np.float32) * truth.std()
    Y = (truth[np.arange(n_images) % len(truth)] + noise).astype(p.feature_dtype_of(target))
    X = rng.standard_normal((len(shown), settings.n_voxels), dtype=np.float32)
    X_test = rng.standard_normal((len(truth), settings.n_voxels), dtype=np.float32)
    if target in TRIAL_AVERAGED:
        X, shown = image_means(X, shown, n_images), None
    alphas = p.alphas_lowdim if target in LOW_DIMENSIONAL else p.alphas_highdim
    predicted = np.empty(truth.shape, dtype=p.feature_dtype_of(target))
    decoder = StreamedRidgeCV(alphas=alphas, cv=p.cv_folds, device=p.device, block_size=p.ridge_block_size,
                              fit_intercept=p.decoder_intercept, dtype=p.decoder_dtype)
    targets = [(layer, Y[:, layer]) for layer in range(truth.shape[1])] if target == "dpt" else [(None, Y)]
    recipes.ridge_decode(decoder, X, shown, X_test, targets, predicted)
    return predicted


def feature_stages(stages: Stages, p: Profile, images, captions, batch: int | None) -> dict:
    """True stimulus features, one model family at a time (each released before the next loads)."""
    n, kw = len(images), batching(batch)
    out = {}
    stages.run("features", "load SD 1.4 img2img", lambda: models.img2img(p, "sd").unet)
    out["z"] = stages.run("features", "features z (VAE encoder)", lambda: features.vae_latents(
        models.img2img(p, "sd"), images, p.z_size, progress=False, seed=p.seed,
        sample_ids=np.arange(n) if p.z_latent == "sample" else None, **kw), n)
    out["c"] = stages.run("features", "features c (SD 1.4 text encoder)", lambda: features.text_embeddings(
        models.img2img(p, "sd"), captions, progress=False), n)
    release_models()
    stages.run("features", "load SD 2 img2img", lambda: models.img2img(p, "sd2").unet)
    out["c_sd2"] = stages.run("features", "features c (SD 2 text encoder)", lambda: features.text_embeddings(
        models.img2img(p, "sd2"), captions, progress=False), n)
    release_models()
    stages.run("features", "load BLIP", lambda: models.blip(p)[0])
    out["blip"] = stages.run("features", "features BLIP ViT", lambda: features.blip_vision(
        *models.blip(p), images, progress=False, size=p.blip_image_size, normalise=p.blip_normalise, **kw), n)
    stages.run("features", "load DPT", lambda: models.dpt(p)[0])
    out["dpt"] = stages.run("features", "features DPT hidden states", lambda: features.dpt_hidden_states(
        *models.dpt(p), images, progress=False, **kw), n)
    stages.run("features", "load VGG19", lambda: models.vgg19_features(p))
    out["vgg"] = stages.run("features", "features VGG19", lambda: features.vgg_feature_matrix(
        models.vgg19_features(p), images, p.vgg_layers, p.vgg_pool, p.generator_size, progress=False, **kw), n)
    return out


def decode_stages(stages: Stages, p: Profile, truth: dict, settings: Settings) -> dict:
    """A ridge decoder per target (VGG19's layers as one concatenated target, as ``Experiment`` does)."""
    return {target: stages.run("decoded", f"decode {target} (ridge)", lambda t=target, k=k: decoded(
                t, truth[t], p, settings, settings.seed + k))
            for k, target in enumerate(("z", "c", "c_sd2", "blip", "dpt", "vgg"))}


def product_stages(stages: Stages, p: Profile, dec: dict, batch: int | None, label: str = "",
                   rescale: bool = True) -> dict:
    """What the methods are made of, by the book's recipes (:mod:`recon.recipes`): +T captions, +D depth maps, +G
    images; from decoded features, or (the oracle's, ``label`` "true ") from the test images' own, which +G does not
    rescale (Experiment.true_gan_images)."""
    n, kw = len(dec["z"]), batching(batch)
    prefix = "true_" if label else ""  # the oracle's products are stages of their own
    out = {}
    out["captions"] = stages.run(f"{prefix}captions", f"{label}captions (BLIP generate)",
                                 lambda: recipes.captions(p, dec["blip"], progress=False, **kw), n)
    out["depth"] = stages.run(f"{prefix}depth", f"{label}depth (DPT neck + head)",
                              lambda: recipes.depth(p, dec["dpt"], progress=False, **kw), n)
    release_models()
    kind = p.generator.split(":")[0]
    stages.run(f"{prefix}gan", f"{label}load +G nets (VGG19, {kind} generator)",
               lambda: (models.vgg19_features(p), models.gan_generator(p)))

    def gan():
        reference = None
        if rescale and p.generator_rescale_features and p.models.vgg19 == models.AUTHORS:
            reference = models.authors_feature_std(p, p.vgg_layers)  # their feat_std0, as Experiment reads it
        elif rescale and p.generator_rescale_features:  # the reference SD here: the decoded features' own, over images
            vgg = models.vgg19_features(p)
            targets = features.split_vgg_matrix(dec["vgg"], features.vgg_layer_widths(vgg, p.vgg_layers, p.vgg_pool,
                                                                                       p.generator_size))
            reference = {k: float(v.std(0, ddof=1).mean()) for k, v in targets.items()}
        return recipes.gan_images(p, dec["vgg"], reference, progress=False, batch_size=batch)

    out["gan"] = stages.run(f"{prefix}gan", f"{label}+G feature matching ({kind}, {p.generator_steps} steps)", gan, n)
    release_models()
    return out


def generation_stages(stages: Stages, p: Profile, dec: dict, products: dict, batch: int | None,
                      label: str = "") -> dict:
    """The four methods by the book's recipe (:func:`recon.recipes.reconstruct`) and the profile's sampling settings
    (the oracle's, ``label`` "oracle ", on true inputs)."""
    n = len(dec["z"]) * p.n_samples
    kw = dict(progress=False, batch_size=batch)
    inputs = {"caption": products["captions"], "gan": products["gan"], "depth": products["depth"]}
    run_stage = "oracle" if label else "reconstruct"
    out = {}
    stages.run(run_stage, f"{label}reload SD 1.4 img2img", lambda: models.img2img(p, "sd").unet)
    if p.z_init != "latent":  # timed on its own too; each run that starts from z decodes it again, as the book's do
        stages.run(run_stage, f"{label}z -> init images (VAE decode)",
                   lambda: recipes.init_from_z(p, "sd", dec["z"], progress=False)["init_images"], len(dec["z"]))
    start = {"z": dec["z"]}
    out["[30]"] = stages.run(run_stage, f"{label}generate [30] (img2img z + c)", lambda: recipes.reconstruct(
        p, "[30]", "sd", start | {"c": dec["c"]}, **kw), n)
    out["+T"] = stages.run(run_stage, f"{label}generate +T (img2img z + captions)", lambda: recipes.reconstruct(
        p, "+T", "sd", start | inputs, **kw), n)
    out["+T+G"] = stages.run(run_stage, f"{label}generate +T+G (img2img +G image)", lambda: recipes.reconstruct(
        p, "+T+G", "sd", inputs, **kw), n)
    release_models()
    stages.run(run_stage, f"{label}load SD 2 depth2img", lambda: models.depth2img(p).unet)
    out["+T+G+D"] = stages.run(run_stage, f"{label}generate +T+G+D (depth2img)", lambda: recipes.reconstruct(
        p, "+T+G+D", "sd", inputs, **kw), n)
    release_models()
    return out


def identification(original: dict, generated: dict, device: str) -> dict:
    """Scores as ``Experiment.scores``: R matrices (mean over samples, first sample), then two-way identification."""
    mean = {m: evaluate.cross_correlations(original[m], values, device) for m, values in generated.items()}
    first = {m: evaluate.cross_correlations(original[m], values[:, :1], device) for m, values in generated.items()}
    return evaluate.scores_from_correlations(mean, first)


def evaluation_stages(stages: Stages, p: Profile, images: np.ndarray, generated: dict, batch: int | None,
                      label: str = "") -> dict:
    """Table 1's feature spaces of the originals and of every method's samples, then the scores."""
    kw = batching(batch)
    scored = "oracle" if label else "identification"  # an oracle run is scored in its own stage
    evaluator = stages.run("evaluation", f"{label}load evaluation nets (CLIP, AlexNet, Inception)",
                           lambda: evaluate.EvaluationFeatures(p))
    original = stages.run("evaluation", f"{label}evaluation features originals",
                          lambda: evaluator(images, progress=False, **kw), len(images))
    scores = {}
    for method in METHODS:
        samples = generated[method]
        flat = samples.reshape(-1, *samples.shape[-3:])
        feats = stages.run(scored, f"evaluation features {label}{method}",
                           lambda f=flat: evaluator(f, progress=False, **kw), len(flat))
        feats = {m: v.reshape(samples.shape[0], samples.shape[1], -1) for m, v in feats.items()}
        scores[method] = stages.run(scored, f"identification {label}{method}",
                                    lambda g=feats: identification(original, g, p.device))
    del evaluator
    release_models()
    return scores


def run_stages(profile: Profile, settings: Settings, stages: Stages) -> dict:
    """Every stage of every method on random images; returns the +T captions and the scores
    (both meaningless: the weights are random)."""
    batch = settings.batch_size or (None if profile.device.startswith("cuda") else 1)
    images, captions = random_stimuli(settings, profile.image_size)
    truth = feature_stages(stages, profile, images, captions, batch)
    dec = decode_stages(stages, profile, truth, settings)
    products = product_stages(stages, profile, dec, batch)
    generated = generation_stages(stages, profile, dec, products, batch)
    scores = evaluation_stages(stages, profile, images, generated, batch)
    # the oracle (Experiment.true_run): the same stages on the test images' own features
    true_products = product_stages(stages, profile, truth, batch, label="true ", rescale=False)
    oracle = generation_stages(stages, profile, truth, true_products, batch, label="oracle ")
    oracle_scores = evaluation_stages(stages, profile, images, oracle, batch, label="oracle ")
    # the claims page's text-to-image reference (Experiment.text_to_image), from the seen images' own captions
    stages.run("text2img", "generate text-to-image (SD 1.4, seen images' captions)", lambda: recipes.text_to_image(
        profile, true_products["captions"], progress=False, batch_size=batch), len(images) * profile.n_samples)
    release_models()
    return {"captions": products["captions"], "scores": scores, "oracle scores": oracle_scores}


def built(root: Path, arch_name: str) -> bool:
    """Whether ``root`` already holds a complete set of folders of these configurations (``--workdir``)."""
    path = root / manifest.MANIFEST
    return path.is_file() and manifest.read(root).get("dryrun") == arch_name


def write_models(root: Path, arch_name: str, settings: Settings, stages: Stages) -> None:
    """Build, save and free each model in turn, then write the manifest (last: it marks the set complete)."""
    arch = Architectures.tiny() if arch_name == "tiny" else Architectures.published()
    (root / manifest.MANIFEST).unlink(missing_ok=True)
    seeds = {name: settings.seed + 10 * k for k, name in enumerate(FOLDERS)}
    for name, writer in WRITERS.items():
        shutil.rmtree(root / name, ignore_errors=True)
        stages.run(None, f"build + save {name}",
                   lambda n=name, w=writer: w(root / n, arch, seeds[n]) or folder_size(root / n))
        gc.collect()
    stages.run(None, "write manifest (sha256 of every file)", lambda: write_manifest(root, arch_name, seeds))


def write_missing_models(workdir: Path, settings: Settings, setup: Stages, announce: bool = False) -> None:
    """The model folders the run's profile reads (:func:`dryrun_profile`), random weights, those not yet in
    ``workdir/models``: the Hub-like folders, and the DGN's file or the cookbook's files where its +G needs them."""
    arch_name = "tiny" if settings.tiny else "published"
    models_dir = workdir / "models"
    needs_models = not built(models_dir, arch_name)
    needs_dgn = generator_of(settings) == "dgn" and not (models_dir / DGN_FILE).is_file()
    needs_cookbook = generator_of(settings) == models.AUTHORS and not (models_dir / COOKBOOK).is_dir()
    if announce and (needs_models or needs_dgn or needs_cookbook):
        print("setup (not part of the nsd profile)\n" + Stages.HEADER, flush=True)
    if needs_models:
        write_models(models_dir, arch_name, settings, setup)
    if needs_dgn:
        setup.run(None, "build + save DGN (Shen et al.)", lambda: write_dgn(models_dir / DGN_FILE, settings.seed + 90))
    if needs_cookbook:
        setup.run(None, "build + save the authors' VGG19 and generator (cookbook files)",
                  lambda: write_cookbook(models_dir / COOKBOOK, settings.seed + 95))


def dryrun(settings: Settings, workdir: Path) -> dict:
    """Write the models under ``workdir`` (unless already there) and run every stage; return the report.

    Raises :class:`StageFailed` naming the first stage that failed."""
    from recon.book import quiet_libraries

    quiet_libraries()
    # Millions of objects from the libraries' imports would make every gc.collect() between stages
    # cost half a second; frozen, the collector walks only what the run itself creates.
    gc.freeze()
    try:
        return _dryrun(settings, workdir)
    finally:
        gc.unfreeze()


def _dryrun(settings: Settings, workdir: Path) -> dict:
    setup = Stages(settings.device)
    write_missing_models(workdir, settings, setup, announce=True)
    profile = dryrun_profile(workdir, settings)
    stages = Stages(settings.device)
    generator = profile.generator.split(":")[0]
    print(f"\nstages ({settings.n_images} images at {profile.image_size} px, {settings.n_samples} samples, "
          f"{settings.steps} DDIM steps at strength {settings.strength}, +G: {generator} generator, "
          f"{settings.gan_steps} steps)\n" + Stages.HEADER, flush=True)
    try:
        outputs = run_stages(profile, settings, stages)
    finally:
        release_models()
    return {"meta": metadata(settings, profile), "setup": setup.rows, "stages": stages.rows, **outputs,
            "total_seconds": round(sum(r["seconds"] for r in stages.rows), 2)}


def metadata(settings: Settings, profile: Profile) -> dict:
    meta = {k: getattr(settings, k) for k in Settings.__dataclass_fields__} | {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "denoising_steps": int(settings.steps * settings.strength), "image_size": profile.image_size,
        "generator": profile.generator, "generator_size": profile.generator_size}
    if settings.device.startswith("cuda"):
        meta["gpu"] = torch.cuda.get_device_name()
    return meta


def parse_args(argv=None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"),
                        help="the models' weights (default: float32, the nsd profile's)")
    parser.add_argument("--sd-autocast", default="float16", choices=("float16", "none"),
                        help="SD img2img under torch.autocast in float16 (default, the nsd profile's) or not")
    parser.add_argument("--steps", type=int, default=2, help="DDIM steps (int(steps * strength) of them denoise)")
    parser.add_argument("--strength", type=float, default=0.8)
    parser.add_argument("--gan-steps", type=int, default=2, help="+G optimisation steps")
    parser.add_argument("--generator", choices=("pixels", "vae", "dgn", "authors"),
                        help="+G generator (default: the nsd profile's, authors); dgn: Shen et al.'s, random weights; "
                             "authors: their relu7 generator and Caffe VGG19 (recon.kamitani), random weights "
                             "saved as the cookbook's files, full size even with --tiny")
    parser.add_argument("--images", type=int, default=2, help="test images (two-way identification needs >= 2)")
    parser.add_argument("--samples", type=int, default=2, help="samples per image")
    parser.add_argument("--batch-size", type=int, help="every stage's batch (default: 1 on the CPU, the nsd "
                                                       "profile's and the package's defaults on a GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="tiny configurations of the same classes (the test)")
    parser.add_argument("--workdir", type=Path, help="keep the model folders here and reuse them "
                                                     "(default: a temporary folder under /tmp, removed at the end)")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args(argv)
    if int(args.steps * args.strength) < 1:
        parser.error(f"--steps {args.steps} at strength {args.strength} runs no denoising step")
    if args.images < 2:
        parser.error("two-way identification needs --images >= 2")
    settings = Settings(device=args.device, dtype=args.dtype,
                        sd_autocast=None if args.sd_autocast == "none" else args.sd_autocast, steps=args.steps, strength=args.strength,
                        gan_steps=args.gan_steps, generator=args.generator, n_images=args.images,
                        n_samples=args.samples, batch_size=args.batch_size, seed=args.seed, tiny=args.tiny)
    return settings, args


def main(argv=None) -> int:
    settings, args = parse_args(argv)
    temporary = None if args.workdir else tempfile.mkdtemp(prefix="nsd-dryrun-", dir="/tmp")
    workdir = args.workdir or Path(temporary)
    try:
        report = dryrun(settings, workdir)
    except StageFailed as err:
        traceback.print_exception(err.__cause__)
        print(f"dryrun: stage {err.stage!r} failed on {settings.device} {settings.dtype}: "
              f"{type(err.__cause__).__name__}: {err.__cause__}", flush=True)
        return 1
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    print(f"{'total':<48} {report['total_seconds']:9.2f}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"dryrun: all {len(report['stages'])} stages passed on {settings.device} {settings.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
