"""The one place that loads models, by Hugging Face id (``nsd``) or shipped zoo folder (``toy``).

Both go through the same ``from_pretrained`` calls; a local folder is first checked against the
zoo manifest, so a missing or corrupt file fails with its path and the command that rebuilds it.
A Hub id (or torchvision weights name) that is neither cached nor downloadable here fails with
:class:`ModelNotAvailableError` naming it and how to get it; ``HF_HUB_OFFLINE=1`` or
``RECON_OFFLINE=1`` forbid downloads. Loaded models are memoised per (id, device, dtype).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import torch
from safetensors.torch import load_file
from torchvision import models as tv_models
from torchvision.models import vgg as tv_vgg

from . import manifest
from .config import ConfigError, Profile
from .errors import ReconError


def torch_dtype(profile: Profile) -> torch.dtype:
    return _dtype_named(profile.dtype, "dtype")


def sd_autocast(profile: Profile) -> torch.dtype | None:
    """The dtype SD img2img samples in under ``torch.autocast`` (the profile's ``sd_autocast``), or None."""
    return None if profile.sd_autocast is None else _dtype_named(profile.sd_autocast, "sd_autocast")


def generator_dtype(profile: Profile) -> torch.dtype | None:
    """+G's arithmetic: None (the networks' own dtype) or the profile's ``generator_dtype``."""
    return None if profile.generator_dtype is None else _dtype_named(profile.generator_dtype, "generator_dtype")


def _dtype_named(name: str, field: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"profile {field} {name!r} is not a torch dtype (e.g. 'float32', 'float16', 'float64')")
    return dtype


def _is_local(model_id: str) -> bool:
    return model_id.startswith((".", "/", "~")) or Path(model_id).exists()


def resolve(model_id: str) -> str:
    """Check a local zoo folder against its manifest; Hub ids pass through unchanged."""
    if not _is_local(model_id):
        return model_id
    folder = Path(model_id).expanduser()
    if not folder.is_dir():
        raise manifest.ManifestError(f"missing model folder {folder}; rebuild the zoo with `{manifest.REBUILD_COMMAND}`")
    manifest.verify(folder)
    return str(folder)


#: Either set to 1 forbids every download (Hub models and torchvision weights): only caches are read.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "RECON_OFFLINE")


class ModelNotAvailableError(ReconError, OSError):
    """A Hub model or torchvision weights file that is not on this machine and cannot be downloaded."""


def offline() -> bool:
    """Read at call time: huggingface_hub reads ``HF_HUB_OFFLINE`` once, at import."""
    return any(os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for name in OFFLINE_VARIABLES)


def hub_cache() -> Path:
    """The Hugging Face hub cache the environment names now (huggingface_hub's own rule, read at call time)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(home).expanduser() / "hub"


def _how_to_get(model_id: str) -> str:
    return (f"download it on a machine with access to huggingface.co with `hf download {model_id}` "
            f"(`huggingface-cli download {model_id}` with older huggingface_hub) and copy the cache here, "
            "or set HF_HOME / HF_HUB_CACHE to a cache that has it")


def _check_cached(model_id: str, cache: Path) -> None:
    """Offline, fail before from_pretrained (whose message would not say how to get the model)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot_download(model_id, cache_dir=cache, local_files_only=True)
    except LocalEntryNotFoundError as error:
        raise ModelNotAvailableError(
            f"model {model_id!r} is not in the Hugging Face cache {cache} and downloads are off "
            f"({' / '.join(OFFLINE_VARIABLES)}); {_how_to_get(model_id)}"
        ) from error


def _from_pretrained(cls, model_id: str, **kwargs):
    """``cls.from_pretrained`` of what :func:`resolve` returned: a verified zoo folder, or a Hub id read
    through :func:`hub_cache` (and from nothing else when :func:`offline`), whose failures name it."""
    if _is_local(model_id):
        return cls.from_pretrained(model_id, **kwargs)
    cache = hub_cache()
    if offline():
        _check_cached(model_id, cache)
    try:
        return cls.from_pretrained(model_id, cache_dir=str(cache), local_files_only=offline(), **kwargs)
    except OSError as error:  # huggingface_hub's connection, offline and missing-entry errors are OSErrors
        raise ModelNotAvailableError(
            f"could not load model {model_id!r} ({cls.__name__}) from the Hugging Face cache {cache} or the Hub: "
            f"{error}\n{_how_to_get(model_id)}"
        ) from error


@lru_cache(maxsize=16)
def _img2img(model_id: str, device: str, dtype: torch.dtype, init_noise: str, vae_slicing: bool = False):
    from diffusers import StableDiffusionImg2ImgPipeline

    from .sampling import scheduler_class

    pipe = _from_pretrained(StableDiffusionImg2ImgPipeline, resolve(model_id), dtype=dtype, safety_checker=None,
                            requires_safety_checker=False)
    # The authors sample with CompVis's DDIM (eta 0), which noises the init latent one step above diffusers'
    # (recon.sampling); the Hub folders ship PNDM.
    return _ready(pipe, scheduler_class(init_noise), device, vae_slicing)


def _ready(pipe, scheduler_class, device: str, vae_slicing: bool):
    pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if vae_slicing:  # one image at a time through the VAE: a smaller card's peak (recon.gpu_budget)
        pipe.vae.enable_slicing()
    return pipe.to(device)


@lru_cache(maxsize=4)
def _depth2img(model_id: str, device: str, dtype: torch.dtype, init_noise: str, vae_slicing: bool = False):
    from diffusers import StableDiffusionDepth2ImgPipeline

    from .sampling import scheduler_class

    pipe = _from_pretrained(StableDiffusionDepth2ImgPipeline, resolve(model_id), dtype=dtype)
    return _ready(pipe, scheduler_class(init_noise), device, vae_slicing)


def img2img(profile: Profile, variant: str = "sd"):
    """``StableDiffusionImg2ImgPipeline``; ``variant`` is ``sd`` (SD 1.4) or ``sd2`` (SD 2.0)."""
    return _img2img(getattr(profile.models, variant), profile.device, torch_dtype(profile), profile.init_noise,
                    profile.vae_slicing)


def depth2img(profile: Profile):
    return _depth2img(profile.models.sd_depth, profile.device, torch_dtype(profile), profile.init_noise,
                      profile.vae_slicing)


@lru_cache(maxsize=8)
def _transformers_pair(model_class: str, processor_class: str, model_id: str, device: str, dtype: torch.dtype):
    """(model, processor) of one transformers class pair from one folder or Hub id, in eval mode.

    Loaded in ``dtype`` directly (not cast after a float32 load), so a float16 GPU profile never
    holds the float32 weights; callers cast their inputs to ``model.dtype``."""
    import transformers

    path = resolve(model_id)
    model = _from_pretrained(getattr(transformers, model_class), path, dtype=dtype).to(device).eval()
    return model, _from_pretrained(getattr(transformers, processor_class), path)


def _pair(model_class: str, processor_class: str, model_id: str, profile: Profile):
    return _transformers_pair(model_class, processor_class, model_id, profile.device, torch_dtype(profile))


def blip(profile: Profile):
    """(``BlipForConditionalGeneration``, ``BlipProcessor``) in the profile's dtype (float32 for ``nsd``, the authors')."""
    return _pair("BlipForConditionalGeneration", "BlipProcessor", profile.models.blip, profile)


def dpt(profile: Profile):
    """(``DPTForDepthEstimation``, ``DPTImageProcessor``) in the profile's dtype."""
    return _pair("DPTForDepthEstimation", "DPTImageProcessor", profile.models.dpt, profile)


def clip(profile: Profile):
    """(``CLIPModel``, ``CLIPProcessor``) in the profile's dtype; its vision tower gives CLIP Early / Middle / Late."""
    return _pair("CLIPModel", "CLIPProcessor", profile.models.clip_eval, profile)


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
            raise manifest.ManifestError(f"missing model file {path}; rebuild the zoo with `{manifest.REBUILD_COMMAND}`")
        model = builder(weights=None, **extra)
        model.load_state_dict(load_file(path))
    else:  # a torchvision weights name such as IMAGENET1K_V1 (downloads on first use)
        weights = getattr(tv_models, weights_enum)[spec]
        if arch == "inception":
            extra = {"aux_logits": True, "init_weights": False}
        model = _torchvision_pretrained(builder, weights, **extra)
    return model.to(device).eval().requires_grad_(False)


def _torchvision_pretrained(builder, weights, **extra):
    """``builder(weights=...)``; offline its file must be in torch hub's cache, and a failed download names it."""
    name = f"{type(weights).__name__}.{weights.name}"
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    how = (f"download {weights.url} into {file.parent} on a machine with access, or set TORCH_HOME to a folder "
           f"that has hub/checkpoints/{file.name}")
    if offline() and not file.is_file():
        raise ModelNotAvailableError(f"torchvision weights {name} ({file.name}) are not in torch hub's cache "
                                     f"{file.parent} and downloads are off ({' / '.join(OFFLINE_VARIABLES)}); {how}")
    try:
        return builder(weights=weights, **extra)
    except OSError as error:  # urllib's URLError is an OSError
        raise ModelNotAvailableError(f"could not load torchvision weights {name} ({file}): {error}; {how}") from error


#: a narrowed VGG19's folder: its ``features`` weights and the config that records the width divisor (the zoo's
#: ``vgg19`` is one)
NARROW_VGG19_WEIGHTS = "model.safetensors"
NARROW_VGG19_CONFIG = "config.json"


def vgg19_layer_config(width_divisor: int) -> list:
    """torchvision's own VGG19 layer list ("E"), every width divided: same depth, pooling and indices."""
    return [v if v == "M" else max(4, v // width_divisor) for v in tv_vgg.cfgs["E"]]


def _narrowed_vgg19_weights(spec: str, width_divisor: int) -> dict:
    """Weights of a narrowed VGG19 ``features`` stack from a zoo folder (``model.safetensors`` +
    ``config.json``, checked against the manifest) or a bare ``.safetensors`` file (its folder's
    ``config.json`` is checked when present); the recorded width divisor must be the profile's."""
    import json

    if spec.endswith(".safetensors"):
        file = Path(spec).expanduser()
        if not file.is_file():
            raise manifest.ManifestError(f"missing model file {file}; rebuild the zoo with `{manifest.REBUILD_COMMAND}`")
    else:
        file = Path(resolve(spec)) / NARROW_VGG19_WEIGHTS  # a missing folder or file fails with ZooError here
    config_file = file.parent / NARROW_VGG19_CONFIG
    state = load_file(file)
    if config_file.is_file():
        recorded = json.loads(config_file.read_text()).get("width_divisor")
        source = config_file
    else:  # a bare weights file: the first conv's width tells its divisor
        first = state.get("0.weight")
        recorded = None if first is None else 64 // first.shape[0]
        source = file
    if recorded != width_divisor:
        raise ValueError(f"VGG19 weights {file} were built with width divisor {recorded} (from {source}), but the "
                         f"profile's vgg_width_divisor is {width_divisor}; rebuild them or change the profile")
    return state


@lru_cache(maxsize=4)
def _vgg19_features(spec: str, width_divisor: int, device: str):
    if width_divisor == 1:
        return _torchvision("vgg19", spec, device).features
    features = None
    if spec.startswith("seed:"):
        torch.manual_seed(int(spec.split(":", 1)[1]))
        features = tv_vgg.make_layers(vgg19_layer_config(width_divisor))
    elif _is_local(spec) or spec.endswith(".safetensors"):
        state = _narrowed_vgg19_weights(spec, width_divisor)
        features = tv_vgg.make_layers(vgg19_layer_config(width_divisor))
        try:
            features.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"VGG19 weights from {spec} do not fit the VGG19 layer stack of width divisor "
                             f"{width_divisor}: {err}") from err
    if features is None:
        raise ValueError(f"a narrowed VGG19 (width divisor {width_divisor}) needs 'seed:N' weights, a zoo folder "
                         f"or a .safetensors file, got {spec!r}")
    return features.to(device).eval().requires_grad_(False)


#: the model id (``models.vgg19``) and +G generator (``generator``) that name the authors' own networks, read from
#: the Kamitani lab cookbook's files under the profile's ``authors_gan_dir`` (recon.kamitani)
AUTHORS = "authors"


@lru_cache(maxsize=2)
def _authors_vgg19(folder: Path | None, channel_order: str, device: str):
    from . import kamitani

    return kamitani.load_vgg19(kamitani.files_in(folder), channel_order).to(device)


def authors_vgg19(profile: Profile) -> torch.nn.Module:
    """The authors' Caffe VGG19 (recon.kamitani.CaffeVGG19), frozen, with their input convention."""
    if profile.vgg_width_divisor != 1:
        raise ConfigError(f"models.vgg19 'authors' is the full-width VGG19; vgg_width_divisor is "
                          f"{profile.vgg_width_divisor}")
    return _authors_vgg19(profile.authors_gan_dir, profile.vgg19_channel_order, profile.device)


@lru_cache(maxsize=2)
def _authors_generator(folder: Path | None, channel_order: str, device: str):
    from . import kamitani, methods

    files = kamitani.files_in(folder)
    network = kamitani.load_generator(files).to(device)
    return methods.AuthorsDGNGenerator(network, kamitani.code_upper_bound(files), kamitani.image_mean_bgr(files),
                                       channel_order, kamitani.VGG19_SIDE)


def authors_feature_std(profile: Profile, layers) -> dict[str, float]:
    """The mean of the authors' feat_std0 per layer, by recon's layer names (``"2"`` for conv1_2...)."""
    from . import kamitani

    names = {recon_name: authors_layer_name(recon_name) for recon_name in layers}
    by_authors = kamitani.feature_std(kamitani.files_in(profile.authors_gan_dir), list(names.values()))
    return {recon_name: by_authors[name] for recon_name, name in names.items()}


def check_authors_files(profile: Profile) -> Profile:
    """Where the profile names the authors' +G networks (``generator`` or ``models.vgg19`` "authors"), every
    cookbook file they read present, and the small ones read whole, before anything is computed: a run fails at
    once naming the first missing or malformed file (the weights' keys are checked when they load). Returns the
    profile, unchanged."""
    from . import kamitani

    uses_generator, uses_vgg19 = profile.generator == AUTHORS, profile.models.vgg19 == AUTHORS
    if not (uses_generator or uses_vgg19):
        return profile
    files = kamitani.files_in(profile.authors_gan_dir)
    kamitani.image_mean_bgr(files)
    if uses_vgg19:
        files.existing("vgg19_weights")
        if profile.generator_rescale_features:
            kamitani.feature_std(files, [authors_layer_name(layer) for layer in profile.vgg_layers])
    if uses_generator:
        files.existing("generator_weights")
        kamitani.code_upper_bound(files)
    return profile


def authors_layer_name(layer: str) -> str:
    """bdpy's name of a recon VGG19 layer (a convolution's output or fc6-fc8), as feat_std0 is keyed."""
    from .kamitani import BDPY_LAYER_NAMES

    if str(layer) not in BDPY_LAYER_NAMES:
        raise ConfigError(f"VGG19 layer {layer!r} is not one of bdpy's (feat_std0 has the convolutions' outputs "
                          f"and fc6-fc8: {list(BDPY_LAYER_NAMES)})")
    return BDPY_LAYER_NAMES[str(layer)]


def vgg19_features(profile: Profile) -> torch.nn.Module:
    """The VGG19 of +G's feature matching: its ``features`` stack (layer indices as torchvision's), or the
    whole network when the profile's layers include fc6 / fc7 / fc8 (the authors' +G), or with ``models.vgg19``
    "authors" their Caffe VGG19 from the cookbook's file (:func:`authors_vgg19`)."""
    from .features import VGG19_FC_LAYERS

    if profile.models.vgg19 == AUTHORS:
        return authors_vgg19(profile)
    if any(layer in VGG19_FC_LAYERS for layer in profile.vgg_layers):
        if profile.vgg_width_divisor != 1:
            raise ConfigError(f"vgg_layers {profile.vgg_layers} include fully connected layers, which only the "
                              f"full-width VGG19 has (vgg_width_divisor is {profile.vgg_width_divisor})")
        return _torchvision("vgg19", profile.models.vgg19, profile.device)
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
    return manifest.read(folder.parent)


@lru_cache(maxsize=2)
def _dgn(path: str, device: str, dtype: torch.dtype):
    from .methods import DeepGeneratorNetwork

    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelNotAvailableError(
            f"missing DGN weights {file}: convert the Caffe generator of Shen et al. (2019) to safetensors "
            "with the layer names of recon.methods.DeepGeneratorNetwork, or use generator='pixels'")
    network = DeepGeneratorNetwork()
    try:
        network.load_state_dict(load_file(file))
    except (RuntimeError, OSError) as err:
        raise ModelNotAvailableError(f"DGN weights {file} do not fit recon.methods.DeepGeneratorNetwork: {err}") from err
    return network.to(device, dtype).eval().requires_grad_(False)


def gan_generator(profile: Profile):
    """The +G generator the profile names: ``pixels``, ``vae`` (the SD VAE's latent of a ``generator_size``
    image), ``authors`` (their relu7 generator from the cookbook's files: :class:`recon.methods.AuthorsDGNGenerator`)
    or ``dgn:<file>``."""
    from . import methods

    spec = profile.generator
    if spec == "pixels":
        space = "caffe" if profile.generator_optimiser == "sgd" else "sigmoid"  # the units of the authors' lr
        return methods.PixelGenerator(profile.generator_size, device=profile.device, space=space)
    if spec == "vae":
        pipe = img2img(profile)
        side = profile.generator_size // pipe.vae_scale_factor
        return methods.VAEGenerator(pipe.vae, (pipe.vae.config.latent_channels, side, side))
    if spec.startswith("dgn:"):
        return methods.DGNGenerator(_dgn(spec[4:], profile.device, torch_dtype(profile)), profile.generator_size)
    if spec == AUTHORS:
        if profile.generator_size != 224:
            raise ConfigError(f"generator 'authors' feeds VGG19 the 224 px centre of its 256 px image; "
                              f"generator_size is {profile.generator_size}")
        return _authors_generator(profile.authors_gan_dir, profile.vgg19_channel_order, profile.device)
    raise ValueError(f"unknown +G generator {spec!r}; expected 'pixels', 'vae', 'authors' or 'dgn:<weights file>'")


def release() -> None:
    """Drop every model this module memoised and return the GPU's cached blocks, so that the next job's models fit
    beside nothing else (:func:`recon.stages.compute` calls it after each job on a GPU)."""
    import gc

    for value in list(globals().values()):
        clear = getattr(value, "cache_clear", None)
        if callable(clear) and getattr(value, "__module__", None) == __name__:
            clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
