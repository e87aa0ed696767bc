"""Two-way identification (Table 1) and the evaluation features it is computed on.

Takagi protocol (the authors' ``identification.py``): for each original image i, correlate its
features with those of every reconstruction j, one correlation per generated sample, and average
the correlations over the samples: R[i, j]. Image i's accuracy is the fraction of j != i with
R[i, i] > R[i, j] (a tie counts as a failure); the score is the mean over i.

Peers (Brain-Diffuser, MindEye) anchor on the reconstruction and use one sample; that protocol is
:func:`two_way_identification_reconstruction_anchor`. Every reported number names its protocol.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torchvision.models.feature_extraction import create_feature_extractor

from . import models
from .config import METRICS, PEER_RESOLUTION, Profile  # noqa: F401 - METRICS, PEER_RESOLUTION are part of this module's API
from .features import batches, check_images, imagenet_normalise, to_unit_tensor

PROTOCOL = "Takagi: original anchors, r averaged over 5 samples"

#: Table 1 of the paper: (subject, method) -> the seven METRICS.
PAPER_TABLE1 = {
    ("subj01", "[30]"): (0.795, 0.732, 0.774, 0.851, 0.831, 0.830, 0.759),
    ("subj01", "+T"): (0.922, 0.836, 0.859, 0.901, 0.934, 0.926, 0.877),
    ("subj01", "+T+G"): (0.910, 0.848, 0.870, 0.922, 0.949, 0.938, 0.879),
    ("subj01", "+T+G+D"): (0.901, 0.829, 0.877, 0.905, 0.944, 0.917, 0.856),
    ("subj02", "[30]"): (0.772, 0.709, 0.768, 0.830, 0.819, 0.815, 0.725),
    ("subj02", "+T"): (0.904, 0.818, 0.842, 0.873, 0.922, 0.923, 0.854),
    ("subj02", "+T+G"): (0.889, 0.834, 0.853, 0.912, 0.944, 0.933, 0.867),
    ("subj02", "+T+G+D"): (0.885, 0.821, 0.869, 0.892, 0.934, 0.905, 0.848),
    ("subj05", "[30]"): (0.742, 0.707, 0.778, 0.800, 0.817, 0.825, 0.761),
    ("subj05", "+T"): (0.874, 0.808, 0.846, 0.834, 0.914, 0.922, 0.866),
    ("subj05", "+T+G"): (0.802, 0.779, 0.852, 0.809, 0.905, 0.920, 0.867),
    ("subj05", "+T+G+D"): (0.788, 0.753, 0.861, 0.791, 0.897, 0.885, 0.842),
    ("subj07", "[30]"): (0.726, 0.693, 0.753, 0.775, 0.793, 0.801, 0.726),
    ("subj07", "+T"): (0.839, 0.775, 0.819, 0.799, 0.885, 0.890, 0.835),
    ("subj07", "+T+G"): (0.861, 0.814, 0.836, 0.875, 0.919, 0.912, 0.843),
    ("subj07", "+T+G+D"): (0.845, 0.781, 0.858, 0.846, 0.907, 0.885, 0.825),
}


#: Bytes of one float32 column chunk (originals and generated rows together) in correlation_matrix:
#: bounds memory whatever the feature size (263,168 dims x 5,892 rows is 6 GB in float32).
CHUNK_BYTES = 256 * 2**20


def _flatten(originals, generated) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) originals and (n, n_samples, d) generated, as views where the inputs allow (memmaps stay on disk)."""
    originals = np.asarray(originals)
    originals = originals.reshape(len(originals), -1)
    generated = np.asarray(generated)
    if generated.ndim == 2:
        generated = generated[:, None]
    generated = generated.reshape(generated.shape[0], generated.shape[1], -1)
    if generated.shape[-1] != originals.shape[-1]:
        raise ValueError(f"originals {originals.shape} and generated {generated.shape} do not match")
    return originals, generated


def _column_chunks(d: int, rows: int, chunk_size: int | None) -> list[slice]:
    if chunk_size is None:
        chunk_size = max(1, CHUNK_BYTES // (4 * rows))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 column, got {chunk_size}")
    return [slice(start, min(start + chunk_size, d)) for start in range(0, d, chunk_size)]


class _ChunkReader:
    """Copies column chunks of one array into a reused float32 buffer, as a (rows, width) tensor.

    The buffer is the only copy of the data ever made (a memmap is read a chunk at a time), and
    reusing it spares the page faults (system time) of a fresh 200 MB allocation per chunk."""

    def __init__(self, x: np.ndarray, device: torch.device):
        self.x, self.device, self.buffers = x, device, {}

    def __call__(self, columns: slice) -> torch.Tensor:
        width = columns.stop - columns.start
        if width not in self.buffers:
            self.buffers[width] = np.empty((*self.x.shape[:-1], width), dtype=np.float32)
        buffer = self.buffers[width]
        np.copyto(buffer, self.x[..., columns], casting="same_kind")
        return torch.from_numpy(buffer).reshape(-1, width).to(self.device)


@contextmanager
def _ieee_float32_matmul():
    """Full float32 products: TF32 (a 10-bit mantissa) on a GPU would move r in the third decimal."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


@torch.no_grad()
def correlation_matrix(originals: np.ndarray, generated: np.ndarray, device: str | torch.device = "cpu",
                       chunk_size: int | None = None) -> np.ndarray:
    """R[i, j] = mean over samples k of Pearson r(originals[i], generated[j, k]), as float64.

    originals: (n, d); generated: (n, n_samples, d) or (n, d) for one sample. Inputs may be memmaps
    of several GB, so nothing is copied whole: pass 1 sums each row in float64 (numpy, no copy)
    for its mean; pass 2 reads the feature dimension in float32 chunks of ``chunk_size`` columns
    (by default ``CHUNK_BYTES`` per chunk), centres them, and accumulates their matrix product
    (torch, on ``device``) and squared norms in float64; r is the product over the norms. The float64
    einsum this replaces ran at ~1 GMAC/s, the float32 product at tens on two CPU cores (see
    ``benchmarks/identification.py``), ~1e-7 from the float64 r. A constant row has an exact mean and r = 0 as before, and identical inputs give identical
    r, so ties stay ties (failures) in :func:`identification_accuracy`.
    """
    if len(np.asarray(generated)) != len(originals):
        raise ValueError(f"originals {np.shape(originals)} and generated {np.shape(generated)} do not match")
    return cross_correlations(originals, generated, device, chunk_size)


@torch.no_grad()
def cross_correlations(originals: np.ndarray, generated: np.ndarray, device: str | torch.device = "cpu",
                       chunk_size: int | None = None) -> np.ndarray:
    """R[i, j] = mean over samples k of r(originals[i], generated[j, k]) for any number of rows j.

    :func:`correlation_matrix` is the square case; this is how R is built a batch of generated
    images at a time, without keeping their features."""
    originals, generated = _flatten(originals, generated)
    n, n_samples, d = generated.shape
    device = torch.device(device)
    # pass 1: exact float64 row sums (a constant float32 row gets its exact value as mean)
    means_o = torch.from_numpy(originals.sum(axis=-1, dtype=np.float64) / d).float().to(device)[:, None]
    means_g = torch.from_numpy(generated.sum(axis=-1, dtype=np.float64).reshape(-1) / d).float().to(device)[:, None]
    # pass 2: centred products and squared norms, accumulated over column chunks in float64
    products = torch.zeros(len(originals), n * n_samples, dtype=torch.float64, device=device)
    chunk_products = torch.empty(products.shape, dtype=torch.float32, device=device)
    squares_o = torch.zeros(len(originals), dtype=torch.float64, device=device)
    squares_g = torch.zeros(n * n_samples, dtype=torch.float64, device=device)
    read_o, read_g = _ChunkReader(originals, device), _ChunkReader(generated, device)
    with _ieee_float32_matmul():
        for columns in _column_chunks(d, len(originals) + n * n_samples, chunk_size):
            o, g = read_o(columns).sub_(means_o), read_g(columns).sub_(means_g)
            squares_o += torch.linalg.vector_norm(o, dim=1).double().square()
            squares_g += torch.linalg.vector_norm(g, dim=1).double().square()
            products += torch.mm(o, g.T, out=chunk_products)
    norm_o, norm_g = squares_o.sqrt(), squares_g.sqrt()
    norm_o[norm_o == 0], norm_g[norm_g == 0] = 1, 1  # a constant row correlates 0 with everything
    r = products / norm_o[:, None] / norm_g[None, :]
    return r.reshape(len(originals), n, n_samples).mean(dim=2).cpu().numpy()


def identification_accuracy(R: np.ndarray) -> np.ndarray:
    """Per-row accuracy: fraction of j != i with R[i, i] > R[i, j] (strict, as the authors)."""
    n = len(R)
    if n < 2:
        raise ValueError("two-way identification needs at least two images")
    wins = R.diagonal()[:, None] > R
    np.fill_diagonal(wins, False)
    return wins.sum(axis=1) / (n - 1)


def two_way_identification(originals: np.ndarray, generated: np.ndarray, device: str = "cpu") -> float:
    """Takagi protocol; ``generated`` is (n, n_samples, d); the products run on ``device``."""
    return float(identification_accuracy(correlation_matrix(originals, generated, device)).mean())


def two_way_identification_reconstruction_anchor(originals: np.ndarray, generated: np.ndarray,
                                                 device: str = "cpu") -> float:
    """Brain-Diffuser / MindEye protocol: reconstruction j against original j vs original i, one sample."""
    generated = np.asarray(generated)
    first = generated[:, 0] if generated.ndim == 3 else generated
    return float(identification_accuracy(correlation_matrix(first, originals, device)).mean())


class EvaluationFeatures:
    """The seven feature spaces of Table 1 for a batch of uint8 images.

    CLIP: the vision tower's hidden states ``clip_eval_layers`` (Early, Middle) and the projected
    image embedding (Late). CNN: AlexNet ``features.5``, ``features.12``, ``classifier.5``.
    Inception-v3: the 2048-d pooled features. AlexNet and Inception see Resize + CenterCrop to
    ``eval_resolution`` (299 in the paper) with ImageNet normalisation.
    """

    def __init__(self, profile: Profile):
        self.profile = profile
        self.clip, self.clip_processor = models.clip(profile)
        self.alexnet = create_feature_extractor(
            models.torchvision_net(profile, "alexnet"), ["features.5", "features.12", "classifier.5"]
        )
        self.inception = create_feature_extractor(models.torchvision_net(profile, "inception"), ["avgpool"])

    def _cnn_input(self, images: np.ndarray) -> torch.Tensor:
        size = self.profile.eval_resolution
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(self.profile.device)
        short = min(x.shape[-2:])
        scale = size / short
        x = F.interpolate(x, size=(round(x.shape[-2] * scale), round(x.shape[-1] * scale)), mode="bilinear",
                          antialias=True, align_corners=False)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        return imagenet_normalise(x[..., top : top + size, left : left + size])

    @torch.no_grad()
    def __call__(self, images: np.ndarray, batch_size: int = 64, progress: bool = True) -> dict[str, np.ndarray]:
        images = check_images(images)
        out: dict[str, list] = {m: [] for m in METRICS}
        early, middle = self.profile.clip_eval_layers
        for rows in batches(len(images), batch_size, "evaluation features", progress):
            block = images[rows]
            pixels = self.clip_processor(images=list(block), return_tensors="pt").pixel_values
            pixels = pixels.to(self.profile.device, self.clip.dtype)  # CLIP loads in the profile's dtype
            vision = self.clip.vision_model(pixel_values=pixels, output_hidden_states=True)
            out["CLIP(Early)"].append(vision.hidden_states[early].flatten(1))
            out["CLIP(Middle)"].append(vision.hidden_states[middle].flatten(1))
            out["CLIP(Late)"].append(self.clip.visual_projection(vision.pooler_output))
            x = self._cnn_input(block)
            alex = self.alexnet(x)
            out["CNN(Early)"].append(alex["features.5"].flatten(1))
            out["CNN(Middle)"].append(alex["features.12"].flatten(1))
            out["CNN(Late)"].append(alex["classifier.5"].flatten(1))
            out["Inception-v3"].append(self.inception(x)["avgpool"].flatten(1))
        return {m: torch.cat(v).float().cpu().numpy() for m, v in out.items()}

    @torch.no_grad()
    def cnn_middle(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(n, d) CNN(Middle) features alone (AlexNet ``features.12``), as :meth:`__call__` computes them: for the
        spread of many generations, where the other six spaces are not needed."""
        images = check_images(images)
        out = [self.alexnet(self._cnn_input(images[rows]))["features.12"].flatten(1).float().cpu()
               for rows in batches(len(images), batch_size, "CNN(Middle) features", False)]
        return torch.cat(out).numpy()

    @torch.no_grad()
    def clip_text(self, captions: list[str], batch_size: int = 64) -> np.ndarray:
        """(n, d) CLIP text embeddings of ``captions`` (the text tower's projection, the space of CLIP(Late)'s image
        embeddings), truncated to the tokenizer's context."""
        out = []
        for rows in batches(len(captions), batch_size, "CLIP text embeddings", False):
            tokens = self.clip_processor(text=list(captions[rows]), padding=True, truncation=True,
                                         return_tensors="pt").to(self.profile.device)
            text = self.clip.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
            out.append(self.clip.text_projection(text.pooler_output).float().cpu())  # as CLIP(Late)'s images
        return torch.cat(out).numpy()


PROTOCOLS = {
    "takagi": two_way_identification,
    "reconstruction_anchor": two_way_identification_reconstruction_anchor,
}


def identification_scores(original_features: dict, generated_features: dict, keep: np.ndarray | None = None,
                          protocol: str = "takagi", device: str = "cpu") -> dict:
    """Two-way identification for every metric; ``keep`` selects test images (control analysis).

    ``device`` runs the correlation products there ("cuda" on a GPU: CLIP Early / Middle have
    263,168 dims at the paper's size)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    scores = {}
    for metric in METRICS:
        o, g = original_features[metric], generated_features[metric]
        if keep is not None:
            o, g = o[keep], g[keep]
        scores[metric] = PROTOCOLS[protocol](o, g, device)
    return scores


def per_image_scores_from_correlations(mean_over_samples: dict, first_sample: dict, keep: np.ndarray | None = None,
                                       protocol: str = "takagi") -> dict[str, np.ndarray]:
    """Each test image's two-way identification accuracy per metric, from R matrices.

    Rows of R are originals, columns reconstructions. ``mean_over_samples[m]`` is R averaged over
    the samples (Takagi protocol), ``first_sample[m]`` R of the first sample only: its transpose
    anchors on the reconstruction (Brain-Diffuser, MindEye). ``keep`` selects test images (R[i, j]
    depends on images i and j alone); the arrays then have one value per kept image. These are the
    per-image values the claims' paired differences are taken over."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    out = {}
    for metric in METRICS:
        R = mean_over_samples[metric] if protocol == "takagi" else first_sample[metric].T
        if keep is not None:
            R = R[np.ix_(keep, keep)]
        out[metric] = identification_accuracy(R)
    return out


def scores_from_correlations(mean_over_samples: dict, first_sample: dict, keep: np.ndarray | None = None,
                             protocol: str = "takagi") -> dict:
    """Two-way identification per metric: the mean of :func:`per_image_scores_from_correlations`."""
    per_image = per_image_scores_from_correlations(mean_over_samples, first_sample, keep, protocol)
    return {metric: float(values.mean()) for metric, values in per_image.items()}


#: The peers' pixel-level metrics (MindEye's definitions), computed on the first generation.
PIXEL_METRICS = ("PixCorr", "SSIM")


def pixel_metrics(originals: np.ndarray, reconstructions: np.ndarray, size: int = PEER_RESOLUTION,
                  batch_size: int = 32) -> dict[str, np.ndarray]:
    """PixCorr and SSIM of each reconstruction against its original, as MindEye defines them.

    Both images are resized to ``size`` px. PixCorr: Pearson r of the flattened RGB pixels. SSIM:
    scikit-image's ``structural_similarity`` on the grayscale images (``rgb2gray``) with a Gaussian
    window of sigma 1.5, population covariance and data range 1. ``reconstructions`` is (n, H, W, 3),
    one generation per original; images are processed ``batch_size`` at a time (at 425 px one
    image is 2 MB in float32)."""
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    originals, reconstructions = check_images(originals), check_images(reconstructions)
    if len(originals) != len(reconstructions):
        raise ValueError(f"{len(originals)} originals but {len(reconstructions)} reconstructions")
    out = {name: np.empty(len(originals)) for name in PIXEL_METRICS}
    for rows in batches(len(originals), batch_size, "pixel metrics", progress=False):
        o = to_unit_tensor(originals[rows], size).double()
        g = to_unit_tensor(np.asarray(reconstructions[rows]), size).double()
        o_c = o.flatten(1) - o.flatten(1).mean(dim=1, keepdim=True)
        g_c = g.flatten(1) - g.flatten(1).mean(dim=1, keepdim=True)
        norms = o_c.norm(dim=1) * g_c.norm(dim=1)
        r = (o_c * g_c).sum(dim=1) / torch.where(norms == 0, 1.0, norms)
        out["PixCorr"][rows] = r.numpy()
        for i, (a, b) in enumerate(zip(o.permute(0, 2, 3, 1).numpy(), g.permute(0, 2, 3, 1).numpy())):
            out["SSIM"][rows.start + i] = structural_similarity(
                rgb2gray(a), rgb2gray(b), gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                data_range=1.0)
    return out


def paper_table() -> pd.DataFrame:
    rows = [dict(subject=s, method=m, **dict(zip(METRICS, v))) for (s, m), v in PAPER_TABLE1.items()]
    return pd.DataFrame(rows).set_index(["subject", "method"])


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over subjects per method (rows indexed by subject, method)."""
    grouped = table.groupby(level="method", sort=False)
    return grouped.mean().round(3).astype(str) + " ± " + grouped.std(ddof=0).round(3).astype(str)


def side_by_side(reproduced: pd.DataFrame) -> pd.DataFrame:
    """Reproduced and paper values in one frame, columns (metric, source)."""
    paper = paper_table().reindex(reproduced.index)
    frame = pd.concat({"reproduced": reproduced, "paper": paper}, axis=1)
    return frame.swaplevel(0, 1, axis=1).reindex(columns=METRICS, level=0)
