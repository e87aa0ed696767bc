"""How far the toy's random-weight evaluation networks agree with a trained CNN.

The `toy` profile computes Table 1's CNN(Early/Middle/Late) columns with AlexNet and its
Inception-v3 column with Inception-v3, both with seeded random weights (trained ones would not fit
the repository). The zoo's VGG19 stand-in is trained on the toy world (:mod:`recon.toy.zoo.vgg`),
so it can say whether random features rank the methods as a trained network does: the same
reconstructions are scored by two-way identification (Takagi protocol, every sample) in the
trained VGG19's pooled maps at three depths, and compared with Table 1's scores of the same
images, per test image and per (subject, method).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from .. import evaluate, features

#: Table 1 column -> the trained VGG19 layer standing in for it (torchvision ``features`` indices:
#: pool2, pool4 and pool5, as AlexNet's ``features.5``, ``features.12`` and ``classifier.5`` run from
#: early maps to the last, most invariant stage).
TRAINED_LAYERS = {"CNN(Early)": "9", "CNN(Middle)": "27", "CNN(Late)": "36"}


def trained_cnn_scores(experiment, vgg, methods, *, size: int, pool: int = 8, batch_size: int = 64) -> dict:
    """Each test image's two-way identification in the trained VGG19's maps, per method and column.

    ``vgg`` is a VGG19 ``features`` stack (:func:`recon.models.vgg19_features`); images are resized
    to ``size`` (the size it was trained at) and its maps average-pooled to at most ``pool`` x ``pool``.
    Returns ``{method: {column: (n_test,) accuracies}}``, columns as in :data:`TRAINED_LAYERS`."""
    layers = list(TRAINED_LAYERS.values())
    kwargs = dict(layers=layers, pool=pool, size=size, batch_size=batch_size, progress=False)
    original = features.vgg_features(vgg, experiment.test_images, **kwargs)
    device = experiment.profile.device
    out = {}
    for method in methods:
        images = experiment.reconstruct(method)
        n, n_samples = images.shape[:2]
        generated = features.vgg_features(vgg, np.asarray(images).reshape(-1, *images.shape[2:]), **kwargs)
        out[method] = {
            column: evaluate.identification_accuracy(evaluate.cross_correlations(
                original[layer], generated[layer].reshape(n, n_samples, -1), device))
            for column, layer in TRAINED_LAYERS.items()}
    return out


def agreement(random_scores: dict, trained_scores: dict) -> pd.DataFrame:
    """Random against trained features, per Table 1 column.

    Both arguments map ``(subject, method)`` to ``{column: (n_test,) accuracies}``: the random ones
    from :meth:`recon.experiment.Experiment.per_image_scores`, the trained ones from
    :func:`trained_cnn_scores`. Per column: the mean accuracy under each, Spearman's rho over the
    (subject, method) means (does it rank the methods alike?), and Pearson's r over the test images
    of every (subject, method) (does it find the same images easy?)."""
    if random_scores.keys() != trained_scores.keys():
        raise ValueError("random and trained scores must cover the same (subject, method) pairs")
    pairs = list(random_scores)
    if len(pairs) < 3:
        raise ValueError(f"a rank correlation needs at least 3 (subject, method) pairs, got {len(pairs)}")
    rows = []
    for column in TRAINED_LAYERS:
        random_means = np.array([random_scores[p][column].mean() for p in pairs])
        trained_means = np.array([trained_scores[p][column].mean() for p in pairs])
        random_all = np.concatenate([random_scores[p][column] for p in pairs])
        trained_all = np.concatenate([trained_scores[p][column] for p in pairs])
        rows.append({
            "column": column,
            "random mean": random_means.mean(),
            "trained mean": trained_means.mean(),
            "rank rho (subject, method)": spearmanr(random_means, trained_means).statistic,
            "per-image r": pearsonr(random_all, trained_all).statistic,
            "pairs": len(pairs),
        })
    return pd.DataFrame(rows).set_index("column")

