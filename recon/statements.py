"""Every statement of the paper with the test that answers it (issue 48): the ledger and its computations.

:data:`LEDGER` holds one :class:`Statement` per statement of the paper: its section, a short verbatim quote, the
comparison that tests it, the metric(s), the unit of resampling, the verdict rule and the functions that compute
it. Its comparisons enter by name: the claims :func:`recon.claims.judge` computes (:data:`recon.claims.CLAIMS`, the
five of Table 1, and the all-metrics :data:`recon.claims.METHOD_CLAIMS` and :data:`recon.claims.CONTROL_CLAIMS`),
and the ledger's own paired comparisons (:data:`recon.claims.LEDGER_KINDS`, computed by :mod:`recon.ledger`).

Every computation here is a plain function of numpy arrays, seeded, and where it compares two things on the same
test images it is :func:`recon.claims.bootstrap_difference` and :func:`recon.claims.verdict` (:func:`paired`): the
same paired percentile bootstrap over test images, the same verdict words and the same borderline band. Choices,
each made before any number was seen and none tuned toward the paper:

- **Heterogeneity** (:func:`heterogeneity`). "Varied from subject to subject and from measure to measure" is a
  statement that the improvement is not one number. Its test is that all effects are equal, as a Wald test on the
  effects and their covariance: with independent subjects (a diagonal covariance of bootstrap variances) it is
  Cochran's Q of a meta-analysis, chi-squared with k - 1 degrees of freedom, beside I² and the DerSimonian-Laird
  between-subject variance tau²; across the seven metrics of one subject, whose gains are measured on the same
  images and are strongly correlated, the covariance is the joint bootstrap covariance over images
  (:func:`bootstrap_means`), so correlated metrics are not counted as independent evidence. Subjects of NSD saw the
  same test images, so their effects share image noise; treating them as independent makes Q conservative (their
  differences vary less than independence implies). The per-cell verdict table (:func:`cell_verdicts`) says which
  subject-metric cells improve; the test says whether the cells differ by more than their intervals allow.
- **Sharpness** (:func:`high_frequency_share`, :func:`laplacian_variance`). The primary measure is the share of an
  image's luminance power above :data:`SHARPNESS_CUTOFF` cycles per pixel (half the Nyquist frequency), after the
  mean is removed and a Hann window is applied (so the image's borders, which a periodic transform joins, add no
  false high frequencies). A share is unitless and bounded, and does not change when an image's contrast is scaled,
  so a generator that outputs washed-out images is not called blurred for that alone. The variance of the
  Laplacian, the usual focus measure, is given beside it; it grows with the square of contrast. Both see uint8
  rounding (white noise of 1/12 grey level squared) as a floor: past a Gaussian blur of about 2 px the share
  stops falling (of order 1e-5 on a 64 px image), so it orders images sharper than that.
- **Caption identification** (:func:`caption_identification`). Table 1's two-way protocol on an image-text
  similarity matrix S[i, j] = cos(image i, caption j): image i is the anchor (as the original is in Table 1) and its
  accuracy is the fraction of other captions j that are less similar to it than its own
  (:func:`recon.evaluate.identification_accuracy`). The ceiling is the reference captions (BLIP's of the seen
  images); chance is each image given the reference caption of another image (a seeded derangement).
- **Captioning scores** (:func:`caption_scores`): BLEU-4, ROUGE-L and CIDEr (pycocoevalcap's CIDEr-D, x10 scale) of
  each candidate against all its references, tokenised by :func:`tokenize` (lower case, punctuation removed, split
  on white space) in place of the Java PTB tokenizer of the COCO toolkit; CLIP-score (:func:`clip_score`) as
  torchmetrics defines it, 100 x max(cos, 0) of the image and text embeddings.
- **Spread of generations** (:func:`generation_spread`): the mean over pairs of an image's generations of
  1 - Pearson r of their features. The ledger names CNN(Middle), AlexNet's ``features.12``: a Table 1 space (no
  new network), and the last spatial map (6 x 6 x 256), so it sees layout and parts, what a depth map constrains,
  where CLIP(Late) sees mostly the category, which is stable with or without depth.
- **Gain against depth decoding** (:func:`gain_against_quality`): depth decoding quality is the per-image Pearson
  r of decoded and true depth maps (:func:`depth_quality`). The verdict compares the mean +D gain of the better-
  decoded half of the images with the worse half's (the same bootstrap as the claims), and the worst-decoded
  quartile's mean gain with 0. The least-squares slope of gain on quality, with a pairs bootstrap interval, is
  reported beside them but judges nothing: quality varies little between images (sd ~0.02 on the toy), so one
  image's gain moving by one comparison, as another CPU's rounding does, moves the slope by ~0.007 where the halves
  move by ~2e-4.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from .claims import (BORDERLINE, CLAIMS, CONTROL_CLAIMS, METHOD_CLAIMS, bootstrap_difference, resampled_indices,
                     verdict)
from .evaluate import METRICS, identification_accuracy

# ----------------------------------------------------------------------------------------------- claims
#: "Low-level latent features" of section 2.2: the claims page's metrics for +G (AlexNet's first two maps) ...
LOW_LEVEL = ("CNN(Early)", "CNN(Middle)")
#: ... against each network's last layer. CLIP(Early) and CLIP(Middle) are left out of both: neither low nor high.
HIGH_LEVEL = ("CLIP(Late)", "CNN(Late)", "Inception-v3")


# ----------------------------------------------------------------------------------------------- paired rows
def paired(a: np.ndarray, b: np.ndarray, kind: str = "greater", n_boot: int = 10_000, seed: int = 0,
           borderline: float = BORDERLINE) -> dict:
    """mean(b) - mean(a) over test images, its paired bootstrap interval and its verdict, as the claims table's
    columns (``difference``, ``ci_low``, ``ci_high``, ``verdict``). ``borderline`` is the claims' band, measured on
    identification accuracy; a measure on another scale should pass its own."""
    difference, low, high = bootstrap_difference(a, b, n_boot, seed)
    return dict(difference=difference, ci_low=low, ci_high=high,
                verdict=verdict(kind, low, high, borderline=borderline))


def above_chance(per_image: np.ndarray, chance: float = 0.5, n_boot: int = 10_000, seed: int = 0) -> dict:
    """Per-image identification accuracy against chance (0.5 in two-way identification): :func:`paired` of the
    constant ``chance`` and ``per_image``, so "reproduced" means the mean is above chance."""
    per_image = np.asarray(per_image, dtype=float)
    return paired(np.full(per_image.shape, chance), per_image, "greater", n_boot, seed)


def metric_contrast(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], low: Sequence[str] = LOW_LEVEL,
                    high: Sequence[str] = HIGH_LEVEL, n_boot: int = 10_000, seed: int = 0) -> dict:
    """Whether ``b``'s gain over ``a`` is larger on the ``low`` metrics than on the ``high`` ones ("particularly
    when evaluated with low-level latent features"): per image, the gain averaged over each group; :func:`paired`
    of the high-level gain (a) and the low-level gain (b)."""
    def gain(metrics):
        return np.mean([np.asarray(b[m], float) - np.asarray(a[m], float) for m in metrics], axis=0)

    return paired(gain(high), gain(low), "greater", n_boot, seed)


# ----------------------------------------------------------------------------------------------- heterogeneity
def bootstrap_means(values: np.ndarray, n_boot: int = 10_000, seed: int = 0, chunk: int = 1000) -> np.ndarray:
    """(n_boot, k) column means of ``values`` (n_images, k) over resamples of its rows (all columns resampled
    together), drawn as :func:`recon.claims.bootstrap_difference` draws them: the same seed, the same images."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or not np.isfinite(values).all():
        raise ValueError(f"bootstrap_means needs a finite (n_images, k) array, got shape {values.shape}")
    return np.concatenate([values[idx].mean(axis=1) for idx in resampled_indices(len(values), n_boot, seed, chunk)])


@dataclass(frozen=True)
class Heterogeneity:
    """The test that k effects are equal: ``q`` (Cochran's Q with a diagonal covariance) on ``df`` degrees of
    freedom and its ``p_value``; ``pooled``, the inverse-covariance weighted mean effect; ``i2``, the share of the
    spread beyond what the intervals allow, (Q - df) / Q floored at 0; ``tau2``, the DerSimonian-Laird variance of
    the true effects (NaN where the covariance is not diagonal)."""

    q: float
    df: int
    p_value: float
    pooled: float
    i2: float
    tau2: float

    def verdict(self, level: float = 0.05) -> str:
        """"reproduced" where the effects differ at ``level`` (the statement is that they vary), else "not
        reproduced"."""
        return "reproduced" if self.p_value < level else "not reproduced"


def heterogeneity(estimates: np.ndarray, covariance: np.ndarray) -> Heterogeneity:
    """Wald test that every one of ``estimates`` (k,) is the same effect, given their ``covariance`` (k, k) or
    their variances (k,): Q = (d - pooled)ᵀ Σ⁺ (d - pooled), chi-squared on rank(Σ) - 1 degrees of freedom (Σ⁺ the
    pseudo-inverse, so metrics that are copies of each other count once)."""
    d = np.asarray(estimates, dtype=float)
    cov = np.asarray(covariance, dtype=float)
    diagonal = cov.ndim == 1
    if diagonal:
        cov = np.diag(cov)
    if d.ndim != 1 or cov.shape != (len(d), len(d)) or len(d) < 2:
        raise ValueError(f"heterogeneity needs k >= 2 estimates and a (k, k) covariance, got {d.shape}, {cov.shape}")
    if not diagonal:
        diagonal = np.count_nonzero(cov - np.diag(np.diag(cov))) == 0
    if diagonal and (np.diag(cov) <= 0).any():
        raise ValueError(f"every effect needs a positive variance, got {np.diag(cov)}")
    precision = np.linalg.pinv(cov)
    ones = np.ones(len(d))
    pooled = float(ones @ precision @ d / (ones @ precision @ ones))
    residual = d - pooled
    q = float(residual @ precision @ residual)
    df = int(np.linalg.matrix_rank(cov)) - 1
    p_value = float(stats.chi2.sf(q, df)) if df > 0 else float("nan")
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    tau2 = float("nan")
    if diagonal:
        w = 1 / np.diag(cov)
        tau2 = max(0.0, (q - df) / (w.sum() - (w ** 2).sum() / w.sum()))
    return Heterogeneity(q=q, df=df, p_value=p_value, pooled=pooled, i2=i2, tau2=tau2)


def subject_heterogeneity(per_subject: Mapping[str, tuple[np.ndarray, np.ndarray]], n_boot: int = 10_000,
                          seed: int = 0) -> tuple[pd.DataFrame, Heterogeneity]:
    """Does one improvement differ between subjects? ``per_subject`` maps subject -> (a, b), each subject's
    per-image values of the two sides on one metric. Returns each subject's difference, its bootstrap standard error
    and interval (one row per subject), and Cochran's Q across subjects on those standard errors."""
    rows = []
    for subject, (a, b) in per_subject.items():
        gain = np.asarray(b, float) - np.asarray(a, float)
        se = float(bootstrap_means(gain, n_boot, seed)[:, 0].std(ddof=1))
        rows.append(dict(subject=subject, **paired(a, b, "greater", n_boot, seed), se=se))
    table = pd.DataFrame(rows).set_index("subject")
    return table, heterogeneity(table["difference"].to_numpy(), table["se"].to_numpy() ** 2)


def metric_heterogeneity(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], metrics: Sequence[str] = METRICS,
                         n_boot: int = 10_000, seed: int = 0) -> Heterogeneity:
    """Does one subject's improvement differ between metrics? The per-image gains b - a of every metric are
    resampled together over images, and their bootstrap covariance enters the Wald test (:func:`heterogeneity`)."""
    gains = np.stack([np.asarray(b[m], float) - np.asarray(a[m], float) for m in metrics], axis=1)
    means = bootstrap_means(gains, n_boot, seed)
    return heterogeneity(gains.mean(axis=0), np.cov(means, rowvar=False))


def cell_verdicts(table: pd.DataFrame, claim: str) -> pd.DataFrame:
    """One claim's verdicts from :func:`recon.claims.judge`'s table as subject x metric (the cells that improve and
    those that do not), with a last row counting the subjects of each verdict per metric."""
    rows = table[table["claim"] == claim]
    if rows.empty:
        raise KeyError(f"no rows of claim {claim!r} in the table")
    cells = rows.pivot(index="subject", columns="metric", values="verdict")
    cells = cells[[m for m in rows["metric"].drop_duplicates()]]
    counts = {m: ", ".join(f"{v} {n}/{len(cells)}" for v, n in cells[m].value_counts().items()) for m in cells}
    return pd.concat([cells, pd.DataFrame([counts], index=["all subjects"])])


# ----------------------------------------------------------------------------------------------- sharpness
#: The cut-off of :func:`high_frequency_share`, in cycles per pixel: half the Nyquist frequency (0.5).
SHARPNESS_CUTOFF = 0.25


def luminance(images: np.ndarray) -> np.ndarray:
    """(..., H, W) luma in [0, 1] of uint8 RGB images (..., H, W, 3), ITU-R BT.601 weights."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images (..., H, W, 3), got {images.dtype} {images.shape}")
    return images.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255


def _per_image(images: np.ndarray, measure: Callable[[np.ndarray], float]) -> np.ndarray:
    """``measure`` of each image's luma, over any leading axes (images, samples)."""
    images = np.asarray(images)
    lead = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:])
    return np.array([measure(luminance(image)) for image in flat], dtype=float).reshape(lead)


def high_frequency_share(images: np.ndarray, cutoff: float = SHARPNESS_CUTOFF) -> np.ndarray:
    """Per image (any leading axes), the share of the windowed luma's power spectrum above ``cutoff`` cycles per
    pixel (radially), of all power but the mean's; 0 for a constant image."""
    if not 0 < cutoff < np.sqrt(0.5):
        raise ValueError(f"cutoff must lie between 0 and {np.sqrt(0.5):.3f} cycles per pixel, got {cutoff}")

    def share(y: np.ndarray) -> float:
        h, w = y.shape
        window = np.outer(np.hanning(h), np.hanning(w))
        centred = (y - y.mean()) * window
        power = np.abs(np.fft.fft2(centred)) ** 2
        radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))
        total = power[radius > 0].sum()
        return float(power[radius > cutoff].sum() / total) if total > 0 else 0.0

    return _per_image(images, share)


def laplacian_variance(images: np.ndarray) -> np.ndarray:
    """Per image (any leading axes), the variance of the Laplacian of its luma in [0, 1] (scipy.ndimage.laplace,
    borders reflected): the usual focus measure."""
    return _per_image(images, lambda y: float(ndimage.laplace(y, mode="reflect").var()))


def sharpness_per_image(images: np.ndarray, measure: Callable = high_frequency_share) -> np.ndarray:
    """(n,) ``measure`` of each test image's images ((n, H, W, 3), or (n, n_samples, H, W, 3) with the sample axis
    averaged): the unit the blur comparisons resample."""
    values = measure(images)
    return values.reshape(len(values), -1).mean(axis=1)


def compare_sharpness(a_images: np.ndarray, b_images: np.ndarray, measure: Callable = high_frequency_share,
                      n_boot: int = 10_000, seed: int = 0, borderline: float = BORDERLINE) -> dict:
    """Whether ``b_images`` are sharper than ``a_images`` (the same test images, in order; see
    :func:`sharpness_per_image`): :func:`paired` of their ``measure``. For "[30] is blurred compared with Stable
    Diffusion's own output", ``a`` is [30] and ``b`` the reference."""
    return paired(sharpness_per_image(a_images, measure), sharpness_per_image(b_images, measure), "greater", n_boot,
                  seed, borderline)


# ----------------------------------------------------------------------------------------------- captions
def cosine_similarity(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, m) cosine similarities of the rows of ``x`` (n, d) and ``y`` (m, d); 0 against a zero row. Equal rows of
    ``y`` (the same decoded caption for several images) get equal columns bit for bit: the product is taken with
    each distinct row once, since a matrix product may round a column by where it falls in the kernel's tiles, and
    identification must see their ties as ties on every CPU."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    distinct, column = np.unique(y, axis=0, return_inverse=True)
    nx, ny = np.linalg.norm(x, axis=1, keepdims=True), np.linalg.norm(distinct, axis=1, keepdims=True)
    return ((x / np.where(nx == 0, 1, nx)) @ (distinct / np.where(ny == 0, 1, ny)).T)[:, column.reshape(-1)]


def caption_identification(similarity: np.ndarray, anchor: str = "image") -> np.ndarray:
    """Per-image two-way identification of captions, Table 1's protocol on S[i, j] = similarity(image i,
    caption j): with ``anchor="image"`` image i is right for each j whose caption is less similar to it than its
    own (strictly); ``anchor="caption"`` anchors caption i on the images instead (S transposed)."""
    similarity = np.asarray(similarity, dtype=float)
    if anchor not in ("image", "caption"):
        raise ValueError(f"anchor must be 'image' or 'caption', got {anchor!r}")
    return identification_accuracy(similarity if anchor == "image" else similarity.T)


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A seeded permutation of range(n) that moves every index (each image given another image's caption)."""
    if n < 2:
        raise ValueError("a derangement needs at least two items")
    rng = np.random.default_rng(seed)
    while True:  # a uniform permutation is a derangement with probability about 1/e
        perm = rng.permutation(n)
        if not (perm == np.arange(n)).any():
            return perm


def caption_identification_rows(image_embeddings: np.ndarray, decoded_text_embeddings: np.ndarray,
                                reference_text_embeddings: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-image caption identification of the decoded captions, of the reference captions (the ceiling: BLIP's
    captions of the seen images) and of chance (each image given the reference caption of another image,
    :func:`derangement`), all by cosine similarity of the image and text embeddings (CLIP's)."""
    decoded = cosine_similarity(image_embeddings, decoded_text_embeddings)
    reference = cosine_similarity(image_embeddings, reference_text_embeddings)
    shuffled = reference[:, derangement(len(reference), seed)]
    return {"decoded": caption_identification(decoded), "ceiling": caption_identification(reference),
            "chance": caption_identification(shuffled)}


def clip_score(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """Per pair (row i of each), 100 x max(cos, 0) of the image and text embeddings (torchmetrics' CLIPScore)."""
    x, y = np.asarray(image_embeddings, float), np.asarray(text_embeddings, float)
    if x.shape != y.shape:
        raise ValueError(f"one text per image: embeddings {x.shape} and {y.shape}")
    return 100 * np.maximum(np.einsum("ij,ij->i", *(v / np.linalg.norm(v, axis=1, keepdims=True) for v in (x, y))), 0)


_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def tokenize(caption: str) -> str:
    """Lower case, punctuation removed, split on white space, joined by single spaces (pycocoevalcap's scorers
    split on spaces); stands in for the COCO toolkit's PTB tokenizer, which needs Java."""
    return " ".join(_PUNCTUATION.sub(" ", caption.lower()).split())


CAPTION_SCORES = ("BLEU-4", "ROUGE-L", "CIDEr")


def caption_scores(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[dict, dict]:
    """BLEU-4, ROUGE-L and CIDEr (pycocoevalcap's CIDEr-D) of each candidate caption against all its references,
    both tokenised by :func:`tokenize`. Returns the corpus scores the captioning literature reports (BLEU-4 over
    the corpus, ROUGE-L and CIDEr averaged) and the per-image scores (the bootstrap's unit). CIDEr weighs n-grams by
    their rarity among the references of the whole set, so it needs many images and depends on the set."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(candidates) != len(references) or not len(candidates):
        raise ValueError(f"one list of references per candidate: {len(candidates)} and {len(references)}")
    if any(not refs for refs in references):
        raise ValueError("every candidate needs at least one reference")
    res = {i: [tokenize(c)] for i, c in enumerate(candidates)}
    gts = {i: [tokenize(r) for r in refs] for i, refs in enumerate(references)}
    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_each = Rouge().compute_score(gts, res)
    cider, cider_each = Cider().compute_score(gts, res)
    corpus = {"BLEU-4": float(bleu[3]), "ROUGE-L": float(rouge), "CIDEr": float(cider)}
    per_image = {"BLEU-4": np.asarray(bleu_each[3], float), "ROUGE-L": np.asarray(rouge_each, float),
                 "CIDEr": np.asarray(cider_each, float)}
    return corpus, per_image


# ----------------------------------------------------------------------------------------------- depth
def generation_spread(features: np.ndarray) -> np.ndarray:
    """(n_images,) mean over pairs of an image's generations of 1 - Pearson r of their features
    (n_images, n_samples, d): 0 when every generation is the same, about 1 when they are unrelated."""
    f = np.asarray(features, dtype=float)
    if f.ndim < 3 or f.shape[1] < 2:
        raise ValueError(f"features must be (n_images, n_samples >= 2, d...), got {f.shape}")
    f = f.reshape(*f.shape[:2], -1)
    f = f - f.mean(axis=2, keepdims=True)
    norms = np.linalg.norm(f, axis=2, keepdims=True)
    f = f / np.where(norms == 0, 1, norms)
    r = np.einsum("isd,itd->ist", f, f)
    upper = np.triu_indices(f.shape[1], k=1)
    return 1 - r[:, upper[0], upper[1]].mean(axis=1)


def compare_spread(features_without: np.ndarray, features_with: np.ndarray, n_boot: int = 10_000, seed: int = 0,
                   borderline: float = BORDERLINE) -> dict:
    """Whether adding an input (depth) makes an image's generations vary less: :func:`paired` of the spread with it
    (a) and without it (b), so the difference is how much the spread falls and "reproduced" means it does."""
    return paired(generation_spread(features_with), generation_spread(features_without), "greater", n_boot, seed,
                  borderline)


def depth_quality(decoded: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(n_images,) Pearson r of each decoded depth map with the seen image's (n_images, H, W): how well it was
    decoded. 0 for a constant map."""
    d, t = (np.asarray(x, float).reshape(len(x), -1) for x in (decoded, true))
    if d.shape != t.shape:
        raise ValueError(f"decoded {np.shape(decoded)} and true {np.shape(true)} depth maps do not match")
    d, t = d - d.mean(axis=1, keepdims=True), t - t.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(d, axis=1) * np.linalg.norm(t, axis=1)
    return np.einsum("ij,ij->i", d, t) / np.where(norms == 0, 1, norms)


def _slopes(gain: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Least-squares slopes of each row of ``gain`` on the same row of ``quality``; NaN where quality is constant."""
    q = quality - quality.mean(axis=-1, keepdims=True)
    var = (q ** 2).sum(axis=-1)
    cov = (q * (gain - gain.mean(axis=-1, keepdims=True))).sum(axis=-1)
    return np.divide(cov, var, out=np.full(var.shape, np.nan), where=var > 0)


def gain_against_quality(gain: np.ndarray, quality: np.ndarray, n_boot: int = 10_000, seed: int = 0,
                         worst: float = 0.25, level: float = 0.95, chunk: int = 1000) -> dict:
    """Per image, an input's gain (e.g. +T+G+D minus +T+G on CLIP(Late)) against how well that input was decoded
    (:func:`depth_quality`).

    ``halves`` is the mean gain of the images whose quality is above the median minus that of the others, with
    the claims' bootstrap interval (:func:`recon.claims.bootstrap_difference`) and the verdict that it is positive
    ("stable when well estimated": the better the depth, the larger the gain). ``slope`` is the least-squares slope
    of gain on quality with a percentile interval from resampling images (gain and quality together), no verdict:
    it amplifies small changes of single images' gains (see the module's documentation). ``worst_gain`` is the
    mean gain of the ``worst`` fraction of images by quality, with its paired bootstrap interval, and
    ``worst_verdict`` the verdict that it is negative ("a significant negative effect when the depth estimation was
    wrong"): "reproduced" when the whole interval is below 0. Both verdicts use the claims' borderline band, on the
    scale of the gain (identification accuracy)."""
    gain, quality = np.asarray(gain, float), np.asarray(quality, float)
    if gain.shape != quality.shape or gain.ndim != 1:
        raise ValueError(f"one gain and one quality per image, got {gain.shape} and {quality.shape}")
    boot = np.concatenate([_slopes(gain[idx], quality[idx])
                           for idx in resampled_indices(len(gain), n_boot, seed, chunk)])
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(boot[np.isfinite(boot)], [tail, 100 - tail])
    slope = float(_slopes(gain, quality))
    better = quality > np.median(quality)
    halves, halves_low, halves_high = bootstrap_difference(np.where(better, np.nan, gain),
                                                           np.where(better, gain, np.nan), n_boot, seed)
    worst_images = quality <= np.quantile(quality, worst)
    worst_gain, worst_low, worst_high = bootstrap_difference(np.zeros(worst_images.sum()), gain[worst_images],
                                                             n_boot, seed)
    return dict(halves=halves, halves_ci_low=halves_low, halves_ci_high=halves_high,
                halves_verdict=verdict("greater", halves_low, halves_high),
                slope=slope, slope_ci_low=float(low), slope_ci_high=float(high),
                worst_n=int(worst_images.sum()), worst_gain=worst_gain, worst_ci_low=worst_low,
                worst_ci_high=worst_high, worst_verdict=verdict("greater", -worst_high, -worst_low))


# ----------------------------------------------------------------------------------------------- the ledger
@dataclass(frozen=True)
class Statement:
    """One statement of the paper and its test.

    ``quote`` is verbatim from the paper, with " … " where words are left out; ``test`` the comparison in words;
    ``unit`` what is resampled; ``rule`` how the verdict is read; ``computations`` the functions that answer it
    (dotted names under ``recon``); ``claims`` the names of its paired comparisons: claims of
    :data:`recon.claims.ALL_CLAIMS` that :func:`recon.claims.judge` computes, or rows of
    :data:`recon.claims.LEDGER_KINDS` that :mod:`recon.ledger` computes; ``needs`` what the experiment does not yet
    make for it (empty where the cache holds everything)."""

    key: str
    section: str
    quote: str
    test: str
    metrics: tuple[str, ...]
    unit: str
    rule: str
    computations: tuple[str, ...] = ()
    claims: tuple[str, ...] = ()
    needs: str = ""


_IMAGES = "test image: a paired percentile bootstrap over test images, 10,000 resamples, seeded"
_GREATER = ("reproduced when the 95% interval is above 0, reversed below 0, not reproduced across; "
            "borderline within BORDERLINE")
_EQUAL = "reproduced when the 95% interval lies within ± EQUIVALENCE_MARGIN; borderline within BORDERLINE"
_Q = "reproduced when the effects differ at p < 0.05 (the statement is that they vary); the cell table shows where"

LEDGER = (
    Statement("improves_baseline", "2",
              "We found that these techniques generally improved accuracy over the baseline.",
              "each of +T, +T+G, +T+G+D against [30], per subject", METRICS, _IMAGES, _GREATER,
              ("claims.judge",), tuple(c.name for c in METHOD_CLAIMS)),
    Statement("heterogeneous", "2",
              "each technique did not necessarily improve all measures for all subjects. The degree of improvement "
              "over the baseline varied from subject to subject and from measure to measure.",
              "which subject-metric cells of each method against [30] improve; whether each improvement differs "
              "between subjects (Cochran's Q on bootstrap SEs) and between metrics (Wald test on the bootstrap "
              "covariance of the seven gains)",
              METRICS, _IMAGES + "; subjects as independent studies", _Q,
              ("statements.cell_verdicts", "statements.subject_heterogeneity", "statements.metric_heterogeneity"),
              tuple(c.name for c in METHOD_CLAIMS)),
    Statement("blurred", "2.1",
              "the reconstructed images were blurred compared with the realistic images that Stable Diffusion "
              "would normally output",
              "sharpness (the high-frequency share of the luma's power) of [30]'s generations against the same "
              "generator's text-to-image output from the seen image's own caption (BLIP's), against +T's and against "
              "the seen images",
              ("high-frequency share",), _IMAGES + ", generations averaged per image",
              _GREATER + " (b the reference, a [30]: reproduced = [30] blurrier)",
              ("statements.high_frequency_share", "statements.compare_sharpness"),
              ("[30] blurred: SD's text-to-image sharper", "[30] blurred: +T sharper",
               "[30] blurred: the seen images sharper")),
    Statement("retains_semantics", "2.1",
              "although the images generated from brain activity were blurred, they retained the semantic content",
              "[30]'s per-image CLIP(Late) identification against chance (0.5)", ("CLIP(Late)",), _IMAGES, _GREATER,
              ("statements.above_chance",), ("[30] retains semantics (above chance)",)),
    Statement("captions_represent", "2.1",
              "We confirmed that the proposed method generated captions that well represented the human visual "
              "experience of the subject.",
              "BLEU-4, ROUGE-L, CIDEr of the decoded captions against the COCO references and their CLIP-score "
              "with the seen image, beside the same scores of BLIP's captions of the seen images",
              CAPTION_SCORES + ("CLIP-score",), _IMAGES,
              "descriptive (no verdict: 'well represented' names no threshold); decoded against BLIP's captions "
              "by a paired difference, where " + _GREATER,
              ("statements.caption_scores", "statements.clip_score")),
    Statement("captions_identify", "2.1",
              "captions generated from the original image explained the original image better than captions "
              "assigned to other randomly selected images (result not shown)",
              "two-way identification of decoded caption i against seen image i vs image j by CLIP image-text "
              "similarity, against chance (another image's caption) and beside the ceiling (BLIP's caption of the "
              "seen image)",
              ("CLIP image-text cosine",), _IMAGES, _GREATER + " (decoded against chance)",
              ("statements.caption_identification_rows", "statements.paired"),
              ("decoded captions identify their image (above chance)",
               "BLIP's captions identify their image (above chance)")),
    Statement("text_improves", "2.1",
              "We also confirmed that this approach improved reconstruction performance",
              "+T against [30]", METRICS, _IMAGES, _GREATER, ("claims.judge",),
              (CLAIMS[0].name, METHOD_CLAIMS[0].name)),
    Statement("gan_low_level", "2.2",
              "reconstruction performance tended to increase, particularly when the reconstructed images were "
              "evaluated with low-level latent features",
              "+T+G against +T on the low-level metrics; and the per-image gain averaged over the low-level metrics "
              "against that over each network's last layer",
              LOW_LEVEL + HIGH_LEVEL, _IMAGES, _GREATER + " (the contrast: low-level gain minus high-level gain)",
              ("claims.judge", "statements.metric_contrast"), (CLAIMS[1].name, "+G gains more on low-level metrics")),
    Statement("depth_clip_late", "2.3",
              "We confirmed that depth information improved the quantitative evaluation (CLIP(Late)) across subjects.",
              "+T+G+D against +T+G", CLAIMS[2].metrics, _IMAGES, _GREATER, ("claims.judge",), (CLAIMS[2].name,)),
    Statement("sd2_depth", "2.3",
              "there is no change in reconstruction accuracy between Stable Diffusion 2.0 and Stable Diffusion 1.4",
              "[30] with SD 1.4 against [30] with SD 2.0", METRICS, _IMAGES, _EQUAL, ("claims.judge",),
              (CONTROL_CLAIMS[1].name,)),
    Statement("depth_stable", "2.3",
              "when depth information was estimated appropriately, the generated images had a fairly stable "
              "appearance across various generations",
              "spread of each image's generations (mean pairwise 1 - r in CNN(Middle)) of +T+G+D against +T+G, over "
              "all images and over the images whose depth was decoded best; the spread's fall against depth "
              "decoding quality",
              ("CNN(Middle)",), _IMAGES, _GREATER + " (the fall of the spread with depth)",
              ("statements.generation_spread", "statements.compare_spread", "statements.depth_quality",
               "statements.gain_against_quality"),
              ("+D steadies the generations (spread falls)", "+D gains more where depth is better decoded (halves)")),
    Statement("depth_harm", "2.3",
              "there was a significant negative effect when the depth estimation was wrong",
              "per image, the +D gain (+T+G+D minus +T+G, CLIP(Late)) against depth decoding quality (r of decoded "
              "and true depth maps): the better-decoded half's mean gain against the worse half's, and the "
              "worst-decoded quartile's mean gain (the slope of gain on quality beside them)",
              ("CLIP(Late)",), "test image: bootstrap of the halves' and of the quartile's means",
              "the halves: reproduced when the better half's gain exceeds the worse half's over the whole interval; "
              "the worst quartile: reproduced when its gain's interval is below 0",
              ("statements.depth_quality", "statements.gain_against_quality"),
              ("+D gains more where depth is better decoded (halves)", "+D harms the worst-decoded quartile (loss)")),
    Statement("overlap", "2.4",
              "We found no change in the quantitative evaluation",
              "[30] on all test images against [30] without the overlapping images",
              METRICS, _IMAGES, _EQUAL, ("claims.judge",), (CLAIMS[3].name, CONTROL_CLAIMS[0].name),
              needs="the authors' list of test images found in LAION-5B (NSD ships none)"),
    Statement("overlap_other_measures", "2.4",
              "There were no differences in other quantitative measures when we used CLIP and AlexNet",
              "the same, on the CLIP and AlexNet metrics", METRICS[:6], _IMAGES, _EQUAL, ("claims.judge",),
              (CONTROL_CLAIMS[0].name,), needs="the authors' list of test images found in LAION-5B (NSD ships none)"),
    Statement("sd2", "2.4",
              "We again found no change in the quantitative evaluation",
              "[30] with SD 1.4 against [30] with SD 2.0", METRICS, _IMAGES, _EQUAL, ("claims.judge",),
              (CLAIMS[4].name, CONTROL_CLAIMS[1].name)),
    Statement("figure2", "Fig. 2",
              "The decoded text, image produced by GAN, and decoded depth are shown below the reconstructed image.",
              "a figure, not a test: each method's reconstruction with its decoded text, +G image and decoded depth",
              (), "—", "none: a figure",
              ("figures.paper_figure2",)),
    Statement("figure3", "Fig. 3",
              "For each method, three generated images from different stochastic noise were chosen randomly.",
              "a figure, not a test: subj01, three of each method's five generations drawn by a seeded generator",
              (), "—", "none: a figure",
              ("figures.paper_figure3",)),
)


def ledger_table(ledger: Sequence[Statement] = LEDGER) -> pd.DataFrame:
    """The ledger as a table, one row per statement."""
    return pd.DataFrame([dict(key=s.key, section=s.section, quote=s.quote, test=s.test, metrics=", ".join(s.metrics),
                              unit=s.unit, rule=s.rule, computations=", ".join(s.computations),
                              claims="; ".join(s.claims), needs=s.needs) for s in ledger]).set_index("key")
