"""The toy's trained VGG19 stand-in: its recipe, and saving / loading it through recon.models."""

import dataclasses
import json
import re

import pytest
import torch

from recon import models
from recon.profiles import get_profile
from recon.toy.zoo import REBUILD_COMMAND, ZooError, vgg
from recon.toy.zoo.__main__ import _write_manifest
from recon.toy.zoo.train import SceneData

REBUILD = re.escape(f"`{REBUILD_COMMAND}`")


@pytest.fixture(scope="module")
def data():
    return SceneData.draw(12, 0, 32)


def _state(features):
    return {k: v.clone() for k, v in features.state_dict().items()}


def test_recipe_trains_the_torchvision_layer_stack_and_reports_quality(data):
    features = vgg.narrowed_vgg19(8, 0)
    assert len(features) == 37 and isinstance(features[34], torch.nn.Conv2d)  # torchvision's VGG19 indices
    assert features[0].out_channels == 8 and features[34].out_channels == 64
    before = _state(features)
    head = vgg.label_head(features)
    stats = vgg.train_vgg19(features, data, steps=3, batch_size=4, lr=1e-3, seed=0, head=head, progress=False)
    assert {"steps", "train_seconds", "final_loss", "lr", "batch_size"} <= set(stats) and stats["steps"] == 3
    assert json.loads(json.dumps(stats)) == stats  # goes into the manifest as is
    assert any(not torch.equal(before[k], v) for k, v in features.state_dict().items())
    assert not features.training and not any(p.requires_grad for p in features.parameters())

    again = vgg.narrowed_vgg19(8, 0)
    vgg.train_vgg19(again, data, steps=3, batch_size=4, lr=1e-3, seed=0, head=vgg.label_head(again), progress=False)
    for k, v in features.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)  # seeded: reproducible

    q = vgg.quality(features, head, data)
    assert q["n_scenes"] == len(data)
    assert {"mean_auc", "label_accuracy", "exact_match", "top1_category", "top1_colour", "top1_background"} <= set(q)
    assert all(0 <= v <= 1 for k, v in q.items() if k != "n_scenes")


def test_auc_counts_ties_as_half():
    import numpy as np

    assert vgg._auc(np.array([0.2, 0.9, 0.1]), np.array([0, 1, 0])) == 1.0
    assert vgg._auc(np.zeros(4), np.array([0, 1, 0, 1])) == 0.5
    assert vgg._auc(np.zeros(3), np.zeros(3)) is None


def _zoo_with_vgg(root, features, width_divisor=8):
    """A zoo folder holding only ``vgg19``, with its manifest entry (as build_zoo writes it)."""
    vgg.save_vgg19(features, root / "vgg19", width_divisor=width_divisor, input_size=64)
    _write_manifest(root, {"vgg19": {"class": vgg.MODEL_CLASS, "recipe": "test", "seed": 0, "steps": 0}})
    return root / "vgg19"


def test_saved_weights_load_through_the_profile(tmp_path):
    features = vgg.narrowed_vgg19(8, 3)
    folder = _zoo_with_vgg(tmp_path / "zoo", features)
    config = json.loads((folder / "config.json").read_text())
    assert config["torchvision_cfg"] == "E" and config["width_divisor"] == 8 and config["input_size"] == 64
    assert config["layers"] == models.vgg19_layer_config(8) and config["batch_norm"] is False
    assert config["normalisation"]["mean"] == pytest.approx([0.485, 0.456, 0.406])

    toy = get_profile("toy")
    profile = dataclasses.replace(toy, models=dataclasses.replace(toy.models, vgg19=str(folder)))
    loaded = models.vgg19_features(profile)
    assert isinstance(loaded, torch.nn.Sequential) and len(loaded) == 37 and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    for k, v in features.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    by_file = models._vgg19_features(str(folder / "model.safetensors"), 8, "cpu")
    for k, v in features.state_dict().items():
        torch.testing.assert_close(by_file.state_dict()[k], v)
    assert len(models._vgg19_features("seed:0", 8, "cpu")) == 37  # seeded random weights still work


def test_width_divisor_must_match_the_profile(tmp_path):
    folder = _zoo_with_vgg(tmp_path / "zoo", vgg.narrowed_vgg19(4, 0), width_divisor=4)
    with pytest.raises(ValueError, match=r"model\.safetensors.*width divisor 4.*config\.json.*vgg_width_divisor is 8"):
        models._vgg19_features(str(folder), 8, "cpu")
    bare = tmp_path / "bare" / "weights.safetensors"
    bare.parent.mkdir()
    (folder / "model.safetensors").rename(bare)
    with pytest.raises(ValueError, match=r"weights\.safetensors.*width divisor 4.*vgg_width_divisor is 8"):
        models._vgg19_features(str(bare), 8, "cpu")


def test_missing_or_corrupt_weights_fail_with_the_rebuild_command(tmp_path):
    with pytest.raises(ZooError, match=rf"missing model folder .*vgg19.*{REBUILD}"):
        models._vgg19_features(str(tmp_path / "zoo" / "vgg19"), 8, "cpu")
    with pytest.raises(ZooError, match=rf"missing model file .*nope\.safetensors.*{REBUILD}"):
        models._vgg19_features(str(tmp_path / "nope.safetensors"), 8, "cpu")
    folder = _zoo_with_vgg(tmp_path / "zoo2", vgg.narrowed_vgg19(8, 0))
    (folder / "model.safetensors").unlink()
    with pytest.raises(ZooError, match=rf"missing model file .*model\.safetensors.*{REBUILD}"):
        models._vgg19_features(str(folder), 8, "cpu")
    folder = _zoo_with_vgg(tmp_path / "zoo3", vgg.narrowed_vgg19(8, 0))
    with open(folder / "model.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ZooError, match=rf"corrupt model file .*model\.safetensors.*{REBUILD}"):
        models._vgg19_features(str(folder), 8, "cpu")


def test_zoo_hooks_write_a_loadable_folder_and_manifest_entry(data, tmp_path):
    root = tmp_path / "zoo"
    entry = vgg.train_and_save(root / "vgg19", data, data, seed=5, steps=2, batch_size=4, lr=1e-3, progress=False,
                               input_size=32)
    assert entry["class"] == vgg.MODEL_CLASS and entry["seed"] == 5 and entry["steps"] == 2
    assert {"training", "train_seconds", "recipe"} <= set(entry) and "held_out_labels" in entry["quality"]
    json.dumps(entry)
    assert sorted(p.name for p in (root / "vgg19").iterdir()) == ["config.json", "model.safetensors"]
    with pytest.raises(ValueError, match="trains at the \\+G size 64 px"):
        vgg.train_and_save(tmp_path / "other", data, data, seed=5, steps=1, batch_size=4, lr=1e-3, progress=False)

    vgg.save_untrained(root / "vgg19-untrained", seed=7)
    _write_manifest(root, {"vgg19": entry, "vgg19-untrained": {"class": vgg.MODEL_CLASS, "seed": 7, "steps": 0}})
    assert json.loads((root / "vgg19-untrained" / "config.json").read_text())["width_divisor"] == 8
    loaded = models._vgg19_features(str(root / "vgg19-untrained"), 8, "cpu")
    for k, v in vgg.narrowed_vgg19(8, 7).state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    assert len(models._vgg19_features(str(root / "vgg19"), 8, "cpu")) == 37


def test_inversion_targets_are_exact_features_and_a_shrunk_noisy_stand_in(data):
    """benchmarks/gan_budget.py and the zoo page invert these: exact features, and ones pulled towards a mean."""
    import numpy as np

    from recon import features as feats

    toy = get_profile("toy")
    network = vgg.narrowed_vgg19(8, 0).eval()
    images, reference = data.images[:4], data.images[4:]
    exact, pulled = vgg.inversion_targets(network, images, reference, toy, shrink=1.0, noise=0.0,
                                          rng=np.random.default_rng(0))
    truth = feats.vgg_features(network, images, toy.vgg_layers, toy.vgg_pool, toy.generator_size, progress=False)
    ref = feats.vgg_features(network, reference, toy.vgg_layers, toy.vgg_pool, toy.generator_size, progress=False)
    assert set(exact) == set(pulled) == set(toy.vgg_layers)
    for layer in toy.vgg_layers:
        np.testing.assert_allclose(exact[layer], truth[layer])
        np.testing.assert_allclose(pulled[layer], np.broadcast_to(ref[layer].mean(0), truth[layer].shape), rtol=1e-6)
    _, noisy = vgg.inversion_targets(network, images, reference, toy, shrink=0.5, noise=0.5,
                                     rng=np.random.default_rng(0))
    _, again = vgg.inversion_targets(network, images, reference, toy, shrink=0.5, noise=0.5,
                                     rng=np.random.default_rng(0))
    for layer in toy.vgg_layers:
        assert noisy[layer].shape == truth[layer].shape and not np.allclose(noisy[layer], truth[layer])
        np.testing.assert_array_equal(noisy[layer], again[layer])  # seeded by the caller's generator


def test_batch_norm_folded_into_the_convs_gives_the_zoo_layout_and_the_same_outputs():
    """benchmarks/vgg_batchnorm.py trains with batch norm, then folds it away into torchvision's plain stack."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "vgg_batchnorm.py"
    spec = importlib.util.spec_from_file_location("vgg_batchnorm", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with_norm = vgg.narrowed_vgg19(16, 0, batch_norm=True)
    with torch.no_grad():  # running statistics and affine parameters far from the identity
        for module in with_norm:
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    plain = bench.fold_batch_norm(with_norm, 16)
    assert [type(m) for m in plain] == [type(m) for m in vgg.narrowed_vgg19(16, 0)]  # indices +G reads
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), with_norm.eval()(x), rtol=1e-4, atol=1e-5)
