"""Issue 31's CPU levers, each measured on the toy's two costliest kernels before anything is adopted.

    python benchmarks/levers.py --out benchmarks/measured/levers-toy-<date>.json

Both kernels run the package's own functions on the toy zoo's models, on one thread (the toy profile's
``compute_threads``): img2img on one batch as the profile batches it, and +G feature matching (the profile's
generator, float64, batch, a tenth of its steps) on random targets. Each lever is timed against the kernel as
the package runs it, and its output compared with the baseline's, byte for byte: a lever that changes a pixel
changes ``results/toy``. First, ``torch.profiler`` says where the baseline img2img spends its time (the issue
asked for a profile before any lever). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch


def _timed(run, repeats: int = 2) -> tuple[float, np.ndarray]:
    """Best of ``repeats`` wall times, and the output of the last run."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - start)
    return best, out


def _difference(a: np.ndarray, b: np.ndarray) -> dict:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"pixels_differing": float((diff > 0).mean()), "max_grey_levels": int(diff.max())}


def img2img_levers(p) -> dict:
    from recon import methods, models

    pipe = models.img2img(p)
    rng = np.random.default_rng(0)
    per_batch = max(1, p.batch_size // p.n_samples)
    latents = rng.standard_normal((per_batch, 4, p.z_size, p.z_size)).astype(np.float32)
    tokens = pipe.tokenizer(["a red ball on grass"] * per_batch, padding="max_length", return_tensors="pt",
                            max_length=pipe.tokenizer.model_max_length)
    with torch.no_grad():
        embeds = pipe.text_encoder(tokens.input_ids)[0].numpy()

    def run():
        return methods.img2img(pipe, latents, prompt_embeds=embeds, n_samples=p.n_samples, strength=p.strength,
                               guidance_scale=p.guidance_scale, num_inference_steps=p.num_inference_steps, seed=0,
                               batch_size=p.batch_size, progress=False)

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    ops = prof.key_averages()
    total = sum(op.self_cpu_time_total for op in ops)
    top = sorted(ops, key=lambda op: -op.self_cpu_time_total)[:8]
    profiled = [{"op": op.key, "share": round(op.self_cpu_time_total / total, 3)} for op in top]

    seconds, baseline = _timed(run)
    rows = [{"lever": "as the package runs it (diffusers' no_grad)", "seconds": round(seconds, 2), "same bytes": True}]

    def measure(name, setup=None, teardown=None, context=contextlib.nullcontext):
        try:
            if setup:
                setup()
            with context():
                took, out = _timed(run)
            row = {"lever": name, "seconds": round(took, 2), "speed-up": round(seconds / took, 2),
                   "same bytes": bool(np.array_equal(out, baseline))} | _difference(out, baseline)
        except Exception as err:  # a lever that does not run here is a result too
            row = {"lever": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
        finally:
            if teardown:
                teardown()
        rows.append(row)

    measure("torch.inference_mode", context=torch.inference_mode)
    unet, vae = pipe.unet, pipe.vae
    measure("channels-last UNet and VAE",
            setup=lambda: (unet.to(memory_format=torch.channels_last), vae.to(memory_format=torch.channels_last)),
            teardown=lambda: (unet.to(memory_format=torch.contiguous_format),
                              vae.to(memory_format=torch.contiguous_format)))
    compiled = {}

    def compile_unet():
        start = time.perf_counter()
        pipe.unet = torch.compile(unet)
        run()  # the first call compiles
        compiled["first call seconds (compiling)"] = round(time.perf_counter() - start, 1)

    measure("torch.compile UNet (inductor)", setup=compile_unet, teardown=lambda: setattr(pipe, "unet", unet))
    rows[-1] |= compiled
    batch = p.batch_size * 2
    rows.append({"lever": f"batch of {batch} generations instead of {p.batch_size} (one pipeline call per batch "
                          "already; seeds per generation, so the same noise)"})
    seconds_big, big = _timed(lambda: methods.img2img(
        pipe, np.concatenate([latents, latents]), prompt_embeds=np.concatenate([embeds, embeds]),
        n_samples=p.n_samples, strength=p.strength, guidance_scale=p.guidance_scale,
        num_inference_steps=p.num_inference_steps, seed=0, batch_size=batch, progress=False), repeats=1)
    rows[-1] |= {"seconds per generation": round(seconds_big / len(big) / p.n_samples, 4),
                 "baseline seconds per generation": round(seconds / len(baseline) / p.n_samples, 4)}
    return {"generations": int(per_batch * p.n_samples), "steps": int(p.num_inference_steps * p.strength),
            "profile (self CPU time, baseline)": profiled, "levers": rows}


def gan_levers(p) -> dict:
    from recon import features, methods, models, recipes

    vgg = models.vgg19_features(p)
    widths = features.vgg_layer_widths(vgg, p.vgg_layers, p.vgg_pool, p.generator_size)
    rng = np.random.default_rng(0)
    n = p.generator_batch_size
    targets = {layer: rng.standard_normal((n, width)).astype(np.float32) for layer, width in widths.items()}
    options = recipes.feature_matching_options(p) | {"steps": max(1, p.generator_steps // 10)}

    def run():
        return methods.images_from_vgg_features(models.gan_generator(p), vgg, targets, **options, progress=False)

    seconds, baseline = _timed(run)
    rows = [{"lever": f"as the package runs it ({p.generator_dtype})", "seconds": round(seconds, 2)}]
    vgg.to(memory_format=torch.channels_last)
    try:
        took, out = _timed(run)
        rows.append({"lever": "channels-last VGG19", "seconds": round(took, 2), "speed-up": round(seconds / took, 2),
                     "same bytes": bool(np.array_equal(out, baseline))} | _difference(out, baseline))
    finally:
        vgg.to(memory_format=torch.contiguous_format)
    float32 = options | {"dtype": None}
    took, out = _timed(lambda: methods.images_from_vgg_features(models.gan_generator(p), vgg, targets, **float32,
                                                                progress=False))
    rows.append({"lever": "float32 (not adopted: its images differ across CPUs, the how-built page)",
                 "seconds": round(took, 2), "speed-up": round(seconds / took, 2),
                 "same bytes": bool(np.array_equal(out, baseline))} | _difference(out, baseline))
    return {"images": n, "steps": options["steps"], "levers": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from recon.book import quiet_libraries
    from recon.profiles import get_profile
    from recon.results import environment

    quiet_libraries()
    p = get_profile(args.profile)
    torch.set_num_threads(p.compute_threads or torch.get_num_threads())
    report = {"profile": p.name, "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
              "machine": platform.machine(), "cpu": environment()["cpu"],
              "img2img": img2img_levers(p), "gan": gan_levers(p)}
    for kernel in ("img2img", "gan"):
        for row in report[kernel]["levers"]:
            print(kernel, json.dumps(row))
    print("img2img profile:", json.dumps(report["img2img"]["profile (self CPU time, baseline)"]))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
