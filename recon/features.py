"""Stimulus features: the decoding targets (z, c, BLIP ViT, DPT, VGG19) computed from images/captions.

Every function takes uint8 images (n, H, W, 3), works in batches under ``torch.no_grad`` with a
tqdm bar, and returns float32 numpy arrays. Caching is the caller's job (see ``experiment``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (n, H, W, 3), got {images.dtype} {images.shape}")
    return images


def to_unit_tensor(images: np.ndarray, size: int | None = None, device="cpu") -> torch.Tensor:
    """uint8 (n, H, W, 3) -> float (n, 3, size, size) in [0, 1]."""
    x = torch.from_numpy(check_images(images)).to(device).permute(0, 3, 1, 2).float() / 255.0
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def to_uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """float (n, 3, H, W) or (n, H, W, 3) in [0, 1] -> uint8 (n, H, W, 3)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    if x.ndim == 4 and x.shape[1] == 3 and x.shape[-1] != 3:
        x = x.transpose(0, 2, 3, 1)
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def batches(n: int, size: int, desc: str, progress: bool = True):
    for start in tqdm(range(0, n, size), desc=desc, disable=not progress, leave=False):
        yield slice(start, min(n, start + size))


class LazyImages:
    """Images read only when sliced: ``load(ids)`` -> uint8 (n, H, W, 3); ``len()`` is ``len(ids)``.

    Extractors slice it one batch at a time, so NSD's 8,859 training images (4.8 GB at 425 px)
    are never in memory together."""

    def __init__(self, load, ids):
        self.load = load
        self.ids = np.asarray(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, rows) -> np.ndarray:
        return self.load(self.ids[rows])


def write_batches(blocks, n: int, out=None, dtype=np.float32):
    """Write ``(rows, values)`` batches into ``out`` and return it.

    ``out`` is an array (for example a memory map), a callable ``(shape, dtype) -> array`` called
    once the first batch shows the per-row shape (how a cache entry is created on disk), or
    ``None`` for a new in-memory array. Only one batch is ever held besides ``out``."""
    target = out if isinstance(out, np.ndarray) else None
    for rows, values in blocks:
        values = values.float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        if target is None:
            shape = (n, *values.shape[1:])
            target = out(shape, dtype) if callable(out) else np.empty(shape, dtype=dtype)
        if target.shape[1:] != values.shape[1:] or len(target) != n:
            raise ValueError(f"output array has shape {target.shape}, expected ({n}, *{values.shape[1:]})")
        target[rows] = values
    if target is None:
        raise ValueError("no images to extract features from")
    return target


def pil_resize(images: np.ndarray, size: int, resample: str = "lanczos") -> np.ndarray:
    """uint8 (n, H, W, 3) resized to (n, size, size, 3) by PIL, as the authors' scripts resize."""
    from PIL import Image

    images = check_images(images)
    if images.shape[1:3] == (size, size):
        return images
    method = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[resample]
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), resample=method)) for im in images])


def posterior_generator(seed: int, image_id: int) -> torch.Generator:
    """The noise of one image's VAE posterior sample, from (seed, image id) alone, so not from batching."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(image_id) + 7)


@torch.no_grad()
def vae_latents(pipe, images, size: int, batch_size: int = 32, progress=True, out=None, sample_ids=None,
                seed: int = 0) -> np.ndarray:
    """z: the VAE latent Stable Diffusion denoises, scaled, of images PIL-Lanczos-resized to ``size``.

    With ``sample_ids`` (one id per image, e.g. its 73k id), a sample of the posterior drawn with
    :func:`posterior_generator`, as the authors' img2feat_sd.py (``get_first_stage_encoding``) does;
    without, the posterior's mean."""
    vae = pipe.vae

    def blocks():
        for rows in batches(len(images), batch_size, "VAE latents z", progress):
            x = torch.from_numpy(pil_resize(images[rows], size)).permute(0, 3, 1, 2).float() / 255.0
            posterior = vae.encode((x * 2 - 1).to(vae.device, vae.dtype)).latent_dist
            if sample_ids is None:
                latent = posterior.mean
            else:
                noise = torch.stack([torch.randn(posterior.mean.shape[1:], generator=posterior_generator(seed, i))
                                     for i in np.asarray(sample_ids)[rows]])
                latent = posterior.mean + posterior.std * noise.to(posterior.mean.device, posterior.mean.dtype)
            yield rows, latent * vae.config.scaling_factor

    return write_batches(blocks(), len(images), out)


@torch.no_grad()
def text_embeddings(pipe, captions: list[list[str]], batch_size: int = 64, progress=True, out=None) -> np.ndarray:
    """c: the text encoder's last hidden state per caption, averaged over an image's captions.

    Images are taken a batch at a time and their captions averaged at once, so only one batch of
    per-caption embeddings exists (not NSD's ~44,000 x 77 x 768)."""
    per_batch = max(1, batch_size // max(1, max((len(group) for group in captions), default=1)))

    def blocks():
        for rows in batches(len(captions), per_batch, "text embeddings c", progress):
            groups = captions[rows]
            if any(len(group) == 0 for group in groups):
                raise ValueError(f"an image in rows {rows.start}-{rows.stop - 1} has no caption")
            flat = [text for group in groups for text in group]
            tokens = pipe.tokenizer(flat, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                                    truncation=True, return_tensors="pt")
            encoded = pipe.text_encoder(tokens.input_ids.to(pipe.text_encoder.device))[0].float()
            owner = torch.repeat_interleave(torch.arange(len(groups)), torch.tensor([len(g) for g in groups]))
            means = torch.zeros((len(groups), *encoded.shape[1:]), device=encoded.device)
            means.index_add_(0, owner.to(encoded.device), encoded)
            yield rows, means / torch.tensor([len(g) for g in groups], device=encoded.device).view(-1, 1, 1)

    return write_batches(blocks(), len(captions), out)


@torch.no_grad()
def blip_vision(model, processor, images, batch_size: int = 32, progress=True, out=None, size: int | None = None,
                normalise: bool = True) -> np.ndarray:
    """BLIP's ViT output tokens, the features its text decoder attends to.

    ``size`` / ``normalise`` None / True: the processor's own input. The authors' img2feat_blip.py instead
    resizes to 240 px with PIL's Lanczos and feeds ToTensor()'s [0, 1] pixels (``normalise=False``); at a size
    other than the one it was trained at, the ViT interpolates its position embeddings (as BLIP's own
    loader does once for its checkpoint)."""

    def pixel_values(block):
        if size is None:
            return processor(images=list(block), return_tensors="pt", do_normalize=normalise).pixel_values
        block = pil_resize(block, size)
        if normalise:
            return processor(images=list(block), return_tensors="pt", do_resize=False).pixel_values
        return torch.from_numpy(block).permute(0, 3, 1, 2).float() / 255.0  # ToTensor()

    trained = processor.image_processor.size["height"]

    def blocks():
        for rows in batches(len(images), batch_size, "BLIP ViT features", progress):
            pixels = pixel_values(check_images(images[rows])).to(model.device, model.dtype)
            kwargs = {"interpolate_pos_encoding": True} if pixels.shape[-1] != trained else {}
            yield rows, model.vision_model(pixel_values=pixels, **kwargs)[0]

    return write_batches(blocks(), len(images), out)


@torch.no_grad()
def dpt_hidden_states(model, processor, images, batch_size: int = 32, progress=True, out=None,
                      layers=None) -> np.ndarray:
    """(n, 4, tokens, width): the ViT hidden states DPT's neck reads (``backbone_out_indices``).

    ``layers`` picks positions among those four (e.g. ``[2]``), to extract one layer at a time."""
    keep = list(model.config.backbone_out_indices)
    if layers is not None:
        keep = [keep[i] for i in layers]

    def blocks():
        for rows in batches(len(images), batch_size, "DPT hidden states", progress):
            pixels = processor(images=list(check_images(images[rows])), return_tensors="pt").pixel_values
            states = model(pixel_values=pixels.to(model.device, model.dtype), output_hidden_states=True).hidden_states[1:]
            yield rows, torch.stack([states[i] for i in keep], dim=1)

    return write_batches(blocks(), len(images), out)


def imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - IMAGENET_MEAN.to(x.device, x.dtype)) / IMAGENET_STD.to(x.device, x.dtype)


#: VGG19's fully connected layers by name -> their index in torchvision's ``classifier`` (the Linear's output,
#: before its ReLU, as bdpy's layer map for the authors' +G reads them)
VGG19_FC_LAYERS = {"fc6": 0, "fc7": 3, "fc8": 6}


def vgg_activations(network: torch.nn.Module, x: torch.Tensor, layers, pool: int) -> dict[str, torch.Tensor]:
    """Activations of ``layers``: indices into VGG19's ``features`` (the output of that module, e.g. ``"34"``
    conv5_4 before its ReLU, ``"35"`` after it) average-pooled to at most pool x pool, and ``fc6`` / ``fc7`` /
    ``fc8`` (before their ReLU), which need the whole torchvision VGG19 as ``network`` (otherwise its
    ``features`` stack will do).

    Differentiable: the +G reconstruction matches these against decoded ones. torchvision's ReLUs work in
    place, so a pre-ReLU activation is pooled (or copied) before the next module runs.
    """
    wanted = {str(layer) for layer in layers}
    fc = [name for name in VGG19_FC_LAYERS if name in wanted]
    stack = network.features if hasattr(network, "features") else network
    if fc and not hasattr(network, "classifier"):
        raise ValueError(f"layers {fc} need the whole VGG19 (features, avgpool, classifier), got a features stack")
    conv = [layer for layer in wanted if layer not in VGG19_FC_LAYERS]
    last = max((int(layer) for layer in conv), default=-1) if not fc else len(stack) - 1
    out = {}
    # the authors' Caffe VGG19 (recon.kamitani.CaffeVGG19) brings its own input convention
    h = getattr(network, "preprocess", imagenet_normalise)(x)
    for index, module in enumerate(stack):
        h = module(h)
        if str(index) in wanted:
            side = min(pool, h.shape[-1])
            # the pool's backward reads its input, which an in-place ReLU next would overwrite
            before_inplace = index + 1 < len(stack) and getattr(stack[index + 1], "inplace", False)
            out[str(index)] = F.adaptive_avg_pool2d(h.clone() if before_inplace else h, side).flatten(1)
        if index == last:
            break
    if fc:
        at = {VGG19_FC_LAYERS[name]: name for name in fc}
        h = torch.flatten(network.avgpool(h), 1)
        for index, module in enumerate(network.classifier[: max(at) + 1]):
            h = module(h)
            if index in at:
                out[at[index]] = h.clone()  # the next module is an in-place ReLU
    return out


def vgg_input(network: torch.nn.Module, images: np.ndarray, size: int, device) -> torch.Tensor:
    """uint8 stimuli -> RGB in [0, 1] at ``size`` for ``network``: resized by PIL's bilinear filter where the
    network says so (``resize_with = "pil_bilinear"``: the authors' VGG19, as bdpy's ImageDatasetNSD resizes),
    else by torch's antialiased bilinear."""
    if getattr(network, "resize_with", None) == "pil_bilinear":
        return to_unit_tensor(pil_resize(images, size, "bilinear"), None, device)
    return to_unit_tensor(images, size, device)


def vgg_layer_channels(network: torch.nn.Module, layers) -> dict[str, int | None]:
    """Each layer's channel count (the last convolution's at or before its index in ``features``), None for the
    fully connected fc6 / fc7 / fc8: how :func:`recon.methods.rescale_as_bdpy` unflattens a conv map."""
    stack = network.features if hasattr(network, "features") else network
    out = {}
    for layer in layers:
        if str(layer) in VGG19_FC_LAYERS:
            out[str(layer)] = None
            continue
        convs = [m for m in list(stack)[: int(layer) + 1] if isinstance(m, torch.nn.Conv2d)]
        if not convs:
            raise ValueError(f"VGG19 layer {layer!r} comes before any convolution")
        out[str(layer)] = convs[-1].out_channels
    return out


@torch.no_grad()
def vgg_feature_matrix(features, images, layers, pool: int, size: int, batch_size: int = 32, progress=True,
                       out=None) -> np.ndarray:
    """Pooled VGG19 activations of ``layers``, concatenated in that order: (n, sum of widths)."""
    device = next(features.parameters()).device
    dtype = next(features.parameters()).dtype

    def blocks():
        for rows in batches(len(images), batch_size, "VGG19 features", progress):
            acts = vgg_activations(features, vgg_input(features, images[rows], size, device).to(dtype), layers, pool)
            yield rows, torch.cat([acts[str(layer)] for layer in layers], dim=1)

    return write_batches(blocks(), len(images), out)


@torch.no_grad()
def vgg_layer_widths(features, layers, pool: int, size: int) -> dict[str, int]:
    """Columns of each layer in :func:`vgg_feature_matrix`, from one blank image."""
    blank = np.zeros((1, size, size, 3), dtype=np.uint8)
    device = next(features.parameters()).device
    dtype = next(features.parameters()).dtype
    acts = vgg_activations(features, to_unit_tensor(blank, size, device).to(dtype), layers, pool)
    return {str(layer): acts[str(layer)].shape[1] for layer in layers}


def split_vgg_matrix(matrix: np.ndarray, widths: dict[str, int]) -> dict[str, np.ndarray]:
    """Per-layer column views of a :func:`vgg_feature_matrix` (no copy)."""
    edges = np.cumsum([0, *widths.values()])
    return {layer: matrix[:, a:b] for layer, a, b in zip(widths, edges[:-1], edges[1:])}


def vgg_features(features, images, layers, pool: int, size: int, batch_size: int = 32, progress=True):
    """Pooled VGG19 activations per layer, as a dict of (n, dims) arrays."""
    matrix = vgg_feature_matrix(features, images, layers, pool, size, batch_size, progress)
    return split_vgg_matrix(matrix, vgg_layer_widths(features, layers, pool, size))
