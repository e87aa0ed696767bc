"""Where the toy generator loses the object's category, by the object's size (issue 33).

    python benchmarks/generator_by_size.py          # the shipped zoo, 2 CPU cores (about 3 minutes)

The CLIP judge names the category of each of the quality probe's 400 single-object scenes (as the manifest's
checks do) at each step of the generator: the true image; the VAE's round trip (the latent's ceiling); text-to-image
from its first caption; img2img from its own image and caption at the methods' strength 0.8 and at 0.5, all at the
authors' guidance 5 and 20 DDIM steps, one seed. Each is split by the object's size (the world draws small and large
objects; a small one spans about 10 pixels of 64, under three latent cells of 16).

If the generator lost the category for want of resolution, the small objects would fare worse at every step. If
it lost it because the UNet does not draw a shape from the caption, text-to-image would be as poor for the large
ones: that tells a redesign whether to change the world's rendering (larger objects, a finer latent) or the UNet.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from generator_levers import _cpu_name, probe_scenes

from recon import models
from recon.book import quiet_libraries
from recon.config import REPO_ROOT
from recon.profiles import get_profile
from recon.toy.zoo import quality


def run(seed: int = 0) -> dict:
    profile = get_profile("toy")
    pipe = models.img2img(profile)
    pipe.set_progress_bar_config(disable=True)
    clip, clip_processor = models.clip(profile)
    judge = quality.AttributeJudge(clip, pipe.tokenizer, clip_processor.image_processor)
    probe = probe_scenes()
    truth = [scene.objects[0] for scene in probe.scenes]
    prompts = [captions[0] for captions in probe.captions]
    size = probe.images.shape[1]
    start = time.perf_counter()

    rows = np.arange(len(probe))
    steps = {
        "true image": probe.images,
        "VAE round trip": quality.round_trip_images(pipe.vae.eval(), probe.images),
        "text-to-image": quality.text_to_image(pipe, prompts, size, steps=20, guidance=5.0, seed=seed),
        "img2img, strength 0.8": quality.img2img_images(pipe, probe, rows, strength=0.8, seed=seed),
        "img2img, strength 0.5": quality.img2img_images(pipe, probe, rows, strength=0.5, seed=seed),
    }
    results = {}
    for name, images in steps.items():
        results[name] = judge.category_by_size(images, truth)
        print(name, json.dumps(results[name]), flush=True)
    zoo = Path(profile.models.sd)
    return {"meta": {"date": date.today().isoformat(), "seed": seed, "n_probe": len(probe), "guidance": 5.0,
                     "steps": 20, "zoo": str(zoo.relative_to(REPO_ROOT)) if zoo.is_relative_to(REPO_ROOT) else str(zoo),
                     "torch": torch.__version__, "machine": platform.machine(), "cpu": _cpu_name(),
                     "seconds": round(time.perf_counter() - start)},
            "category_by_size": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    quiet_libraries()
    torch.manual_seed(0)
    result = run()
    out = args.out or Path(__file__).parent / "measured" / f"generator_by_size-toy-{result['meta']['date']}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
