"""The shipped zoo: every model loads through recon.models with its checksum verified; broken files fail clearly."""

import json
import shutil

import pytest
import torch
from diffusers import StableDiffusionDepth2ImgPipeline, StableDiffusionImg2ImgPipeline
from transformers import BlipForConditionalGeneration, CLIPModel, DPTForDepthEstimation

from recon import models, zoo
from recon.config import get_profile
from recon.zoo.__main__ import build_zoo


@pytest.fixture(scope="module")
def toy():
    return get_profile("toy")


def test_every_shipped_model_loads_with_its_real_class(toy):
    assert isinstance(models.img2img(toy), StableDiffusionImg2ImgPipeline)
    assert isinstance(models.img2img(toy, "sd2"), StableDiffusionImg2ImgPipeline)
    assert isinstance(models.depth2img(toy), StableDiffusionDepth2ImgPipeline)
    assert isinstance(models.blip(toy)[0], BlipForConditionalGeneration)
    assert isinstance(models.dpt(toy)[0], DPTForDepthEstimation)
    assert isinstance(models.clip(toy)[0], CLIPModel)
    for arch in ("alexnet", "inception"):
        assert isinstance(models.torchvision_net(toy, arch), torch.nn.Module)
    assert isinstance(models.vgg19_features(toy), torch.nn.Sequential)


def test_shipped_manifest_lists_checksums_sizes_and_recipes(toy):
    manifest = models.zoo_manifest(toy)
    for name, entry in manifest["models"].items():
        assert entry["recipe"] and "seed" in entry and "train_seconds" in entry
        assert entry["bytes"] == sum(f["bytes"] for f in entry["files"].values())
        zoo.verify(zoo.Path(toy.models.sd).parent / name)
    assert sum(e["bytes"] for e in manifest["models"].values()) < 50e6


@pytest.fixture
def built(tmp_path):
    build_zoo(tmp_path / "zoo", seed=0)
    return tmp_path / "zoo"


def test_untrained_builds_are_reproducible(built, tmp_path):
    build_zoo(tmp_path / "again", seed=0)
    a = json.loads((built / "manifest.json").read_text())["models"]
    b = json.loads((tmp_path / "again" / "manifest.json").read_text())["models"]
    for name in a:
        weights = [f for f in a[name]["files"] if f.endswith(".safetensors")]
        assert weights and all(a[name]["files"][f]["sha256"] == b[name]["files"][f]["sha256"] for f in weights)


def test_corrupt_model_file_names_the_file_and_the_command(built):
    weights = built / "dpt" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match=r"corrupt model file .*dpt/model\.safetensors.*python -m recon\.zoo build"):
        models.resolve(str(built / "dpt"))


def test_missing_model_file_and_folder(built):
    (built / "blip" / "model.safetensors").unlink()
    with pytest.raises(zoo.ZooError, match=r"missing model file .*blip/model\.safetensors.*python -m recon\.zoo build"):
        models.resolve(str(built / "blip"))
    shutil.rmtree(built / "clip")
    with pytest.raises(zoo.ZooError, match=r"missing model folder .*clip"):
        models.resolve(str(built / "clip"))
    (built / "manifest.json").write_text("{not json")
    with pytest.raises(zoo.ZooError, match="corrupt zoo manifest"):
        models.resolve(str(built / "dpt"))


def test_nsd_profile_names_real_ids_and_paths_without_downloading(monkeypatch, tmp_path):
    monkeypatch.setenv("RECON_NSD_ROOT", str(tmp_path / "nsd"))
    nsd = get_profile("nsd")
    assert nsd.models.sd == "CompVis/stable-diffusion-v1-4"
    assert nsd.models.sd_depth == "stabilityai/stable-diffusion-2-depth"
    assert nsd.models.blip == "Salesforce/blip-image-captioning-base" and nsd.models.dpt == "Intel/dpt-large"
    assert nsd.nsd_root == tmp_path / "nsd" and nsd.trials_per_session == 750 and nsd.n_sessions == 37
    assert models.resolve(nsd.models.sd) == nsd.models.sd  # Hub ids pass through, nothing is fetched
