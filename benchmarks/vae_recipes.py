"""Compare toy VAE recipes: how much of the object survives the latent, and what it costs on the CPU.

    python benchmarks/vae_recipes.py                        # every variant, 2 CPU cores (about 30 minutes)
    python benchmarks/vae_recipes.py --variants "narrow (16, 32, 64), 2400 x 16" --out vae.json

Every image the pipelines decode passes through the VAE, so its reconstructions cap text-to-image and every
reconstruction: the zoo's CLIP judge names the object's category and colour on far fewer VAE round trips than
true images. Each variant is :func:`recon.toy.zoo.build.vae` with a few layout keys overridden, trained by
:func:`recon.toy.zoo.train.train_vae` (the zoo's recipe, with its own steps or batch size) on the zoo's training
scenes. The shipped zoo's VAE (loaded by :mod:`recon.models`; ``RECON_ZOO`` moves the zoo) is measured beside them,
untrained here. Reported per variant: held-out PSNR on the zoo's 400 held-out scenes; the judge's category and
colour on round trips of 400 single-object scenes from a stream no zoo model trained on (and on the true images,
the ceiling); the training time; and an encode + decode of 60 images at 64 px on the CPU, which +G repeats at each
of its steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from recon import models
from recon.book import quiet_libraries
from recon.profiles import get_profile
from recon.toy.zoo import __main__ as zoo_cli
from recon.toy.zoo import build, quality, train

_WIDE = dict(block_out_channels=(32, 64, 64), norm_num_groups=32)  # the zoo's VAE until 2026-11-27 (800 x 16)
#: name -> (layout overrides of build.VAE_LAYOUT, recipe overrides of the zoo's "vae" recipe)
VARIANTS = {
    "wide (32, 64, 64), 1600 x 16": (_WIDE, dict(steps=1600)),
    "narrow (16, 32, 64), 2400 x 16": ({}, dict(steps=2400)),
}


@torch.no_grad()
def round_trip_ms(vae, batch: int = 60, repeats: int = 3) -> float:
    x = torch.zeros(batch, 3, build.IMAGE_SIZE, build.IMAGE_SIZE)
    vae.decode(vae.encode(x).latent_dist.mean)
    start = time.perf_counter()
    for _ in range(repeats):
        vae.decode(vae.encode(x).latent_dist.mean)
    return (time.perf_counter() - start) / repeats * 1000


def measure(vae, judge, held, probe) -> dict:
    vae = vae.to("cpu").eval()
    rows = np.arange(len(probe))
    return {"psnr_db": quality.vae_error(vae, held)["psnr_db"],
            "judge_on_round_trips": quality.reconstruction_attributes(vae, judge, probe, rows),
            "cpu_round_trip_ms_60": round(round_trip_ms(vae), 1),
            "parameters": sum(p.numel() for p in vae.parameters())}


def run(variants: list[str], n_train: int, device: str) -> dict:
    profile = get_profile("toy")
    shipped = models.img2img(profile)
    clip, clip_processor = models.clip(profile)
    judge = quality.AttributeJudge(clip, shipped.tokenizer, clip_processor.image_processor)
    n_held = zoo_cli.RECIPES["scenes"]["n_held_out"]
    data, held = train.SceneData.draw(n_train + n_held, 0, build.IMAGE_SIZE).split(n_train)
    # single-object scenes of another seed's stream: neither the VAE nor the judge's vision tower saw them
    probe = train.SceneData.draw(400, 1, build.IMAGE_SIZE, single_object=True)
    truth = [s.objects[0] for s in probe.scenes]
    shipped_training = models.zoo_manifest(profile)["models"]["sd-img2img"]["training"]["vae"]
    name = f"shipped zoo's VAE {shipped.vae.config.block_out_channels}, {shipped_training['steps']} x {shipped_training['batch_size']}"
    results = {name: measure(shipped.vae, judge, held, probe) | {"train_seconds": shipped_training["train_seconds"]}}
    print(name, json.dumps(results[name]), flush=True)
    base = zoo_cli.RECIPES["vae"]
    vgg19 = models.vgg19_features(profile)  # the perceptual loss's network, as the zoo build trains the VAE
    for name in variants:
        layout, overrides = VARIANTS[name]
        vae = build.vae(1, **layout).to(device)
        stats = train.train_vae(vae, data, seed=1, progress=False, vgg19=vgg19, **(base | overrides))
        results[name] = measure(vae, judge, held, probe) | {
            "layout": layout, "recipe": base | overrides, "train_seconds": stats["train_seconds"],
            "final_loss": stats["final_loss"]}
        print(name, json.dumps(results[name]), flush=True)
    return {"meta": {"zoo": profile.models.sd, "device": device, "n_train": n_train, "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "machine": platform.machine(),
                     "judge_on_true_images": judge.accuracy(probe.images, truth) | {"n": len(truth)}},
            "variants": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--n-train", type=int, default=zoo_cli.RECIPES["scenes"]["n_train"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    quiet_libraries()
    report = run(args.variants, args.n_train, args.device)
    true = report["meta"]["judge_on_true_images"]
    print(f"judge on the 400 true images: category {true['category']:.3f}, colour {true['colour']:.3f}")
    print(f"{'variant':<42} {'PSNR':>6} {'category':>9} {'colour':>7} {'train s':>8} {'ms/60':>6}")
    for name, r in report["variants"].items():
        judged = r["judge_on_round_trips"]
        print(f"{name:<42} {r['psnr_db']:>6.2f} {judged['category']:>9.3f} {judged['colour']:>7.3f} "
              f"{r['train_seconds']:>8.0f} {r['cpu_round_trip_ms_60']:>6.1f}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
