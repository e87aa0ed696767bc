"""Two threads in one process, or two one-thread processes at once? The toy's two costliest kernels, timed both ways.

    python benchmarks/threads.py                    # toy profile: img2img and +G, on 2 cores
    python benchmarks/threads.py --out threads.json

Each kernel runs the package's own function on the toy zoo's models: img2img on one batch as the profile
batches it (its images x samples, DDIM at the profile's steps and strength), and +G feature matching
(the profile's generator, dtype, batch and a tenth of its steps) on random targets of the right widths.
It is timed in one process with 1 thread and with 2, then as two 1-thread processes started together.
Two processes win when both finish before two 2-thread runs would: `speed-up` = 2 x (2-thread time) /
(slower of the pair). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def kernel(name: str, profile_name: str) -> float:
    """Seconds of one run of ``name`` ("img2img" or "gan") on the profile's models."""
    import torch

    from recon import features, methods, models, recipes
    from recon.book import quiet_libraries
    from recon.profiles import get_profile

    quiet_libraries()
    p = get_profile(profile_name)
    rng = np.random.default_rng(0)
    if name == "img2img":
        pipe = models.img2img(p)
        per_batch = max(1, p.batch_size // p.n_samples)
        side = p.z_size
        latents = rng.standard_normal((per_batch, 4, side, side)).astype(np.float32)
        tokens = pipe.tokenizer(["a red ball on grass"] * per_batch, padding="max_length", return_tensors="pt",
                                max_length=pipe.tokenizer.model_max_length)
        with torch.no_grad():
            embeds = pipe.text_encoder(tokens.input_ids)[0].numpy()

        def run():
            methods.img2img(pipe, latents, prompt_embeds=embeds, n_samples=p.n_samples,
                            strength=p.strength, guidance_scale=p.guidance_scale,
                            num_inference_steps=p.num_inference_steps, seed=0, batch_size=p.batch_size,
                            progress=False)
    elif name == "gan":
        vgg = models.vgg19_features(p)
        widths = features.vgg_layer_widths(vgg, p.vgg_layers, p.vgg_pool, p.generator_size)
        n = p.generator_batch_size
        targets = {layer: rng.standard_normal((n, width)).astype(np.float32) for layer, width in widths.items()}
        options = recipes.feature_matching_options(p) | {"steps": max(1, p.generator_steps // 10)}

        def run():
            methods.images_from_vgg_features(models.gan_generator(p), vgg, targets, **options, progress=False)
    else:
        raise ValueError(f"unknown kernel {name!r}: img2img or gan")
    run()  # warm-up: first-call allocations and lazy initialisation are not what a build repeats
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _child(name: str, profile: str, threads: int) -> subprocess.Popen:
    code = ("import sys, torch, threadpoolctl; torch.set_num_threads(int(sys.argv[3])); "
            "threadpoolctl.threadpool_limits(int(sys.argv[3])); sys.path.insert(0, sys.argv[4]); "
            "import threads; print(threads.kernel(sys.argv[1], sys.argv[2]))")
    return subprocess.Popen([sys.executable, "-c", code, name, profile, str(threads), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, text=True)


def _seconds(processes: list[subprocess.Popen]) -> list[float]:
    out = []
    for process in processes:
        stdout, _ = process.communicate()
        if process.returncode:
            raise RuntimeError(f"a timed process failed (exit {process.returncode})")
        out.append(float(stdout.strip().splitlines()[-1]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--kernels", nargs="+", default=["img2img", "gan"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for name in args.kernels:
        (one,) = _seconds([_child(name, args.profile, 1)])
        (two,) = _seconds([_child(name, args.profile, 2)])
        pair = _seconds([_child(name, args.profile, 1), _child(name, args.profile, 1)])
        rows.append({"kernel": name, "1 thread s": round(one, 2), "2 threads s": round(two, 2),
                     "two 1-thread processes s": round(max(pair), 2), "speed-up": round(2 * two / max(pair), 2)})
        print(rows[-1], flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
