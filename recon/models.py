"""The one place that loads models, by Hugging Face id (``nsd``) or shipped zoo folder (``toy``).

Both go through the same ``from_pretrained`` calls; a local folder is first checked against the
zoo manifest, so a missing or corrupt file fails with its path and the command that rebuilds it.
Loaded models are memoised per (id, device, dtype).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file
from torchvision import models as tv_models
from torchvision.models import vgg as tv_vgg

from . import zoo
from .config import Profile


def torch_dtype(profile: Profile) -> torch.dtype:
    dtype = getattr(torch, profile.dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"profile dtype {profile.dtype!r} is not a torch dtype (e.g. 'float32', 'float16')")
    return dtype


def _is_local(model_id: str) -> bool:
    return model_id.startswith((".", "/", "~")) or Path(model_id).exists()


def resolve(model_id: str) -> str:
    """Check a local zoo folder against its manifest; Hub ids pass through unchanged."""
    if not _is_local(model_id):
        return model_id
    folder = Path(model_id).expanduser()
    if not folder.is_dir():
        raise zoo.ZooError(f"missing model folder {folder}; rebuild the zoo with `{zoo.REBUILD_COMMAND}`")
    zoo.verify(folder)
    return str(folder)


@lru_cache(maxsize=16)
def _img2img(model_id: str, device: str, dtype: torch.dtype):
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
        resolve(model_id), dtype=dtype, safety_checker=None, requires_safety_checker=False
    )
    # The authors sample with DDIM (eta 0); the Hub folders ship PNDM.
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@lru_cache(maxsize=4)
def _depth2img(model_id: str, device: str, dtype: torch.dtype):
    from diffusers import DDIMScheduler, StableDiffusionDepth2ImgPipeline

    pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(resolve(model_id), dtype=dtype)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def img2img(profile: Profile, variant: str = "sd"):
    """``StableDiffusionImg2ImgPipeline``; ``variant`` is ``sd`` (SD 1.4) or ``sd2`` (SD 2.0)."""
    return _img2img(getattr(profile.models, variant), profile.device, torch_dtype(profile))


def depth2img(profile: Profile):
    return _depth2img(profile.models.sd_depth, profile.device, torch_dtype(profile))


@lru_cache(maxsize=8)
def _transformers_pair(model_class: str, processor_class: str, model_id: str, device: str):
    """(model, processor) of one transformers class pair from one folder or Hub id, in eval mode."""
    import transformers

    path = resolve(model_id)
    model = getattr(transformers, model_class).from_pretrained(path).to(device).eval()
    return model, getattr(transformers, processor_class).from_pretrained(path)


def blip(profile: Profile):
    """(``BlipForConditionalGeneration``, ``BlipProcessor``), kept in float32 for generation."""
    return _transformers_pair("BlipForConditionalGeneration", "BlipProcessor", profile.models.blip, profile.device)


def dpt(profile: Profile):
    """(``DPTForDepthEstimation``, ``DPTImageProcessor``)."""
    return _transformers_pair("DPTForDepthEstimation", "DPTImageProcessor", profile.models.dpt, profile.device)


def clip(profile: Profile):
    """(``CLIPModel``, ``CLIPProcessor``) whose vision tower gives CLIP Early / Middle / Late."""
    return _transformers_pair("CLIPModel", "CLIPProcessor", profile.models.clip_eval, profile.device)


_TORCHVISION = {
    "alexnet": (tv_models.alexnet, "AlexNet_Weights"),
    "inception": (tv_models.inception_v3, "Inception_V3_Weights"),
    "vgg19": (tv_models.vgg19, "VGG19_Weights"),
}


@lru_cache(maxsize=8)
def _torchvision(arch: str, spec: str, device: str):
    builder, weights_enum = _TORCHVISION[arch]
    extra = {"aux_logits": False, "init_weights": False} if arch == "inception" else {}
    if spec.startswith("seed:"):
        torch.manual_seed(int(spec.split(":", 1)[1]))
        if arch == "inception":
            extra["init_weights"] = True
        model = builder(weights=None, **extra)
    elif spec.endswith(".safetensors"):
        path = Path(spec)
        if not path.is_file():
            raise zoo.ZooError(f"missing model file {path}; rebuild the zoo with `{zoo.REBUILD_COMMAND}`")
        model = builder(weights=None, **extra)
        model.load_state_dict(load_file(path))
    else:  # a torchvision weights name such as IMAGENET1K_V1 (downloads on first use)
        weights = getattr(tv_models, weights_enum)[spec]
        if arch == "inception":
            extra = {"aux_logits": True, "init_weights": False}
        model = builder(weights=weights, **extra)
    return model.to(device).eval().requires_grad_(False)


@lru_cache(maxsize=4)
def _vgg19_features(spec: str, width_divisor: int, device: str):
    if width_divisor == 1:
        return _torchvision("vgg19", spec, device).features
    if not spec.startswith("seed:"):
        raise ValueError(f"a narrowed VGG19 (width divisor {width_divisor}) needs 'seed:N' weights, got {spec!r}")
    torch.manual_seed(int(spec.split(":", 1)[1]))
    # torchvision's own VGG19 layer list ("E"), every width divided: same depth, pooling and indices
    config = [v if v == "M" else max(4, v // width_divisor) for v in tv_vgg.cfgs["E"]]
    return tv_vgg.make_layers(config).to(device).eval().requires_grad_(False)


def vgg19_features(profile: Profile) -> torch.nn.Sequential:
    """The ``features`` stack of VGG19 used by the +G feature matching (layer indices as torchvision's)."""
    return _vgg19_features(profile.models.vgg19, profile.vgg_width_divisor, profile.device)


def torchvision_net(profile: Profile, arch: str):
    """AlexNet, Inception-v3 or VGG19 with the profile's weights, frozen, in eval mode."""
    if arch not in _TORCHVISION:
        raise ValueError(f"unknown torchvision architecture {arch!r}; expected one of {list(_TORCHVISION)}")
    return _torchvision(arch, getattr(profile.models, arch), profile.device)


def zoo_manifest(profile: Profile) -> dict:
    """The manifest of the zoo a profile's models come from (recipes, sizes, quality)."""
    folder = Path(profile.models.sd)
    if not _is_local(profile.models.sd):
        raise ValueError(f"profile {profile.name!r} loads Hub models ({profile.models.sd}); it has no zoo manifest")
    return zoo.read_manifest(folder.parent)
