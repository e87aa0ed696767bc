"""``python -m recon.toy.zoo build [--zoo DIR] [--seed N] [--untrained]``: train every toy model, write the manifest.

Training follows the recipes in :mod:`recon.toy.zoo.train` with the step budgets in :data:`RECIPES`
(63 minutes on 2 CPU cores, measured with other work sharing them); ``--untrained`` writes the
seeded initialisations in seconds (for tests of the loading code).
"""

from __future__ import annotations

import argparse
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

#: Step budgets and optimiser settings of each recipe (see recon.toy.zoo.train).
RECIPES = {
    # 20k scenes: the ViT towers overfit 4-6k (held-out category 0.22 at 4k, 0.78 at 20k, supervised)
    "scenes": dict(n_train=20000, n_held_out=400),
    # single-object scenes of their own stream for the vision towers' supervised start (held-out
    # category 0.86 after 3000 steps on 20k, supervised probe); one start shared by both CLIPs, BLIP's has its own
    "vision_scenes": dict(n_train=20000),
    "clip_vision": dict(steps=4000, batch_size=128, lr=2e-3),
    # the text towers learn to read the locked, pre-trained vision tower (LiT); a large batch gives more
    # negatives that differ only in the object (judge category 0.43 at 128, 0.45 at 1024; 0.2 s a step)
    "clip": dict(steps=2000, batch_size=1024, lr=2e-3, lock_vision=True),
    "clip_sd2": dict(steps=700, batch_size=1024, lr=2e-3, lock_vision=True),  # the SD 2.0 stand-in's own text encoder
    "vae": dict(steps=800, batch_size=16, lr=1e-3, kl_weight=1e-6),
    "unet": dict(steps=2200, batch_size=32, lr=1e-3, uncond_prob=0.1),
    "unet_sd2": dict(steps=1100, batch_size=32, lr=1e-3, uncond_prob=0.1),
    "unet_depth": dict(steps=1600, batch_size=32, lr=1e-3, uncond_prob=0.1),
    "blip_vision": dict(steps=3000, batch_size=128, lr=2e-3),
    "blip": dict(steps=2500, batch_size=64, lr=2e-3, lock_vision=True),
    "dpt": dict(steps=1000, batch_size=32, lr=1e-3),
    "vgg19": dict(steps=800, batch_size=64, lr=1e-3),
}


@contextmanager
def _staging(zoo_dir: Path):
    """A scratch folder beside ``zoo_dir`` that replaces it only if the block completes."""
    zoo_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".zoo-", dir=zoo_dir.parent))
    try:
        yield staging
        if zoo_dir.exists():
            shutil.rmtree(zoo_dir)
        os.replace(staging, zoo_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_manifest(staging: Path, entries: dict[str, dict], **header) -> dict:
    """Record every model folder's files (sha256, bytes) beside its entry; drop the scratch vocabularies."""
    for scratch in staging.glob("_vocab_*"):
        shutil.rmtree(scratch)
    models = {}
    for name, entry in entries.items():
        files = file_table(staging / name)
        models[name] = entry | {"bytes": sum(f["bytes"] for f in files.values()), "files": files}
    manifest = {"built_with": {"torch": torch.__version__, "threads": torch.get_num_threads()}, **header,
                "models": models}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _trained_entry(model_class: str, *, seed: int, training: dict, recipe: str, quality: dict) -> dict:
    """A trained model's manifest entry; steps and time are lifted from its training stats. Its quality is
    logged as soon as it is measured, so a long build can be judged (and stopped) model by model."""
    print(f"{model_class} (seed {seed}): {training['train_seconds']} s, quality {json.dumps(quality)}", flush=True)
    return {"class": model_class, "seed": seed, "training": training, "steps": training["steps"],
            "train_seconds": training["train_seconds"], "recipe": recipe, "quality": quality}


def build_zoo(zoo_dir: Path, seed: int = 0, trained: bool = False, recipes: dict | None = None,
              progress: bool = True) -> dict:
    """Write all model folders into ``zoo_dir`` atomically (staging folder, then rename).

    With ``trained`` each model is trained by its recipe (``recipes`` overrides :data:`RECIPES`,
    recipe by recipe, e.g. tiny step counts in tests) and the held-out quality figures are measured.
    """
    if trained:
        overrides = recipes or {}
        merged = {name: recipe | overrides.get(name, {}) for name, recipe in RECIPES.items()}
        return _build_trained(Path(zoo_dir), seed, merged, progress)
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


def _build_trained(zoo_dir: Path, seed: int, recipes: dict, progress: bool) -> dict:
    """Train each model on its recipe, save it, measure its held-out quality, write the manifest."""
    from . import quality, train

    entries: dict[str, dict] = {}
    with _staging(zoo_dir) as staging:
        start = time.perf_counter()
        n_train = recipes["scenes"]["n_train"]
        n_held = recipes["scenes"]["n_held_out"]
        data, held = train.SceneData.draw(n_train + n_held, seed, build.IMAGE_SIZE).split(n_train)
        single = quality.single_object_rows(held)
        common = f"on {n_train} simulated scenes drawn from the zoo seed (never the NSD simulation's stream)"

        n_objects = recipes["vision_scenes"]["n_train"]
        objects, objects_held = train.SceneData.draw(n_objects + n_held, seed, build.IMAGE_SIZE,
                                                     single_object=True).split(n_objects)
        tokenizer = build.write_clip_vocabulary(staging / "_vocab_clip")
        clip, clip_processor = build.clip_model(len(tokenizer), seed), build.clip_processor(tokenizer)
        vision_stats = train.pretrain_vision(clip.vision_model, clip_processor.image_processor, objects, held=objects_held,
                                             seed=seed + 5, progress=progress, **recipes["clip_vision"])
        pretrained_vision = {k: v.clone() for k, v in clip.vision_model.state_dict().items()}
        stats = train.train_clip(clip, tokenizer, clip_processor.image_processor, data, seed=seed,
                                 progress=progress, **recipes["clip"]) | {"vision_pretraining": vision_stats}
        clip.save_pretrained(staging / "clip")
        clip_processor.save_pretrained(staging / "clip")
        judge = quality.AttributeJudge(clip, tokenizer, clip_processor.image_processor)
        entries["clip"] = _trained_entry(
            "CLIPModel", seed=seed, training=stats,
            recipe=("recon.toy.zoo.train.pretrain_vision (the vision tower: category, colour and background of "
                    "single-object scenes), then "
                    f"train_clip with that tower locked (LiT): contrastive image/caption loss {common}"),
            quality=quality.clip_retrieval(clip, tokenizer, clip_processor.image_processor, held)
            | {"judge_on_true_images": judge.accuracy(held.images[single],
                                                      [held.scenes[i].objects[0] for i in single])})

        bert = build.write_bert_vocabulary(staging / "_vocab_bert")
        blip, blip_processor = build.blip_model(bert, seed + 30), build.blip_processor(bert)
        vision_stats = train.pretrain_vision(blip.vision_model, blip_processor.image_processor, objects, held=objects_held,
                                             seed=seed + 35, progress=progress, **recipes["blip_vision"])
        stats = train.train_blip(blip, blip_processor, data, seed=seed + 30, progress=progress,
                                 **recipes["blip"]) | {"vision_pretraining": vision_stats}
        blip.save_pretrained(staging / "blip")
        blip_processor.save_pretrained(staging / "blip")
        entries["blip"] = _trained_entry(
            "BlipForConditionalGeneration", seed=seed + 30, training=stats,
            recipe=("recon.toy.zoo.train.pretrain_vision (the vision tower: single-object scene classes, as real BLIP "
                    f"starts from a pre-trained ViT), then train_blip with that tower locked: captioning loss {common}"),
            quality={"caption_attributes": quality.blip_attributes(blip, blip_processor, held, single)})

        vae = build.vae(seed + 1)
        vae_stats = train.train_vae(vae, data, seed=seed + 1, progress=progress, **recipes["vae"])
        text_encoder = build.text_encoder_from(clip)
        latents_mean, latents_sd, embeddings = train.encode_for_diffusion(vae, text_encoder, tokenizer, data)
        unet = build.unet(seed + 2)
        stats = train.train_unet(unet, build.scheduler(), (latents_mean, latents_sd), embeddings, seed=seed + 2,
                                 progress=progress, desc="train UNet (SD)", **recipes["unet"])
        sd = build.img2img_pipeline(vae, text_encoder, tokenizer, unet)
        sd.save_pretrained(staging / "sd-img2img")
        entries["sd-img2img"] = _trained_entry(
            "StableDiffusionImg2ImgPipeline", seed=seed + 2, training=stats | {"vae": vae_stats},
            recipe=("recon.toy.zoo.train.train_vae (L1 + MSE + KL), then train_unet: noise prediction on the VAE's "
                    f"latents, conditioned by the trained CLIP text tower, captions dropped 10% for guidance, {common}"),
            quality={"vae": quality.vae_error(vae, held),
                     "text_to_image_judged_by_clip": quality.generation_attributes(sd, judge, held, single, seed=seed)})

        clip_sd2 = build.clip_model(len(tokenizer), seed + 10)
        clip_sd2.vision_model.load_state_dict(pretrained_vision)
        clip_sd2_stats = train.train_clip(clip_sd2, tokenizer, clip_processor.image_processor, data, seed=seed + 10,
                                          progress=progress, **recipes["clip_sd2"])
        text_sd2 = build.text_encoder_from(clip_sd2)
        _, _, embeddings_sd2 = train.encode_for_diffusion(vae, text_sd2, tokenizer, data)
        unet_sd2 = build.unet(seed + 11)
        stats = train.train_unet(unet_sd2, build.scheduler(), (latents_mean, latents_sd), embeddings_sd2,
                                 seed=seed + 11, progress=progress, desc="train UNet (SD 2 stand-in)",
                                 **recipes["unet_sd2"])
        sd2 = build.img2img_pipeline(vae, text_sd2, tokenizer, unet_sd2)
        sd2.save_pretrained(staging / "sd2-img2img")
        entries["sd2-img2img"] = _trained_entry(
            "StableDiffusionImg2ImgPipeline", seed=seed + 11, training=stats | {"text_encoder": clip_sd2_stats},
            recipe=("as sd-img2img (same VAE), with its own text encoder: the text tower of a second CLIP trained "
                    "from another seed for fewer steps (its vision tower starts from the same supervised start); "
                    f"stands in for SD 2.0 in the control analysis, {common}"),
            quality={"text_to_image_judged_by_clip": quality.generation_attributes(sd2, judge, held, single, seed=seed)})

        dpt, dpt_processor = build.dpt_model(seed + 40), build.dpt_processor()
        stats = train.train_dpt(dpt, dpt_processor, data, seed=seed + 40, progress=progress, **recipes["dpt"])
        dpt.save_pretrained(staging / "dpt")
        dpt_processor.save_pretrained(staging / "dpt")
        entries["dpt"] = _trained_entry(
            "DPTForDepthEstimation", seed=seed + 40, training=stats,
            recipe=f"recon.toy.zoo.train.train_dpt: L1 regression of relative inverse depth {common}",
            quality=quality.dpt_correlation(dpt, dpt_processor, held))

        unet_depth = build.unet(seed + 20, in_channels=build.LATENT_CHANNELS + 1)
        stats = train.train_unet(unet_depth, build.scheduler(), (latents_mean, latents_sd), embeddings_sd2,
                                 depth=train.latent_depth(data.depth, latents_mean.shape[-1]), seed=seed + 20,
                                 progress=progress, desc="train UNet (depth)", **recipes["unet_depth"])
        depth = build.depth2img_pipeline(vae, text_sd2, tokenizer, unet_depth, dpt, dpt_processor)
        depth.save_pretrained(staging / "sd-depth2img")
        entries["sd-depth2img"] = _trained_entry(
            "StableDiffusionDepth2ImgPipeline", seed=seed + 20, training=stats,
            recipe=("train_unet with the depth map (nearness on the latent grid, scaled to [-1, 1] as the pipeline "
                    f"does) as a fifth input channel, SD 2 stand-in's text encoder and VAE, {common}"),
            quality={"text_and_depth_to_image_judged_by_clip": quality.generation_attributes(
                depth, judge, held, single, depth=held.depth, seed=seed)})

        from . import vgg

        entries["vgg19"] = vgg.train_and_save(staging / "vgg19", data, held, seed=seed + 50, progress=progress,
                                              **recipes["vgg19"])
        seconds = time.perf_counter() - start

        manifest = _write_manifest(staging, entries, build_seconds=round(seconds, 1), recipes=recipes, trained=True)
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recon.toy.zoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train every toy model, write the folders and the manifest")
    b.add_argument("--zoo", type=Path, default=default_zoo_dir())
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--untrained", action="store_true", help="seeded initialisations only (seconds)")
    args = parser.parse_args(argv)
    from ...book import quiet_libraries

    quiet_libraries()
    manifest = build_zoo(args.zoo, args.seed, trained=not args.untrained)
    total = sum(m["bytes"] for m in manifest["models"].values())
    for name, entry in manifest["models"].items():
        print(f"{name:14s} {entry['class']:34s} {entry['bytes'] / 1e6:6.2f} MB")
    print(f"zoo: {total / 1e6:.1f} MB in {args.zoo}")


if __name__ == "__main__":
    main()
