"""How the toy SD UNet's text-to-image grows with its training budget, with and without Min-SNR weighting.

    python benchmarks/unet_budget.py                                  # 1100, 2200, 4400 and 8800 steps of 32
    python benchmarks/unet_budget.py --steps 2200 --snr-gamma 5       # the zoo's budget, Min-SNR weighted
    python benchmarks/unet_budget.py --device cuda --steps 3000 12000 --batch-size 256 --out budget.json

Each run trains a fresh UNet of :data:`recon.toy.zoo.build.UNET_LAYOUT` by the zoo's SD recipe
(``RECIPES["unet"]``: lr, caption dropout, seed; its own warm-up and cosine decay over its budget), on the
inputs that ``benchmarks/unet_layouts.py`` prepares from the shipped zoo. Each is judged as the zoo manifest
judges the shipped one: text-to-image from the first caption of each of the quality probe's 400 single-object
scenes, named by the zoo's CLIP (``quality.text_to_image_judged_by_clip``), and its held-out caption reliance.
The VAE's round trips of the same scenes, judged alike, bound every figure from above.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch
from unet_layouts import ZooInputs

from recon.book import quiet_libraries
from recon.toy.zoo import __main__ as zoo_cli
from recon.toy.zoo import build, quality, train


def run(budgets: list[int], batch_size: int, snr_gamma: float | None, n_train: int, device: str) -> dict:
    inputs = ZooInputs(n_train)
    probe = train.SceneData.draw(zoo_cli.RECIPES["scenes"]["n_quality"], 0, build.IMAGE_SIZE, single_object=True,
                                 stream=train.QUALITY_STREAM)
    rows = np.arange(len(probe))
    ceiling = quality.reconstruction_attributes(inputs.vae, inputs.judge, probe, rows)
    print("VAE round trips:", json.dumps(ceiling), flush=True)
    results = {}
    for steps in budgets:
        recipe = zoo_cli.RECIPES["unet"] | {"steps": steps, "batch_size": batch_size}
        unet = build.unet(2).to(device)
        stats = train.train_unet(unet, build.scheduler(), inputs.latents, inputs.embeddings, seed=2,
                                 snr_gamma=snr_gamma, progress=False, desc=f"{steps} steps", **recipe)
        unet.to("cpu")
        results[str(steps)] = {
            "samples_seen": steps * batch_size,
            "train_seconds": stats["train_seconds"], "final_loss": stats["final_loss"],
            "caption_reliance": inputs.caption_reliance(unet),
            "text_to_image_judged_by_clip": quality.generation_attributes(inputs.pipeline(unet), inputs.judge,
                                                                          probe, rows),
        }
        print(steps, json.dumps(results[str(steps)]), flush=True)
    return {"meta": {"zoo": inputs.profile.models.sd, "device": device, "batch_size": batch_size,
                     "snr_gamma": snr_gamma, "n_train": n_train, "latent_scaling": round(inputs.scaling, 5),
                     "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine()},
            "vae_round_trips_judged_by_clip": ceiling, "budgets": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[1100, 2200, 4400, 8800])
    parser.add_argument("--batch-size", type=int, default=zoo_cli.RECIPES["unet"]["batch_size"])
    parser.add_argument("--snr-gamma", type=float, help="Min-SNR weighting (train.train_unet); default: none")
    parser.add_argument("--n-train", type=int, default=zoo_cli.RECIPES["scenes"]["n_train"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    quiet_libraries()
    report = run(args.steps, args.batch_size, args.snr_gamma, args.n_train, args.device)
    ceiling = report["vae_round_trips_judged_by_clip"]
    print(f"VAE round trips (the ceiling): category {ceiling['category']:.3f}, colour {ceiling['colour']:.3f}")
    print(f"{'steps':>6} {'samples':>8} {'gain':>7} {'category':>9} {'colour':>7} {'train s':>8}")
    for steps, r in report["budgets"].items():
        t2i = r["text_to_image_judged_by_clip"]
        print(f"{steps:>6} {r['samples_seen']:>8} {r['caption_reliance']['gain_over_other_caption']:>7.3f} "
              f"{t2i['category']:>9.3f} {t2i['colour']:>7.3f} {r['train_seconds']:>8.1f}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
