"""``python -m recon.toy.zoo build [--zoo DIR] [--seed N] [--device cuda] [--untrained]``: train every toy model, write the manifest.

Training follows the recipes in :mod:`recon.toy.zoo.train` with the step budgets in :data:`RECIPES`
(about 72 minutes on 2 CPU cores, as the shipped zoo took), or on a GPU with ``--device cuda`` and the larger :data:`GPU_BUDGETS`
(an estimated 15 minutes on one H100, from the four stages timed there); the manifest records the recipes, the device and each stage's time;
``--untrained`` writes the seeded initialisations in seconds (for tests of the loading code).

A trained build is resumable: its staging folder, named by the seed and the training code, is kept
when the build stops (a failure, a kill at the end of a session) and after it publishes a copy as the
zoo; rerunning it skips each stage it finished unless that stage's recipes, or those of a stage it
builds on (:data:`TRAINED_STAGES`), changed since: a build with new UNet budgets keeps the CLIP, BLIP,
VGG19, VAE and DPT stages. Delete that ``.<zoo>-partial-*`` folder to start over.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from ...config import default_zoo_dir
from . import MANIFEST, build, file_table

#: Step budgets and optimiser settings of each recipe (see recon.toy.zoo.train), sized for 2 CPU cores (about 72
#: minutes): the shipped zoo's.
RECIPES = {
    # 20k scenes: the ViT towers overfit 4-6k (held-out category 0.22 at 4k, 0.78 at 20k, supervised)
    # n_quality: the attribute checks' single-object scenes, of a stream no model trains on (train.QUALITY_STREAM);
    # 400 (binomial SE <= 0.025) where the held-out set's first 96 single-object scenes gave SE 0.05: the CLIP
    # judge moved 0.79 -> 0.75 between two CPUs with the same recipe and seed
    "scenes": dict(n_train=20000, n_held_out=400, n_quality=400),
    # single-object scenes of their own stream for the vision towers' supervised start on the object's
    # category and colour (the background, a shortcut, is left out: see train.pretrain_vision; held-out
    # category 0.64 after 2000 steps, still rising); one start shared by both CLIPs, BLIP's has its own
    "vision_scenes": dict(n_train=20000),
    "clip_vision": dict(steps=5000, batch_size=128, lr=2e-3, weights={"background": 0.0}),
    # the text towers learn to read the locked, pre-trained vision tower (LiT); a large batch gives more
    # negatives that differ only in the object (judge category 0.43 at 128, 0.45 at 1024; 0.2 s a step)
    "clip": dict(steps=2000, batch_size=1024, lr=2e-3, lock_vision=True),
    "clip_sd2": dict(steps=700, batch_size=1024, lr=2e-3, lock_vision=True),  # the SD 2.0 stand-in's own text encoder
    # 2400 steps of build.VAE_LAYOUT's narrow VAE (766 s), where 800 of a wider one kept the object's category on
    # 0.24 of the quality probe's round trips (0.50 with the pixel loss alone). The perceptual loss on the zoo's
    # VGG19 (LPIPS's layers relu1_2, relu2_2, relu3_4, relu4_4, weight 1 as in SD's autoencoder): round trips'
    # category 0.50 -> 0.65, colour 0.755 -> 0.99, and with the SD UNet's recipe on its latents text-to-image
    # colour 0.50 -> 0.79 (benchmarks/generator_levers.py, 2026-12-03), for about 25% more VAE time
    "vae": dict(steps=2400, batch_size=16, lr=1e-3, kl_weight=1e-6, perceptual_weight=1.0,
                perceptual_layers=["3", "8", "17", "26"]),
    # text-to-image category on the quality probe against this UNet's budget (benchmarks/unet_budget.py, 2026-11-27):
    # 0.155 at 1100 steps, 0.17 at 2200 (446 s), 0.22 at 4400, 0.233 at 8800 (1810 s); Min-SNR weighting
    # (snr_gamma=5) at 2200: 0.193 (binomial SE 0.02). The VAE's round trips capped every figure at 0.50 (0.65 with the
    # perceptual loss; target 0.75)
    "unet": dict(steps=2200, batch_size=32, lr=1e-3, uncond_prob=0.1),
    "unet_sd2": dict(steps=1100, batch_size=32, lr=1e-3, uncond_prob=0.1),
    "unet_depth": dict(steps=1600, batch_size=32, lr=1e-3, uncond_prob=0.1),
    # the tower's held-out category: 0.70 at 4000 steps, 0.83 at 6000, 0.86 at 9000 (lr 1e-3 at 4000 gave 0.61).
    # Captions' category on the quality probe, decoder steps on a 6000-step tower: 0.76 at 2500, 0.79 at 5000,
    # 0.79 at 10000 (the tower limits them); 9000 + 5000 steps give 0.85, the stage 936 s (+241 s; 2026-11-27)
    "blip_vision": dict(steps=9000, batch_size=128, lr=2e-3, weights={"background": 0.0}),
    "blip": dict(steps=5000, batch_size=64, lr=2e-3, lock_vision=True),
    "dpt": dict(steps=1000, batch_size=32, lr=1e-3),
    # 3200 steps (382 s): held-out top label category 0.17 -> 0.23, colour 0.47 -> 0.99, mean AUC 0.72 -> 0.82 over 800.
    # Trained with batch norm, folded into the convs after (benchmarks/vgg_batchnorm.py, 2026-11-27): category 0.55,
    # AUC 0.92, +145 s; but +G through it was worse (60 probe scenes, the profile's +G budget: PixCorr 0.68 -> 0.44
    # on exact targets, 0.53 -> 0.36 on shrunk noisy ones; CLIP-judged category 0.23 / 0.13 -> 0.20 / 0.17): kept plain
    "vgg19": dict(steps=3200, batch_size=64, lr=1e-3),
}

#: Larger budgets that ``--device cuda`` applies over :data:`RECIPES` (the manifest records the merged recipes).
#: Measured on one H100 (2026-11-26; its first four stages), against the shipped CPU build: the CPU budget's VAE
#: capped text-to-image (on 96 held-out scenes the CLIP judge named the category of its reconstructions on 0.30 and
#: the colour on 0.40, against 0.83 and 0.99 on the true images; with these budgets 0.59 and 1.00 against 0.79 and
#: 1.00 on the build's own held-out scenes, PSNR 22.9 -> 28.2 dB), and its UNet all but ignored the caption (loss
#: with the true caption 1-6% below that with another scene's; 4-15% with these budgets). Text-to-image category
#: went 0.10 -> 0.16 (colour 0.34 -> 0.76); continuing that UNet for 700 and 1400 more steps of 1024 gave 0.22
#: and 0.26 (guidance 5): more training helps, slowly. BLIP captions' category 0.51 -> 0.68
#: (its tower's held-out category 0.72 -> 0.80), CLIP's tower 0.87 -> 0.90 but its judge stayed at 0.79.
#: (BLIP's budgets there, 6000 and 4000 steps, were dropped once the CPU recipes outgrew them, 2026-11-27.)
#: Stage times there: clip 130 s, blip 168 s, VAE 99 s, SD UNet + quality 108 s (33 ms a step of 256: the tiny
#: models leave the GPU waiting on Python and kernel launches, so a larger batch costs little more).
GPU_BUDGETS = {
    "clip_vision": dict(steps=6000),
    "vae": dict(steps=4000, batch_size=64),
    "unet": dict(steps=3000, batch_size=256),
    "unet_sd2": dict(steps=3000, batch_size=256),
    "unet_depth": dict(steps=3000, batch_size=256),
}


#: Each trained stage, in build order: the recipes it reads (it is handed those alone) and the earlier stages
#: whose saved models it uses. Its resume key hashes both, transitively.
TRAINED_STAGES = {
    "clip": (("scenes", "vision_scenes", "clip_vision", "clip"), ()),
    "blip": (("scenes", "vision_scenes", "blip_vision", "blip"), ()),
    "vgg19": (("scenes", "vgg19"), ()),
    "_vae": (("scenes", "vae"), ("vgg19",)),  # its perceptual loss runs on the VGG19
    "sd-img2img": (("scenes", "unet"), ("clip", "_vae")),  # CLIP's text tower, and its judge for quality
    "sd2-img2img": (("scenes", "clip_sd2", "unet_sd2"), ("clip", "_vae")),  # starts from CLIP's vision tower
    "dpt": (("scenes", "dpt"), ()),
    "sd-depth2img": (("scenes", "unet_depth"), ("clip", "_vae", "sd2-img2img", "dpt")),
}


def stage_keys(seed: int, recipes: dict) -> dict[str, str]:
    """Each stage's resume key: the seed, the recipes it reads and the keys of the stages it builds on."""
    keys: dict[str, str] = {}
    for name, (reads, after) in TRAINED_STAGES.items():
        content = {"seed": seed, "recipes": {r: recipes[r] for r in reads}, "after": [keys[a] for a in after]}
        keys[name] = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    return keys


def recipes_for(device: str = "cpu", overrides: dict | None = None) -> dict:
    """The recipes a trained build on ``device`` follows: :data:`RECIPES`, :data:`GPU_BUDGETS` over them off
    the CPU, then ``overrides``, each recipe updated key by key."""
    budgets = {} if torch.device(device).type == "cpu" else GPU_BUDGETS
    overrides = overrides or {}
    return {name: recipe | budgets.get(name, {}) | overrides.get(name, {}) for name, recipe in RECIPES.items()}


@contextmanager
def _staging(zoo_dir: Path):
    """A scratch folder beside ``zoo_dir`` that replaces it only if the block completes."""
    zoo_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".zoo-", dir=zoo_dir.parent))
    try:
        yield staging
        _publish(staging, zoo_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish(staging: Path, zoo_dir: Path) -> None:
    """Put a completed staging folder in place of ``zoo_dir``."""
    if zoo_dir.exists():
        shutil.rmtree(zoo_dir)
    os.replace(staging, zoo_dir)


def _device_name(device: str) -> str:
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def _write_manifest(staging: Path, entries: dict[str, dict], device: str = "cpu", **header) -> dict:
    """Record every model folder's files (sha256, bytes) beside its entry; drop the scratch files
    (vocabularies, a trained build's stage records and intermediate weights: every name starting "_")."""
    for scratch in staging.glob("_*"):
        shutil.rmtree(scratch) if scratch.is_dir() else scratch.unlink()
    models = {}
    for name, entry in entries.items():
        files = file_table(staging / name)
        models[name] = entry | {"bytes": sum(f["bytes"] for f in files.values()), "files": files}
    manifest = {"built_with": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                               "device": _device_name(device)}, **header,
                "models": models}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def build_zoo(zoo_dir: Path, seed: int = 0, trained: bool = False, recipes: dict | None = None,
              progress: bool = True, device: str = "cpu") -> dict:
    """Write all model folders into ``zoo_dir`` atomically (staging folder, then rename).

    With ``trained`` each model is trained by its recipe on ``device`` (:data:`RECIPES`, with
    :data:`GPU_BUDGETS` over them off the CPU; ``recipes`` overrides both, recipe by recipe, e.g. tiny
    step counts in tests), and the held-out quality figures are measured (on the CPU, where the book
    runs the models).
    """
    if trained:
        return _build_trained(Path(zoo_dir), seed, recipes_for(device, recipes), progress, device)
    zoo_dir = Path(zoo_dir)
    recipes = {}
    with _staging(zoo_dir) as staging:
        start = time.perf_counter()
        tokenizer = build.write_clip_vocabulary(staging / "_vocab_clip")
        clip = build.clip_model(len(tokenizer), seed)
        clip.save_pretrained(staging / "clip")
        build.clip_processor(tokenizer).save_pretrained(staging / "clip")
        recipes["clip"] = ("CLIPModel", seed)

        vae = build.vae(seed + 1)
        sd = build.img2img_pipeline(vae, build.text_encoder_from(clip), tokenizer, build.unet(seed + 2))
        sd.save_pretrained(staging / "sd-img2img")
        recipes["sd-img2img"] = ("StableDiffusionImg2ImgPipeline", seed + 2)

        # SD 2.0 stand-in: same VAE family, a differently initialised text encoder and UNet.
        other_text = build.text_encoder_from(build.clip_model(len(tokenizer), seed + 10))
        sd2 = build.img2img_pipeline(vae, other_text, tokenizer, build.unet(seed + 11))
        sd2.save_pretrained(staging / "sd2-img2img")
        recipes["sd2-img2img"] = ("StableDiffusionImg2ImgPipeline", seed + 11)

        dpt, dpt_processor = build.dpt_model(seed + 40), build.dpt_processor()
        dpt.save_pretrained(staging / "dpt")
        dpt_processor.save_pretrained(staging / "dpt")
        recipes["dpt"] = ("DPTForDepthEstimation", seed + 40)

        depth = build.depth2img_pipeline(
            vae, other_text, tokenizer, build.unet(seed + 20, in_channels=build.LATENT_CHANNELS + 1), dpt, dpt_processor
        )
        depth.save_pretrained(staging / "sd-depth2img")
        recipes["sd-depth2img"] = ("StableDiffusionDepth2ImgPipeline", seed + 20)

        bert = build.write_bert_vocabulary(staging / "_vocab_bert")
        build.blip_model(bert, seed + 30).save_pretrained(staging / "blip")
        build.blip_processor(bert).save_pretrained(staging / "blip")
        recipes["blip"] = ("BlipForConditionalGeneration", seed + 30)

        from . import vgg

        vgg.save_untrained(staging / "vgg19", seed + 50)
        recipes["vgg19"] = (vgg.MODEL_CLASS, seed + 50)
        seconds = time.perf_counter() - start

        untrained = "tiny configuration from recon.toy.zoo.build, seeded random initialisation (untrained)"
        entries = {name: {"class": cls, "recipe": untrained, "seed": model_seed, "steps": 0, "train_seconds": 0.0}
                   for name, (cls, model_seed) in recipes.items()}
        manifest = _write_manifest(staging, entries, build_seconds=round(seconds, 2))
    return manifest


@contextmanager
def _resumable_staging(zoo_dir: Path, seed: int):
    """A staging folder that survives the build, so that rerunning it resumes from its finished stages, after a
    failure or after a recipe change (the build publishes a copy of it as ``zoo_dir``). Its name keys the seed
    and the source of the modules that train and render, so an edited world or training code never resumes
    stale stages; each stage's recipes are checked by :class:`_Stages`."""
    from .. import scenes
    from . import quality, train, trained, vgg

    sources = [Path(module.__file__).read_bytes() for module in (build, train, trained, quality, vgg, scenes)]
    key = hashlib.sha256(json.dumps({"seed": seed}).encode() + b"".join(sources)).hexdigest()[:12]
    zoo_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = zoo_dir.parent / f".{zoo_dir.name}-partial-{key}"
    staging.mkdir(exist_ok=True)
    try:
        yield staging
    except BaseException:
        print(f"zoo build stopped; its finished stages are kept in {staging}: rerun the same build to resume", flush=True)
        raise
    print(f"zoo build published; its stages are kept in {staging}: a build with other recipes for some stages "
          "retrains only those and the stages that build on them", flush=True)


class _Stages:
    """The finished stages of one trained build. A stage's record (its manifest entry, or its stats) is
    written after its folder, atomically, and removed before the folder is trained again, so a folder without a
    record is redone, never read back; so is a stage whose record carries another key (:func:`stage_keys`: its
    recipes, or an earlier stage's, changed)."""

    def __init__(self, staging: Path, device: str, seed: int, recipes: dict):
        self.records = staging / "_stages"
        self.records.mkdir(exist_ok=True)
        self.device = _device_name(device)
        self.recipes = recipes
        self.keys = stage_keys(seed, recipes)
        self.seconds: dict[str, float] = {}  # each stage's wall time, in whichever run trained it
        self.devices: dict[str, str] = {}  # and where it trained
        self.resumed: list[str] = []

    def run(self, name: str, train_and_save) -> dict:
        """``train_and_save(recipes)``, handed the recipes that :data:`TRAINED_STAGES` says ``name`` reads, unless an
        earlier run of this build finished it with the same key."""
        path = self.records / f"{name}.json"
        key = self.keys[name]
        earlier = json.loads(path.read_text()) if path.exists() else None
        if earlier is not None and earlier.get("key") == key:
            print(f"{name}: finished by an earlier run of this build, kept", flush=True)
            self.resumed.append(name)
            done = earlier
        else:
            if earlier is not None:
                print(f"{name}: finished by an earlier run with other recipes, trained again", flush=True)
                path.unlink()  # its folder is about to be overwritten: never read back if this run stops half-way
            start = time.perf_counter()
            record = {"record": train_and_save({r: self.recipes[r] for r in TRAINED_STAGES[name][0]}),
                      "seconds": round(time.perf_counter() - start, 1), "device": self.device, "key": key}
            partial = path.with_suffix(".partial")
            partial.write_text(json.dumps(record, sort_keys=True))
            os.replace(partial, path)
            done = json.loads(path.read_text())  # read back, so a fresh stage returns what a resumed one would
        self.seconds[name] = done["seconds"]
        self.devices[name] = done["device"]
        return done["record"]


def _build_trained(zoo_dir: Path, seed: int, recipes: dict, progress: bool, device: str = "cpu") -> dict:
    """Train each model on its recipe (:class:`~recon.toy.zoo.trained.TrainedBuild`), save it, measure its held-out
    quality, write the manifest.

    Each stage saves its models and a record; later stages load what they need from disk, whether it was
    trained in this run or an earlier one, so a resumed build writes the same files as an uninterrupted one
    (a build may resume on another device: a stage's key names its recipes, not the device). Models train on
    ``device`` and come back to the CPU to be saved and measured."""
    from .trained import TrainedBuild

    entries: dict[str, dict] = {}
    with _resumable_staging(Path(zoo_dir), seed) as staging:
        stages = _Stages(staging, device, seed, recipes)
        start = time.perf_counter()
        recipe = TrainedBuild(staging, seed, recipes, device=device, progress=progress)
        entries["clip"] = stages.run("clip", recipe.clip)
        entries["blip"] = stages.run("blip", recipe.blip)
        entries["vgg19"] = stages.run("vgg19", recipe.vgg19)
        vae_stats = stages.run("_vae", recipe.vae)
        entries["sd-img2img"] = stages.run("sd-img2img", lambda r: recipe.sd(r, vae_stats))
        entries["sd2-img2img"] = stages.run("sd2-img2img", recipe.sd2)
        entries["dpt"] = stages.run("dpt", recipe.dpt)
        entries["sd-depth2img"] = stages.run("sd-depth2img", recipe.depth)
        # what an uninterrupted build would have taken: this run plus the stages an earlier run finished
        seconds = time.perf_counter() - start + sum(stages.seconds[name] for name in stages.resumed)
        with _staging(Path(zoo_dir)) as published:  # a copy, so that the stages and their records stay
            shutil.copytree(staging, published, ignore=shutil.ignore_patterns("_*"), dirs_exist_ok=True)
            manifest = _write_manifest(published, entries, device, build_seconds=round(seconds, 1), recipes=recipes,
                                       trained=True, stage_seconds=stages.seconds, stage_devices=stages.devices,
                                       resumed_stages=stages.resumed)
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recon.toy.zoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train every toy model, write the folders and the manifest")
    b.add_argument("--zoo", type=Path, default=default_zoo_dir())
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--untrained", action="store_true", help="seeded initialisations only (seconds)")
    b.add_argument("--device", default="cpu", help="where the models train, e.g. cuda (default: cpu)")
    args = parser.parse_args(argv)
    from ...book import quiet_libraries

    quiet_libraries()
    manifest = build_zoo(args.zoo, args.seed, trained=not args.untrained, device=args.device)
    total = sum(m["bytes"] for m in manifest["models"].values())
    for name, entry in manifest["models"].items():
        print(f"{name:14s} {entry['class']:34s} {entry['bytes'] / 1e6:6.2f} MB")
    print(f"zoo: {total / 1e6:.1f} MB in {args.zoo}")


if __name__ == "__main__":
    main()
