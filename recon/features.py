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


@torch.no_grad()
def vae_latents(pipe, images, size: int, batch_size: int = 32, progress=True) -> np.ndarray:
    """z: the scaled mean of the VAE posterior, the latent Stable Diffusion denoises."""
    vae = pipe.vae
    out = []
    for rows in batches(len(images), batch_size, "VAE latents z", progress):
        x = to_unit_tensor(images[rows], size, vae.device).to(vae.dtype) * 2 - 1
        out.append((vae.encode(x).latent_dist.mean * vae.config.scaling_factor).float().cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def text_embeddings(pipe, captions: list[list[str]], batch_size: int = 64, progress=True) -> np.ndarray:
    """c: the text encoder's last hidden state per caption, averaged over an image's captions."""
    flat = [text for group in captions for text in group]
    owner = np.repeat(np.arange(len(captions)), [len(g) for g in captions])
    encoded = []
    for rows in batches(len(flat), batch_size, "text embeddings c", progress):
        tokens = pipe.tokenizer(
            flat[rows], padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        encoded.append(pipe.text_encoder(tokens.input_ids.to(pipe.text_encoder.device))[0].float().cpu())
    encoded = torch.cat(encoded).numpy()
    out = np.zeros((len(captions), *encoded.shape[1:]), dtype=np.float32)
    np.add.at(out, owner, encoded)
    return out / np.bincount(owner, minlength=len(captions)).reshape(-1, 1, 1)


@torch.no_grad()
def blip_vision(model, processor, images, batch_size: int = 32, progress=True) -> np.ndarray:
    """BLIP's ViT output tokens, the features its text decoder attends to."""
    out = []
    for rows in batches(len(images), batch_size, "BLIP ViT features", progress):
        pixels = processor(images=list(check_images(images[rows])), return_tensors="pt").pixel_values
        out.append(model.vision_model(pixel_values=pixels.to(model.device))[0].float().cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def dpt_hidden_states(model, processor, images, batch_size: int = 32, progress=True) -> np.ndarray:
    """(n, 4, tokens, width): the ViT hidden states DPT's neck reads (``backbone_out_indices``)."""
    keep = list(model.config.backbone_out_indices)
    out = []
    for rows in batches(len(images), batch_size, "DPT hidden states", progress):
        pixels = processor(images=list(check_images(images[rows])), return_tensors="pt").pixel_values
        states = model(pixel_values=pixels.to(model.device), output_hidden_states=True).hidden_states[1:]
        out.append(torch.stack([states[i] for i in keep], dim=1).float().cpu())
    return torch.cat(out).numpy()


def imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - IMAGENET_MEAN.to(x.device, x.dtype)) / IMAGENET_STD.to(x.device, x.dtype)


def vgg_activations(features: torch.nn.Sequential, x: torch.Tensor, layers, pool: int) -> dict[str, torch.Tensor]:
    """Activations after the given ``features`` indices, average-pooled to at most pool x pool.

    Differentiable: the +G reconstruction matches these against decoded ones.
    """
    wanted = {str(layer) for layer in layers}
    last = max(int(layer) for layer in wanted)
    out = {}
    h = imagenet_normalise(x)
    for index, module in enumerate(features):
        h = module(h)
        if str(index) in wanted:
            side = min(pool, h.shape[-1])
            out[str(index)] = F.adaptive_avg_pool2d(h, side).flatten(1)
        if index == last:
            break
    return out


@torch.no_grad()
def vgg_features(features, images, layers, pool: int, size: int, batch_size: int = 32, progress=True):
    """Pooled VGG19 activations per layer, as a dict of (n, dims) arrays."""
    device = next(features.parameters()).device
    out: dict[str, list] = {str(layer): [] for layer in layers}
    for rows in batches(len(images), batch_size, "VGG19 features", progress):
        acts = vgg_activations(features, to_unit_tensor(images[rows], size, device), layers, pool)
        for layer, value in acts.items():
            out[layer].append(value.float().cpu())
    return {layer: torch.cat(values).numpy() for layer, values in out.items()}
