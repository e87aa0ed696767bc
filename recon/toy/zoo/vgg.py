"""The toy's VGG19: torchvision's VGG19 layer stack, narrowed, trained to name what is in a scene.

+G (Shen et al. 2019) optimises an image until its VGG19 features match decoded ones. A
random-weight VGG19's features are random filters of the pixels, not the scene content a brain
encodes. Here the narrowed ``features`` stack (exactly what :func:`recon.models.vgg19_features`
builds: ``torchvision.models.vgg.make_layers`` on cfg ``"E"`` with every width divided, no batch
norm, torchvision's layer indices) gets a small head (global average and max pools, linear) and learns the scene
labels of :func:`recon.toy.scenes.label_vector` (object categories, colours, background) with a
multi-label BCE loss, on images fed exactly as +G feeds them: RGB in [0, 1] at the generation size,
ImageNet mean/std normalised (:func:`recon.features.imagenet_normalise`). Only ``features`` is
saved (``model.safetensors`` + ``config.json``); :func:`recon.models.vgg19_features` loads it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from scipy.stats import rankdata
from torchvision.models import vgg as tv_vgg
from tqdm.auto import tqdm

from .. import scenes
from ...features import IMAGENET_MEAN, IMAGENET_STD, imagenet_normalise
from ... import models
from ...models import NARROW_VGG19_CONFIG, NARROW_VGG19_WEIGHTS, vgg19_layer_config

WEIGHTS = NARROW_VGG19_WEIGHTS  # the loader's file names (recon.models)
CONFIG = NARROW_VGG19_CONFIG
MODEL_CLASS = "torchvision.models.vgg.VGG.features"


def layer_config(width_divisor: int) -> list:
    """torchvision's VGG19 layer list (cfg "E") with every width divided (at least 4 channels)."""
    return vgg19_layer_config(width_divisor)


def narrowed_vgg19(width_divisor: int, seed: int, *, batch_norm: bool = False) -> torch.nn.Sequential:
    """The seeded, untrained ``features`` stack, initialised as ``torchvision.models.VGG`` does (He normal,
    fan-out, zero biases). ``make_layers`` alone keeps PyTorch's default conv init, whose activations
    shrink ~1.7x per layer: 16 layers deep the net's outputs no longer depend on the image and training
    stalls at the label base rates. (So this is not the profile spec ``seed:<seed>``, which keeps it.)
    ``batch_norm`` puts one after each conv (``benchmarks/vgg_batchnorm.py``; the zoo's has none)."""
    torch.manual_seed(seed)
    features = tv_vgg.make_layers(layer_config(width_divisor), batch_norm=batch_norm)
    for module in features:
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
    return features


def labels(data) -> np.ndarray:
    """(n, labels) multi-hot targets of :func:`recon.toy.scenes.label_vector`."""
    return np.stack([scenes.label_vector(s) for s in data.scenes]).astype(np.float32)


def label_groups() -> dict[str, np.ndarray]:
    """Columns of each label group ('category', 'colour', 'background') of :func:`scenes.label_names`."""
    names = scenes.label_names()
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name.split(":", 1)[0], []).append(i)
    return {g: np.array(cols) for g, cols in groups.items()}


def label_head(features: torch.nn.Sequential) -> torch.nn.Linear:
    """The training head: last conv maps, global average- and max-pooled (max: is the object anywhere),
    concatenated -> one logit per scene label."""
    width = [m for m in features if isinstance(m, torch.nn.Conv2d)][-1].out_channels
    return torch.nn.Linear(2 * width, len(scenes.label_names()))


class Classifier(torch.nn.Module):
    """``features`` + global average and max pools + linear head over the scene labels (training only)."""

    def __init__(self, features: torch.nn.Sequential, head: torch.nn.Linear):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, unit_rgb: torch.Tensor) -> torch.Tensor:
        h = self.features(imagenet_normalise(unit_rgb))
        return self.head(torch.cat([h.mean(dim=(-2, -1)), h.amax(dim=(-2, -1))], dim=1))


def unit_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, H, W, 3) -> float (n, 3, H, W) in [0, 1]: :func:`recon.features.to_unit_tensor` at the
    images' own size (the zoo renders scenes at the generation size, so no resize)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def _augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flips and random crops of a reflection-padded image (labels unchanged)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def train_vgg19(features: torch.nn.Sequential, data, *, steps: int, batch_size: int, lr: float, seed: int,
                head: torch.nn.Linear | None = None, augment: bool = True, progress: bool = True) -> dict:
    """Train ``features`` in place: multi-label BCE on the scene labels through ``head`` (default: a
    fresh :func:`label_head`; pass your own to measure :func:`quality` afterwards).

    AdamW (weight decay 1e-4 on the weights), linear warm-up over 5% of the steps then cosine decay,
    gradients clipped to norm 1. ``data`` is a :class:`recon.toy.zoo.train.SceneData` rendered at
    the +G generation size. Returns what the manifest records."""
    torch.manual_seed(seed)
    model = Classifier(features, head if head is not None else label_head(features))
    model.train().requires_grad_(True)
    x_all, y_all = unit_pixels(data.images), torch.from_numpy(labels(data))
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(1.0, s / steps))))
    rng = np.random.default_rng([seed, 19])
    generator = torch.Generator().manual_seed(seed)
    start, losses = time.perf_counter(), []
    bar = tqdm(range(steps), desc="train VGG19", disable=not progress)
    for step in bar:
        rows = rng.integers(len(x_all), size=batch_size)
        x = _augment(x_all[rows], generator) if augment else x_all[rows]
        loss = F.binary_cross_entropy_with_logits(model(x), y_all[rows])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    model.eval().requires_grad_(False)
    return {"steps": steps, "train_seconds": round(time.perf_counter() - start, 1),
            "final_loss": round(float(np.mean(losses[-50:])), 5) if losses else None, "lr": lr,
            "batch_size": batch_size, "augment": augment}


@torch.no_grad()
def predict(features: torch.nn.Sequential, head: torch.nn.Linear, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Label probabilities (n, labels) of uint8 images."""
    model = Classifier(features, head).eval()
    return np.concatenate([torch.sigmoid(model(unit_pixels(images[i : i + batch_size]))).numpy()
                           for i in range(0, len(images), batch_size)])


def _auc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    positive, negative = scores[truth > 0.5], scores[truth <= 0.5]
    if len(positive) == 0 or len(negative) == 0:
        return None
    ranks = rankdata(np.concatenate([positive, negative]))  # ties share their mean rank
    return float((ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def quality(features: torch.nn.Sequential, head: torch.nn.Linear, held) -> dict:
    """Held-out label quality: mean ROC AUC over labels, per-label accuracy at 0.5, exact-match rate,
    and per group (category, colour, background) the share of scenes whose top label is present."""
    probs, truth = predict(features, head, held.images), labels(held)
    aucs = [a for a in (_auc(probs[:, j], truth[:, j]) for j in range(truth.shape[1])) if a is not None]
    hard = probs > 0.5
    out = {"n_scenes": len(truth), "mean_auc": round(float(np.mean(aucs)), 4),
           "label_accuracy": round(float((hard == (truth > 0.5)).mean()), 4),
           "exact_match": round(float((hard == (truth > 0.5)).all(axis=1).mean()), 4)}
    for group, cols in label_groups().items():
        top = cols[probs[:, cols].argmax(axis=1)]
        out[f"top1_{group}"] = round(float(truth[np.arange(len(truth)), top].mean()), 4)
    return out


def save_vgg19(features: torch.nn.Sequential, folder, *, width_divisor: int, input_size: int) -> Path:
    """Write ``features``' weights (``model.safetensors``) and its architecture (``config.json``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = layer_config(width_divisor)
    state = {k: v.detach().cpu().contiguous() for k, v in features.state_dict().items()}
    expected = {k for k, v in tv_vgg.make_layers(config).state_dict().items()}
    if set(state) != expected:
        raise ValueError(f"not a VGG19 features stack of width divisor {width_divisor}: keys {sorted(state)}")
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})
    (folder / CONFIG).write_text(json.dumps({
        "architecture": "torchvision.models.vgg.make_layers(cfg, batch_norm=False): VGG19 'features'",
        "torchvision_cfg": "E",
        "width_divisor": width_divisor,
        "layers": config,
        "batch_norm": False,
        "input_size": input_size,
        "input": "RGB in [0, 1], normalised (x - mean) / std",
        "normalisation": {"mean": IMAGENET_MEAN.flatten().tolist(), "std": IMAGENET_STD.flatten().tolist()},
        "labels": scenes.label_names(),
    }, indent=1) + "\n")
    return folder


def _toy_geometry(width_divisor: int | None, input_size: int | None) -> tuple[int, int]:
    """The toy profile's VGG width divisor and +G generation size, unless given."""
    if width_divisor is None or input_size is None:
        from ...profiles import get_profile

        toy = get_profile("toy")
        width_divisor = toy.vgg_width_divisor if width_divisor is None else width_divisor
        input_size = toy.generator_size if input_size is None else input_size
    return width_divisor, input_size


def save_untrained(folder, seed: int, *, width_divisor: int | None = None, input_size: int | None = None) -> Path:
    """The seeded initialisation of :func:`narrowed_vgg19`, saved as a trained one is (``--untrained`` zoo)."""
    width_divisor, input_size = _toy_geometry(width_divisor, input_size)
    return save_vgg19(narrowed_vgg19(width_divisor, seed), folder, width_divisor=width_divisor, input_size=input_size)


def load_features(folder) -> torch.nn.Sequential:
    """A saved stack (:func:`save_vgg19`'s folder, before any manifest lists it: a build's staging folder), loaded
    as the science loads the zoo's (its weights file, the width divisor its config records), frozen, on the CPU."""
    width_divisor = json.loads((Path(folder) / CONFIG).read_text())["width_divisor"]
    return models._vgg19_features(str(Path(folder) / WEIGHTS), width_divisor, "cpu")


def train_and_save(folder, data, held, *, seed: int, steps: int, batch_size: int, lr: float, progress: bool = True,
                   width_divisor: int | None = None, input_size: int | None = None) -> dict:
    """Train the toy's VGG19 on ``data``, measure it on ``held``, save it to ``folder``; return its
    manifest entry (the keys of ``trained.trained_entry``). Both data sets are rendered at the
    +G generation size (the toy profile's ``generator_size`` unless ``input_size`` is given)."""
    width_divisor, input_size = _toy_geometry(width_divisor, input_size)
    if data.images.shape[1:3] != (input_size, input_size):
        raise ValueError(f"VGG19 trains at the +G size {input_size} px; the scenes are {data.images.shape[1:3]}")
    features = narrowed_vgg19(width_divisor, seed)
    head = label_head(features)
    stats = train_vgg19(features, data, steps=steps, batch_size=batch_size, lr=lr, seed=seed, head=head,
                        progress=progress)
    save_vgg19(features, folder, width_divisor=width_divisor, input_size=input_size)
    recipe = (f"recon.toy.zoo.vgg.train_vgg19: torchvision's VGG19 layer stack (cfg E, widths / {width_divisor}, "
              f"He init) + pooled linear head, multi-label BCE on the scene labels (categories, colours, background), "
              f"flips and crops, at {input_size} px with ImageNet normalisation as +G feeds it, on {len(data)} simulated "
              f"scenes drawn from the zoo seed; only the layer stack is saved")
    return {"class": MODEL_CLASS, "seed": seed, "training": stats, "steps": stats["steps"],
            "train_seconds": stats["train_seconds"], "recipe": recipe,
            "quality": {"held_out_labels": quality(features, head, held)}}


def inversion_targets(network, images: np.ndarray, reference: np.ndarray, profile, *, shrink: float, noise: float,
                      rng: np.random.Generator) -> tuple[dict, dict]:
    """+G targets for ``images`` without a brain: their exact VGG19 features (the profile's layers, pooling and
    size), and a stand-in for decoded ones, pulled by ``shrink`` towards the ``reference`` images' mean feature (a
    ridge decoder shrinks towards its training mean) with Gaussian noise of ``noise`` times its sd added."""
    from ... import features as feats

    def matched(x):
        return feats.vgg_features(network, x, profile.vgg_layers, profile.vgg_pool, profile.generator_size,
                                  progress=False)

    exact, ref = matched(images), matched(reference)
    noisy = {k: ref[k].mean(0) + (1 - shrink) * (v - ref[k].mean(0)) + noise * ref[k].std(0) * rng.standard_normal(v.shape)
             for k, v in exact.items()}
    return exact, noisy


def inversion_quality(networks: dict, images: np.ndarray, reference: np.ndarray, profile, *, shrink: float = 0.5,
                      noise: float = 0.5, seed: int = 0, steps: int = 60, lr: float = 0.1) -> "pd.DataFrame":
    """How well +G's optimisation recovers held-out images through each VGG19 of ``networks``.

    For each network, the targets are the images' own VGG19 features (exact), and the same pulled by
    ``shrink`` towards the ``reference`` images' mean feature with Gaussian noise of ``noise`` times its
    sd added (a stand-in for features decoded from a noisy brain). Each is inverted in pixel space
    (:class:`~recon.methods.PixelGenerator`, ``steps`` of Adam at ``lr``), whatever generator the
    profile's +G uses, so that the table measures the feature space without a generator's image
    prior; the rows give PixCorr and SSIM against the true images (at their size).
    """
    import pandas as pd

    from ... import evaluate, methods

    rng = np.random.default_rng(seed)
    rows = []
    for name, network in networks.items():
        exact, noisy = inversion_targets(network, images, reference, profile, shrink=shrink, noise=noise, rng=rng)
        for targets_name, targets in (("exact features", exact), ("shrunk, noisy features", noisy)):
            out = methods.images_from_vgg_features(
                methods.PixelGenerator(profile.generator_size), network, targets, layers=profile.vgg_layers,
                pool=profile.vgg_pool, steps=steps, lr=lr, seed=profile.seed, batch_size=len(images),
                output_size=images.shape[1], progress=False)
            scores = evaluate.pixel_metrics(images, out, size=images.shape[1])
            rows.append({"VGG19": name, "targets": targets_name, "PixCorr": float(scores["PixCorr"].mean()),
                         "SSIM": float(scores["SSIM"].mean())})
    return pd.DataFrame(rows)
