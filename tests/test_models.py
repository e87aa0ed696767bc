"""The loader: models in the profile's dtype, and Hub ids that are not on this machine fail naming them."""

import dataclasses
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from recon import models
from recon.profiles import get_profile

HUB_LOADERS = {
    "CompVis/stable-diffusion-v1-4": lambda p: models.img2img(p, "sd"),
    "stabilityai/stable-diffusion-2-base": lambda p: models.img2img(p, "sd2"),
    "stabilityai/stable-diffusion-2-depth": models.depth2img,
    "Salesforce/blip-image-captioning-base": models.blip,
    "Intel/dpt-large": models.dpt,
    "openai/clip-vit-large-patch14": models.clip,
}


@pytest.fixture
def empty_caches(monkeypatch, tmp_path):
    """HF_HOME and TORCH_HOME in an empty folder, every offline switch cleared."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "RECON_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


# ------------------------------------------------------------------- Hub ids
def test_offline_hub_ids_not_in_the_cache_fail_naming_the_model(no_network, empty_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nsd = get_profile("nsd")
    assert models.offline() and models.hub_cache() == empty_caches / "hf" / "hub"
    assert set(HUB_LOADERS) == {getattr(nsd.models, f) for f in ("sd", "sd2", "sd_depth", "blip", "dpt", "clip_eval")}
    import diffusers.pipelines.stable_diffusion  # noqa: F401  (imports are not what is timed below)
    import transformers.models.clip  # noqa: F401

    start = time.perf_counter()
    for model_id, load in HUB_LOADERS.items():
        with pytest.raises(models.ModelNotAvailableError, match=(
                f"model '{re.escape(model_id)}' is not in the Hugging Face cache {re.escape(str(empty_caches))}.*"
                f"downloads are off.*`hf download {re.escape(model_id)}`.*HF_HOME")) as error:
            load(nsd)
        assert isinstance(error.value, OSError)
    assert time.perf_counter() - start < 5  # checked before from_pretrained: no retries, no download attempt


def test_offline_torchvision_weights_not_in_the_cache_fail_naming_them(no_network, empty_caches, monkeypatch):
    monkeypatch.setenv("RECON_OFFLINE", "1")  # our own switch covers torchvision downloads too
    nsd = get_profile("nsd", device="cpu")
    expected = (r"torchvision weights AlexNet_Weights\.IMAGENET1K_V1 \(alexnet-owt-7be5be79\.pth\) are not in "
                f"torch hub's cache {re.escape(str(empty_caches / 'torch'))}.*downloads are off.*TORCH_HOME")
    with pytest.raises(models.ModelNotAvailableError, match=expected):
        models.torchvision_net(nsd, "alexnet")
    torchvision_vgg19 = nsd.replace(models=dataclasses.replace(nsd.models, vgg19="IMAGENET1K_V1"))
    with pytest.raises(models.ModelNotAvailableError, match=r"VGG19_Weights\.IMAGENET1K_V1 .*TORCH_HOME"):
        models.vgg19_features(torchvision_vgg19)


def test_nsd_without_the_authors_gan_files_fails_at_once_naming_the_first(monkeypatch, tmp_path):
    """nsd's +G is the authors' networks: with no cookbook folder named, or an empty one, a run stops before it
    computes anything, naming the first file the authors' script reads and the cookbook that distributes it."""
    from recon import kamitani, preflight

    monkeypatch.delenv(kamitani.ENV_VAR, raising=False)
    nsd = get_profile("nsd", device="cpu")
    with pytest.raises(kamitani.AuthorsFileError, match=r"VGG_ILSVRC_19_layers\.pt.*cookbook.*RECON_AUTHORS_GAN_DIR"):
        preflight.prepare(nsd)
    with pytest.raises(kamitani.AuthorsFileError, match=r"ilsvrc_2012_mean\.npy \(ImageNet's mean image.*is missing"):
        preflight.prepare(nsd.replace(authors_gan_dir=tmp_path))
    # the pixel generator and torchvision's VGG19, asked for by name, need none of them
    pixels = nsd.replace(generator="pixels", models=dataclasses.replace(nsd.models, vgg19="IMAGENET1K_V1"))
    assert preflight.prepare(pixels) == pixels


class Recorder:
    """Stands in for a from_pretrained class: records its arguments, or fails like an unreachable Hub."""

    calls = []
    error = None

    @classmethod
    def from_pretrained(cls, model_id, **kwargs):
        cls.calls.append((model_id, kwargs))
        if cls.error:
            raise cls.error
        return cls()


def test_a_cached_hub_id_loads_offline_from_that_cache_only(no_network, empty_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = empty_caches / "hf" / "hub" / "models--Intel--dpt-large" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(Recorder, "calls", [])
    assert isinstance(models._from_pretrained(Recorder, "Intel/dpt-large", dtype=torch.float16), Recorder)
    assert Recorder.calls == [("Intel/dpt-large", {"cache_dir": str(empty_caches / "hf" / "hub"),
                                                   "local_files_only": True, "dtype": torch.float16})]


def test_an_unreachable_hub_fails_naming_the_model(no_network, empty_caches, monkeypatch):
    monkeypatch.setattr(Recorder, "error", OSError("We couldn't connect to 'https://huggingface.co'"))
    monkeypatch.setattr(Recorder, "calls", [])
    expected = r"could not load model 'openai/clip-vit-large-patch14' \(Recorder\).*couldn't connect.*\n.*hf download"
    with pytest.raises(models.ModelNotAvailableError, match=expected) as error:
        models._from_pretrained(Recorder, "openai/clip-vit-large-patch14")
    assert error.value.__cause__ is Recorder.error and Recorder.calls[0][1]["local_files_only"] is False


# ------------------------------------------------------------- zoo and dtype
def test_zoo_models_load_in_the_profile_dtype_even_offline(no_network, empty_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RECON_OFFLINE", "1")  # local folders and seeded nets never need a download
    toy = get_profile("toy", dtype="float32")
    for load in (models.blip, models.dpt, models.clip):
        model, _ = load(toy)
        assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert isinstance(models.torchvision_net(toy, "alexnet"), torch.nn.Module)

    for dtype in (torch.bfloat16, torch.float16):
        half = toy.replace(dtype=str(dtype).removeprefix("torch."))
        clip, processor = models.clip(half)
        assert {p.dtype for p in clip.parameters()} == {dtype}
        assert clip is models.clip(half)[0] and clip is not models.clip(toy)[0]  # memoised per dtype
    clip, processor = models.clip(toy.replace(dtype="bfloat16"))
    images = list(np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8))
    pixels = processor(images=images, return_tensors="pt").pixel_values.to(clip.device, clip.dtype)
    with torch.no_grad():
        hidden = clip.vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states
    assert hidden[max(toy.clip_eval_layers)].dtype == torch.bfloat16


def test_offline_switch_values(monkeypatch):
    for name in models.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not models.offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not models.offline()
    monkeypatch.setenv("RECON_OFFLINE", "true")
    assert models.offline()
    monkeypatch.setenv("HF_HUB_CACHE", "/somewhere/hub")
    assert models.hub_cache() == Path("/somewhere/hub")
