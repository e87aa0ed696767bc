"""Which GPU the nsd profile fits (recon.gpu_budget): its parameter counts, its plan per card, and the settings it
may change (batches, VAE slicing), never the precision."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from recon import gpu_budget, models
from recon.config import ConfigError
from recon.profiles import get_profile

REPO_ROOT = Path(__file__).resolve().parents[1]


def published_configs() -> dict:
    spec = importlib.util.spec_from_file_location("nsd_dryrun", REPO_ROOT / "benchmarks" / "nsd_dryrun.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module.Architectures.published().configs


def test_the_parameter_counts_are_the_published_architectures():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torchvision import models as tv
    from transformers import (BlipConfig, BlipForConditionalGeneration, CLIPConfig, CLIPModel, CLIPTextConfig,
                              CLIPTextModel, DPTConfig, DPTForDepthEstimation)

    from recon import kamitani

    c = published_configs()
    builders = {
        "SD 1.4 UNet": lambda: UNet2DConditionModel.from_config(c["sd_unet"]),
        "SD 2.0 UNet": lambda: UNet2DConditionModel.from_config(c["sd2_unet"]),
        "SD 2 depth UNet": lambda: UNet2DConditionModel.from_config(c["sd2_depth_unet"]),
        "VAE": lambda: AutoencoderKL.from_config(c["vae"]),
        "SD 1.4 text encoder": lambda: CLIPTextModel(CLIPTextConfig(**c["sd_text"])),
        "SD 2 text encoder": lambda: CLIPTextModel(CLIPTextConfig(**c["sd2_text"])),
        "SD 2 depth's DPT-Hybrid": lambda: DPTForDepthEstimation(DPTConfig(**c["depth_estimator"])),
        "BLIP": lambda: BlipForConditionalGeneration(BlipConfig(**c["blip"])),
        "DPT-Large": lambda: DPTForDepthEstimation(DPTConfig(**c["dpt"])),
        "CLIP ViT-L/14": lambda: CLIPModel(CLIPConfig(**c["clip"])),
        "VGG19": tv.vgg19,
        "AlexNet": tv.alexnet,
        "Inception-v3": lambda: tv.inception_v3(aux_logits=False, init_weights=False),
        "relu7 generator": kamitani.AlexNetGenerator,
    }
    assert set(builders) == set(gpu_budget.PARAMETERS)
    with torch.device("meta"):  # no memory, no weights
        counted = {name: sum(p.numel() for p in build().parameters()) for name, build in builders.items()}
    assert counted == gpu_budget.PARAMETERS
    assert round(counted["SD 1.4 UNet"] / 1e6) == 860  # as published for SD 1.x's UNet
    with torch.device("meta"):
        assert sum(p.numel() for p in kamitani.CaffeVGG19().parameters()) == gpu_budget.PARAMETERS["VGG19"]
    pixels = get_profile("nsd", generator="pixels")  # nsd's default is the authors' generator
    fixed, per_code = gpu_budget.ACTIVATIONS["relu7 generator forward and backward"]  # its weights and activations
    assert gpu_budget.gan_gb(get_profile("nsd"), 64) - gpu_budget.gan_gb(pixels, 64) == pytest.approx(
        0.224 + fixed + 64 * per_code, abs=1e-3)


def test_the_nsd_profile_fits_16_gb_as_it_is_and_not_12():
    nsd = get_profile("nsd")
    for card in (80, 40, 24, 16):
        fitted, peaks = gpu_budget.fit(nsd, card)
        assert fitted is nsd  # nothing changed: the same cache keys as a run that never asked
        assert max(peaks.values()) <= 0.9 * card
    _, peaks = gpu_budget.fit(nsd, 80)
    assert max(peaks, key=peaks.get) == "decoders (ridge, voxel side on the GPU)"
    assert peaks["depth2img (SD 2 depth)"] > peaks["img2img (SD 1.4)"]  # float32 against SD 1.4's autocast
    with pytest.raises(ConfigError, match="stage 'decoders \\(ridge, voxel side on the GPU\\)' needs 13.9 GB .* 12 GB"):
        gpu_budget.fit(nsd, 12)


def test_a_smaller_card_gets_smaller_batches_and_vae_slicing_never_another_precision():
    # a profile whose generation batches are large: the plan gives up whole images first, then decodes one at a time
    big = get_profile("nsd", batch_size=40, generator_batch_size=512)
    _, roomy = gpu_budget.fit(big, 80)
    fitted, peaks = gpu_budget.fit(big, 16)
    assert fitted.batch_size < 40 and fitted.batch_size % big.n_samples == 0
    assert fitted.generator_batch_size < 512
    assert (fitted.dtype, fitted.sd_autocast, fitted.feature_dtype) == (big.dtype, big.sd_autocast, big.feature_dtype)
    assert max(peaks.values()) <= 0.9 * 16 < max(roomy.values())
    one_image = big.replace(batch_size=big.n_samples, vae_slicing=False)
    sliced = one_image.replace(vae_slicing=True)
    for stage in ("img2img (SD 1.4)", "depth2img (SD 2 depth)"):
        assert gpu_budget.stage_peaks(sliced, gpu_budget.Settings(5, 64, True))[stage] < \
            gpu_budget.stage_peaks(one_image, gpu_budget.Settings(5, 64, False))[stage]
    assert sliced.generation_key != one_image.generation_key  # sliced decoding may round otherwise: its own entries


def test_the_cpu_is_never_fitted_and_a_gpu_without_one_is_named():
    toy = get_profile("toy")
    assert gpu_budget.fit_to_device(toy) is toy
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no GPU to size on device 'cuda'"):
            gpu_budget.fit(get_profile("nsd"))
    assert gpu_budget.fit(get_profile("nsd", gpu_memory_gb=24))[0].batch_size == 8


def test_vae_slicing_decodes_one_image_at_a_time_and_release_drops_every_model():
    sliced = models.img2img(get_profile("toy", vae_slicing=True))
    assert sliced.vae.use_slicing and not models.img2img(get_profile("toy")).vae.use_slicing
    assert models._img2img.cache_info().currsize >= 2
    models.release()
    assert models._img2img.cache_info().currsize == 0 and models._depth2img.cache_info().currsize == 0


def test_every_gpu_job_asks_for_at_least_the_plan_of_its_largest_stage():
    """recon.stages.NSD_RESOURCES' gpu_gb (and the cluster page) against the plan, on the nsd profile's settings."""
    from recon.stages import NSD_RESOURCES

    _, peaks = gpu_budget.fit(get_profile("nsd"), 80)
    generation = max(peaks["img2img (SD 1.4)"], peaks["img2img (SD 2.0, control)"], peaks["depth2img (SD 2 depth)"])
    largest = {"features": peaks["features and depth (DPT-Large)"], "decoded": peaks["decoders (ridge, voxel side on the GPU)"],
               "captions": peaks["captions (BLIP)"], "depth": peaks["features and depth (DPT-Large)"],
               "gan": peaks["+G"], "evaluation": peaks["evaluation (CLIP, AlexNet, Inception-v3)"],
               "identification": peaks["evaluation (CLIP, AlexNet, Inception-v3)"],
               "reconstruct": generation, "true_captions": peaks["captions (BLIP)"],
               "true_depth": peaks["features and depth (DPT-Large)"], "true_gan": peaks["+G"],
               "text2img": peaks["img2img (SD 1.4)"], "oracle": generation, "swap": generation}
    assert set(largest) == {stage for stage, asks in NSD_RESOURCES.items() if asks["gpu"]}  # every GPU job planned
    for stage, gb in largest.items():
        assert NSD_RESOURCES[stage]["gpu_gb"] >= gb, (stage, gb)
    page = (REPO_ROOT / "book" / "cluster.md").read_text()
    for stage in ("decoded", "gan", "reconstruct", "true_gan", "text2img"):
        assert f"| {stage} | " in page and f"| {largest[stage]:.1f} GB |" in page.split(f"| {stage} | ")[1].split("\n")[0]
