"""The shipped toy zoo: manifest, reproducible builds, checksums verified before loading, one loader."""

import copy
import json
import re
import shutil

import pytest

from recon import models
from recon.toy import zoo
from recon.config import REPO_ROOT, ConfigError, ModelIds
from recon.profiles import get_profile
from recon.nsd import NSDFileError, NSDReader
from recon.toy.zoo import REBUILD_COMMAND, ZooError, read_manifest, verify
from recon.toy.zoo.__main__ import build_zoo

SHIPPED = REPO_ROOT / "zoo"
CLASSES = {
    "clip": "CLIPModel",
    "sd-img2img": "StableDiffusionImg2ImgPipeline",
    "sd2-img2img": "StableDiffusionImg2ImgPipeline",
    "sd-depth2img": "StableDiffusionDepth2ImgPipeline",
    "blip": "BlipForConditionalGeneration",
    "dpt": "DPTForDepthEstimation",
    "vgg19": "torchvision.models.vgg.VGG.features",
}
REBUILD = re.escape(f"`{REBUILD_COMMAND}`")


def weights(manifest) -> dict:
    return {(name, f): e["sha256"] for name, m in manifest["models"].items() for f, e in m["files"].items()
            if f.endswith(".safetensors")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo") / "zoo"
    return folder, build_zoo(folder, seed=0, progress=False)


@pytest.fixture
def zoo_copy(built, tmp_path):
    return shutil.copytree(built[0], tmp_path / "zoo")


# ------------------------------------------------------------------------ building
def test_manifest_lists_every_model_with_sha256_and_size(built):
    folder, manifest = built
    assert read_manifest(folder) == json.loads(json.dumps(manifest))
    assert {name: m["class"] for name, m in manifest["models"].items()} == CLASSES
    for name, entry in manifest["models"].items():
        on_disk = {str(p.relative_to(folder / name)) for p in (folder / name).rglob("*") if p.is_file()}
        assert set(entry["files"]) == on_disk, name
        assert any(f.endswith(".safetensors") for f in entry["files"]), name
        for file, meta in entry["files"].items():
            assert re.fullmatch(r"[0-9a-f]{64}", meta["sha256"])
            assert meta["bytes"] == (folder / name / file).stat().st_size
            assert meta["sha256"] == zoo.sha256(folder / name / file)
        assert entry["bytes"] == sum(f["bytes"] for f in entry["files"].values())
        assert {"recipe", "seed", "steps"} <= set(entry)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["zoo"]  # no staging folder left behind


def test_same_seed_same_weights_other_seed_other_weights(built, tmp_path):
    again = build_zoo(tmp_path / "again", seed=0, progress=False)
    assert weights(again) == weights(built[1]) and len(weights(again)) >= 6
    other = build_zoo(tmp_path / "other", seed=1, progress=False)
    assert weights(other).keys() == weights(built[1]).keys()
    assert all(weights(other)[k] != v for k, v in weights(built[1]).items())


# ----------------------------------------------------------------------- verifying
def test_the_shipped_zoo_verifies():
    manifest = read_manifest(SHIPPED)
    assert set(manifest["models"]) == set(CLASSES)
    for name, entry in manifest["models"].items():
        assert entry["class"] == CLASSES[name] and entry["recipe"] and {"seed", "steps", "train_seconds"} <= set(entry)
        assert entry["bytes"] == sum(f["bytes"] for f in entry["files"].values())
        verify(SHIPPED / name)
    assert sum(e["bytes"] for e in manifest["models"].values()) < 50e6  # small enough to ship in the repo


def test_a_corrupt_byte_names_the_file_and_the_rebuild_command(zoo_copy):
    path = zoo_copy / "sd-img2img" / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    verify(zoo_copy / "clip")  # the other folders are still fine
    with pytest.raises(ZooError, match=f"corrupt model file {re.escape(str(path))}.*{REBUILD}"):
        verify(zoo_copy / "sd-img2img")
    with pytest.raises(ZooError, match=re.escape(str(path))):  # the loader checks before loading
        models.resolve(str(zoo_copy / "sd-img2img"))


def test_a_missing_or_truncated_file(zoo_copy):
    missing = zoo_copy / "blip" / "model.safetensors"
    missing.unlink()
    with pytest.raises(ZooError, match=f"missing model file {re.escape(str(missing))}; .*{REBUILD}"):
        verify(zoo_copy / "blip")
    truncated = zoo_copy / "dpt" / "model.safetensors"
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(ZooError, match=f"corrupt model file {re.escape(str(truncated))}"):
        verify(zoo_copy / "dpt")
    shutil.rmtree(zoo_copy / "clip")
    with pytest.raises(ZooError, match=f"missing model folder {re.escape(str(zoo_copy / 'clip'))}; .*{REBUILD}"):
        models.resolve(str(zoo_copy / "clip"))


def test_a_missing_or_corrupt_manifest(zoo_copy):
    (zoo_copy / "extra").mkdir()
    with pytest.raises(ZooError, match=r"'extra' is not in .*manifest\.json"):
        verify(zoo_copy / "extra")
    manifest = zoo_copy / "manifest.json"
    manifest.write_text(manifest.read_text()[:200])
    with pytest.raises(ZooError, match=f"corrupt zoo manifest {re.escape(str(manifest))}.*{REBUILD}"):
        verify(zoo_copy / "clip")
    manifest.unlink()
    with pytest.raises(ZooError, match=f"missing zoo manifest {re.escape(str(manifest))}.*{REBUILD}"):
        verify(zoo_copy / "clip")


def test_a_profile_pointing_at_a_corrupt_zoo_fails_at_load(zoo_copy):
    path = zoo_copy / "dpt" / "config.json"
    path.write_text(path.read_text().replace("{", "{ ", 1))
    toy = get_profile("toy")
    broken = toy.replace(models=ModelIds(**{**toy.models.__dict__, "dpt": str(zoo_copy / "dpt")}))
    with pytest.raises(ZooError, match=re.escape(str(path))):
        models.dpt(broken)


# ------------------------------------------------------------------------- loading
@pytest.fixture(scope="module")
def toy():
    profile = get_profile("toy")
    assert all(str(getattr(profile.models, k)).startswith(str(SHIPPED)) for k in CLASSES_BY_FIELD)
    return profile


CLASSES_BY_FIELD = {"sd": "sd-img2img", "sd2": "sd2-img2img", "sd_depth": "sd-depth2img", "blip": "blip",
                    "dpt": "dpt", "clip_eval": "clip"}


def test_every_shipped_model_loads_through_the_one_loader(toy):
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionDepth2ImgPipeline,
                           StableDiffusionImg2ImgPipeline, UNet2DConditionModel)
    from transformers import (BlipForConditionalGeneration, BlipProcessor, CLIPModel, CLIPProcessor,
                              CLIPTextModel, DPTForDepthEstimation, DPTImageProcessor)

    for variant in ("sd", "sd2"):
        pipe = models.img2img(toy, variant)
        assert isinstance(pipe, StableDiffusionImg2ImgPipeline)
        assert isinstance(pipe.unet, UNet2DConditionModel) and isinstance(pipe.vae, AutoencoderKL)
        assert isinstance(pipe.text_encoder, CLIPTextModel) and isinstance(pipe.scheduler, DDIMScheduler)
        assert pipe.safety_checker is None and pipe.device.type == "cpu"
    assert models.img2img(toy, "sd") is models.img2img(toy, "sd")  # memoised
    assert models.img2img(toy, "sd") is not models.img2img(toy, "sd2")

    depth = models.depth2img(toy)
    assert isinstance(depth, StableDiffusionDepth2ImgPipeline) and isinstance(depth.scheduler, DDIMScheduler)
    assert isinstance(depth.depth_estimator, DPTForDepthEstimation)
    assert depth.unet.config.in_channels == depth.vae.config.latent_channels + 1  # the depth channel

    blip, blip_processor = models.blip(toy)
    assert isinstance(blip, BlipForConditionalGeneration) and isinstance(blip_processor, BlipProcessor)
    dpt, dpt_processor = models.dpt(toy)
    assert isinstance(dpt, DPTForDepthEstimation) and isinstance(dpt_processor, DPTImageProcessor)
    clip, clip_processor = models.clip(toy)
    assert isinstance(clip, CLIPModel) and isinstance(clip_processor, CLIPProcessor)
    assert not (blip.training or dpt.training or clip.training)
    assert clip.config.vision_config.num_hidden_layers >= max(toy.clip_eval_layers)

    assert set(models.zoo_manifest(toy)["models"]) == set(CLASSES)


def test_torchvision_networks_of_the_toy_profile(toy):
    import torch
    from torchvision.models import AlexNet, Inception3

    alexnet = models.torchvision_net(toy, "alexnet")
    assert isinstance(alexnet, AlexNet) and not alexnet.training
    assert not any(p.requires_grad for p in alexnet.parameters())
    assert isinstance(models.torchvision_net(toy, "inception"), Inception3)
    vgg = models.vgg19_features(toy)
    assert isinstance(vgg, torch.nn.Sequential) and len(vgg) == 37  # torchvision VGG19 indices
    assert all(isinstance(vgg[int(i)], torch.nn.Conv2d) for i in ("0", "2"))
    with pytest.raises(ValueError, match="unknown torchvision architecture 'resnet'"):
        models.torchvision_net(toy, "resnet")


# ----------------------------------------------------------------------- nsd profile


def test_nsd_profile_names_the_real_models_and_layout(no_network, monkeypatch, tmp_path):
    monkeypatch.delenv("RECON_NSD_ROOT", raising=False)
    nsd = get_profile("nsd")
    assert nsd.nsd_root.as_posix() == "/data/nsd"
    assert nsd.models.sd == "CompVis/stable-diffusion-v1-4"
    assert "stable-diffusion-2" in nsd.models.sd2 and nsd.models.sd_depth == "stabilityai/stable-diffusion-2-depth"
    assert nsd.models.blip == "Salesforce/blip-image-captioning-base" and nsd.models.dpt == "Intel/dpt-large"
    assert nsd.models.clip_eval == "openai/clip-vit-large-patch14"
    assert {nsd.models.alexnet, nsd.models.inception} == {"IMAGENET1K_V1"}
    assert nsd.models.vgg19 == "authors"  # +G's VGG19: the authors' Caffe network, from the cookbook's file
    assert (nsd.trials_per_session, nsd.n_sessions) == (750, 37)
    assert (nsd.eval_resolution, nsd.clip_eval_layers) == (299, (6, 12))
    assert nsd.vgg_width_divisor == 1 and nsd.device == "cuda"
    # Hub ids pass through the loader's check untouched (nothing is looked up or downloaded here)
    for field in CLASSES_BY_FIELD:
        model_id = getattr(nsd.models, field)
        assert models.resolve(model_id) == model_id
    with pytest.raises(ValueError, match="loads Hub models"):
        models.zoo_manifest(nsd)

    monkeypatch.setenv("RECON_NSD_ROOT", str(tmp_path / "nsd"))
    nsd = get_profile("nsd")
    with pytest.raises(NSDFileError, match=re.escape(str(tmp_path / "nsd")) + " does not exist"):
        NSDReader(nsd.nsd_root, nsd.trials_per_session)
    (tmp_path / "nsd").mkdir()
    reader = NSDReader(nsd.nsd_root, nsd.trials_per_session)
    official = {
        reader.expdesign_path: "nsddata/experiments/nsd/nsd_expdesign.mat",
        reader.stim_info_path: "nsddata/experiments/nsd/nsd_stim_info_merged.csv",
        reader.stimuli_path: "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5",
        reader.ctab_path("streams"): "nsddata/freesurfer/fsaverage/label/streams.mgz.ctab",
        reader.roi_path("subj07", "streams"): "nsddata/ppdata/subj07/func1pt8mm/roi/streams.nii.gz",
        reader.captions_path("train2017"): "nsddata_stimuli/stimuli/nsd/annotations/captions_train2017.json",
    }
    for path, relative in official.items():
        assert path.relative_to(tmp_path / "nsd").as_posix() == relative
    with pytest.raises(NSDFileError, match="nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/"
                                           r"betas_session37\.hdf5 \(or \.nii\.gz\)"):
        reader.betas_path("subj01", 37)


def test_profiles_are_validated():
    with pytest.raises(ConfigError, match="unknown profile 'real'; valid profiles are toy, nsd, smoke"):
        get_profile("real")
    with pytest.raises(ConfigError, match=r"unknown profile field\(s\) \['colour'\]"):
        get_profile("nsd").replace(colour="red")
    with pytest.raises(ConfigError, match="n_samples must be an integer >= 1"):
        get_profile("nsd", n_samples=0)
    assert get_profile("nsd", subject=None, n_samples=None).n_samples == 5  # None = not given (papermill)


# ------------------------------------------------------------------ the zoo page's figures (recon.toy.zoo.quality)
def test_the_zoo_targets_read_the_manifest():
    from recon.toy.zoo import quality

    manifest = read_manifest(SHIPPED)
    targets = quality.targets_frame(manifest)
    assert list(targets.index) == [check for check, *_ in quality.TARGETS]
    judge = manifest["models"]["clip"]["quality"]["judge_on_true_images"]["category"]
    assert targets.loc["CLIP judge on true images: category", "measured"] == judge
    img2img = manifest["models"]["sd-img2img"]["quality"]["img2img_true_z_and_caption_judged_by_clip"]["category"]
    assert targets.loc[quality.IMG2IMG_CHECK, "measured"] == img2img
    assert set(targets["met"]) <= {"yes", "no"}
    assert ((targets["measured"] >= targets["target"]) == (targets["met"] == "yes")).all()
    older = copy.deepcopy(manifest)  # a zoo built before the check existed
    del older["models"]["sd-img2img"]["quality"]["img2img_true_z_and_caption_judged_by_clip"]
    with pytest.raises(KeyError, match="sd-img2img's quality in the zoo manifest has no img2img_true_z_and_caption"):
        quality.targets_frame(older)


def test_the_levers_tables_have_a_row_per_lever_with_the_shipped_model_first():
    from recon.toy.zoo import quality

    vae = {"psnr_db": 25.0, "round_trips_judged_by_clip": {"category": 0.5, "colour": 0.75}, "train_seconds": 800}
    unet = {"text_to_image_judged_by_clip": {"category": 0.17, "colour": 0.5},
            "img2img_true_z_and_caption_judged_by_clip": {"category": 0.2},
            "caption_reliance": {"gain_over_other_caption": 0.07},
            "caption_swap_at_guidance_5": {"caption_over_seed": 0.75}, "train_seconds": 450}
    tables = quality.levers_frames({"VAE": {"shipped": vae, "8 latent channels": vae | {"psnr_db": 27.0}},
                                    "UNet": {"shipped": unet, "EMA": unet}})
    assert list(tables["VAE"].index) == ["baseline zoo (pixel-loss VAE)", "8 latent channels"]
    assert tables["VAE"].loc["8 latent channels", "PSNR dB"] == 27.0
    assert list(tables["UNet"].index) == ["baseline zoo (pixel-loss VAE)", "EMA"]
    assert tables["UNet"].loc["EMA", "img2img category"] == 0.2
    assert not tables["VAE"].isna().any().any() and not tables["UNet"].isna().any().any()  # the book shows no nan
    assert "UNet ms" not in tables["UNet"]  # a cost column only where the costs were measured
    costed = quality.levers_frames({"UNet": {"shipped": unet | {"forward_ms_128": 40.0}, "EMA": unet | {
        "forward_ms_128": 41.0}}, "meta": {"vae_recipe": {"perceptual_weight": 1.0}}})
    assert list(costed["UNet"]["UNet ms"]) == [40.0, 41.0]
    assert costed["UNet"].index[0] == "baseline zoo (perceptual VAE)"  # measured beside a zoo with that VAE


def test_the_zoo_pages_figures_of_merit_come_from_the_manifest():
    from recon.toy.zoo import quality

    manifest = read_manifest(SHIPPED)
    merit = quality.figures_of_merit(manifest, 1.0)
    assert merit["VAE latent scaling the shipped pipelines use"] == 1.0
    assert merit["DPT depth, mean per-image pixel r"] == manifest["models"]["dpt"]["quality"]["mean_pixel_r"]
    prose = quality.prose_values(manifest)
    assert prose["t2i_category"] == manifest["models"]["sd-img2img"]["quality"]["text_to_image_judged_by_clip"]["category"]
    assert all(isinstance(v, float) for v in prose.values())
