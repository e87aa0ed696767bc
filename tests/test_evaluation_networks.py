"""Random-weight evaluation networks against a trained CNN: the scores and their agreement."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torchvision.models import vgg as tv_vgg

from recon.models import vgg19_layer_config
from recon.toy import evaluation_networks as en

torch.set_num_threads(1)


class FakeExperiment:
    """What trained_cnn_scores reads: test images, reconstructions per method and the device."""

    def __init__(self, n=6, n_samples=2, size=32, seed=0):
        rng = np.random.default_rng(seed)
        self.test_images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        noise = rng.normal(0, 1, (n, n_samples, size, size, 3))
        # "good": the originals with a little noise; "bad": unrelated images
        self._images = {
            "good": np.clip(self.test_images[:, None] + 10 * noise, 0, 255).astype(np.uint8),
            "bad": rng.integers(0, 256, (n, n_samples, size, size, 3), dtype=np.uint8),
        }
        self.profile = SimpleNamespace(device="cpu")

    def reconstruct(self, method):
        return self._images[method]


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return tv_vgg.make_layers(vgg19_layer_config(16)).eval()


def test_trained_cnn_scores_identify_faithful_reconstructions(vgg):
    exp = FakeExperiment()
    scores = en.trained_cnn_scores(exp, vgg, ["good", "bad"], size=32, pool=4)
    assert scores.keys() == {"good", "bad"}
    for method in scores:
        assert scores[method].keys() == en.TRAINED_LAYERS.keys()
        for values in scores[method].values():
            assert values.shape == (6,) and np.all((values >= 0) & (values <= 1))
    assert scores["good"]["CNN(Early)"].mean() == 1.0
    assert scores["bad"]["CNN(Early)"].mean() < 1.0


def _scores(means, n=20, seed=0):
    rng = np.random.default_rng(seed)
    return {pair: {c: np.clip(m + rng.normal(0, 0.05, n), 0, 1) for c in en.TRAINED_LAYERS} for pair, m in means.items()}


def test_agreement_reports_rank_and_image_correlations():
    means = {("subj01", "[30]"): 0.6, ("subj01", "+T"): 0.7, ("subj02", "[30]"): 0.8, ("subj02", "+T"): 0.9}
    random_scores = _scores(means, seed=1)
    same_order = _scores({p: m - 0.1 for p, m in means.items()}, seed=2)
    reversed_order = _scores({p: 1.5 - m for p, m in means.items()}, seed=3)
    alike = en.agreement(random_scores, same_order)
    assert list(alike.index) == list(en.TRAINED_LAYERS)
    np.testing.assert_allclose(alike["rank rho (subject, method)"], 1.0)
    assert (alike["per-image r"] > 0.5).all() and (alike["pairs"] == 4).all()
    np.testing.assert_allclose(alike["random mean"] - alike["trained mean"], 0.1, atol=0.02)
    np.testing.assert_allclose(en.agreement(random_scores, reversed_order)["rank rho (subject, method)"], -1.0)


def test_agreement_rejects_mismatched_or_too_few_pairs():
    three = _scores({("s", "a"): 0.5, ("s", "b"): 0.6, ("s", "c"): 0.7})
    with pytest.raises(ValueError, match="same"):
        en.agreement(three, {k: v for k, v in list(three.items())[:2]})
    two = {k: v for k, v in list(three.items())[:2]}
    with pytest.raises(ValueError, match="at least 3"):
        en.agreement(two, two)

