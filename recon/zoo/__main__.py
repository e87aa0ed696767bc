"""``python -m recon.zoo build [--zoo DIR] [--seed N]``: write every toy model and the manifest."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ..config import default_zoo_dir
from . import MANIFEST, build, file_table


def build_zoo(zoo_dir: Path, seed: int = 0) -> dict:
    """Write all model folders into ``zoo_dir`` atomically (staging folder, then rename)."""
    zoo_dir = Path(zoo_dir)
    zoo_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".zoo-", dir=zoo_dir.parent))
    recipes = {}
    try:
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
        seconds = time.perf_counter() - start

        shutil.rmtree(staging / "_vocab_clip")
        shutil.rmtree(staging / "_vocab_bert")
        models = {}
        for name, (cls, model_seed) in recipes.items():
            files = file_table(staging / name)
            models[name] = {
                "class": cls,
                "recipe": "tiny configuration from recon.zoo.build, seeded random initialisation (untrained)",
                "seed": model_seed,
                "steps": 0,
                "train_seconds": 0.0,
                "bytes": sum(f["bytes"] for f in files.values()),
                "files": files,
            }
        manifest = {"built_with": {"torch": torch.__version__}, "build_seconds": round(seconds, 2), "models": models}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if zoo_dir.exists():
            shutil.rmtree(zoo_dir)
        os.replace(staging, zoo_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recon.zoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write every toy model folder and the manifest")
    b.add_argument("--zoo", type=Path, default=default_zoo_dir())
    b.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = build_zoo(args.zoo, args.seed)
    total = sum(m["bytes"] for m in manifest["models"].values())
    for name, entry in manifest["models"].items():
        print(f"{name:14s} {entry['class']:34s} {entry['bytes'] / 1e6:6.2f} MB")
    print(f"zoo: {total / 1e6:.1f} MB in {args.zoo}")


if __name__ == "__main__":
    main()
