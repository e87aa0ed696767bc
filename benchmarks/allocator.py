"""Does glibc's handling of freed memory slow the toy's two costliest kernels? (issue 31)

    python benchmarks/allocator.py --out benchmarks/measured/allocator-toy-<date>.json

Each setting runs in its own process (glibc's settings last for the process): img2img on one batch as the
toy profile batches and generates it (from 64 px images, which the pipeline encodes), and +G feature
matching (float64, one batch, a fifth of its steps), on one thread, each run once to warm up and then timed
``--repeats`` times (the best is kept). The outputs are hashed, so
a setting that changed a pixel would show. Run it on a quiet machine: page faults are what it measures, and
their cost depends on the machine (a virtual one pays more).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: name -> (mallopt settings applied in the process, environment); "adopted" is recon.allocator's
SETTINGS = {
    "glibc's defaults": ([], {}),
    "recon.allocator.keep_freed_memory (adopted)": ("adopted", {}),
    "no mmap at all, trim 1 GB": ([("M_MMAP_MAX", 0), ("M_TRIM_THRESHOLD", 2**30)], {}),
}


def _kernels(repeats: int) -> dict:
    import torch

    from recon import features, methods, models, recipes
    from recon.book import quiet_libraries
    from recon.profiles import get_profile

    quiet_libraries()
    p = get_profile("toy")
    torch.set_num_threads(p.compute_threads or 1)
    rng = np.random.default_rng(0)
    pipe = models.img2img(p)
    per_batch = max(1, p.batch_size // p.n_samples)
    # as the toy generates: from an image at the profile's size, which the pipeline encodes (z_init "image")
    init_images = rng.integers(0, 256, (per_batch, p.image_size, p.image_size, 3), dtype=np.uint8)
    tokens = pipe.tokenizer(["a red ball on grass"] * per_batch, padding="max_length", return_tensors="pt",
                            max_length=pipe.tokenizer.model_max_length)
    with torch.no_grad():
        embeds = pipe.text_encoder(tokens.input_ids)[0].numpy()
    vgg = models.vgg19_features(p)
    widths = features.vgg_layer_widths(vgg, p.vgg_layers, p.vgg_pool, p.generator_size)
    targets = {layer: rng.standard_normal((p.generator_batch_size, width)).astype(np.float32)
               for layer, width in widths.items()}
    options = recipes.feature_matching_options(p) | {"steps": max(1, p.generator_steps // 5)}
    kernels = {
        "img2img": lambda: methods.img2img(pipe, None, init_images=init_images, prompt_embeds=embeds,
                                           n_samples=p.n_samples,
                                           strength=p.strength, guidance_scale=p.guidance_scale,
                                           num_inference_steps=p.num_inference_steps, seed=0,
                                           batch_size=p.batch_size, progress=False),
        "+G": lambda: methods.images_from_vgg_features(models.gan_generator(p), vgg, targets, **options,
                                                       progress=False),
    }
    out = {}
    for name, run in kernels.items():
        image = run()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            image = run()
            best = min(best, time.perf_counter() - start)
        out[name] = {"seconds": round(best, 2), "sha256": hashlib.sha256(np.ascontiguousarray(image)).hexdigest()}
    out["+G"]["steps"], out["img2img"]["generations"] = options["steps"], int(per_batch * p.n_samples)
    return out


def _child(name: str, repeats: int) -> None:
    from recon import allocator

    settings, _ = SETTINGS[name]
    if settings == "adopted":
        assert allocator.keep_freed_memory(), "glibc refused recon.allocator's settings"
    else:
        mallopt = allocator.glibc_mallopt()
        for parameter, value in settings:
            assert mallopt(getattr(allocator, parameter), value) == 1, (parameter, value)
    print(json.dumps(_kernels(repeats)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.repeats)
        return 0
    from recon.results import environment

    rows = []
    for name, (_, env) in SETTINGS.items():
        done = subprocess.run([sys.executable, __file__, "--child", name, "--repeats", str(args.repeats)],
                              env=os.environ | env, capture_output=True, text=True, check=True)
        rows.append({"setting": name} | json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for row in rows:
        for kernel in ("img2img", "+G"):
            row[kernel]["speed-up"] = round(base[kernel]["seconds"] / row[kernel]["seconds"], 2)
            row[kernel]["same bytes"] = row[kernel]["sha256"] == base[kernel]["sha256"]
    report = {"date": time.strftime("%Y-%m-%d"), "cpu": environment()["cpu"], "machine": platform.machine(),
              "threads": 1, "repeats": args.repeats, "settings": rows}
    for row in rows:
        print(f"{row['setting']:48s} img2img {row['img2img']['seconds']:6.2f} s x{row['img2img']['speed-up']:.2f} "
              f"same bytes {row['img2img']['same bytes']}   +G {row['+G']['seconds']:6.2f} s "
              f"x{row['+G']['speed-up']:.2f} same bytes {row['+G']['same bytes']}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
