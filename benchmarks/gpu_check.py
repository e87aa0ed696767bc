"""Every GPU figure the book quotes, from one prepared run: the nsd profile's real architectures with random
weights, at 512 px, in the profile's precision (float32 weights, SD 1.4 img2img under float16 autocast, as the
authors'; ``--dtype float16`` measures half-precision weights instead).

    python benchmarks/gpu_check.py --device cuda     # on a GPU: writes results/gpu/<gpu>-<date>.json and .md
    python benchmarks/gpu_check.py --tiny            # the same code on tiny configurations, on the CPU (CI)

What it measures, each after one warm-up call:

- img2img (SD 1.4) and depth2img (SD 2 depth) at the nsd profile's sampler (50 DDIM steps at strength 0.8:
  40 denoise), images per second at batches of 1, 8 and 16;
- BLIP caption generation from decoded ViT features, seconds per image;
- +G (the profile's generator and its 200 iterations), seconds per image;
- one decoder's eigendecomposition of XᵀX at 14,000 voxels (float64, as ``recon.ridge_streamed`` does);
- identification at NSD's size: R of 982 test images against 982 × 5 generations in CLIP(Early)'s 263,168
  dimensions, on the device.

From these it estimates the GPU hours of one subject's generation. The models are written once per run by
``benchmarks/nsd_dryrun.py``'s writers (published configurations, seeded random weights), so the figures
are the architectures' costs; the real weights cost the same. The run writes a JSON report and a Markdown
summary (``latest.md``) that the "Running on the real NSD" page includes.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results" / "gpu"
N_TEST, N_SAMPLES, CLIP_EARLY_DIMS, N_VOXELS = 982, 5, 263_168, 14_000


def _dryrun_module():
    """benchmarks/nsd_dryrun.py, whose model writers and nsd-profile set-up this run shares."""
    spec = importlib.util.spec_from_file_location("nsd_dryrun", Path(__file__).with_name("nsd_dryrun.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve annotations through the module
    spec.loader.exec_module(module)
    return module


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, warm_up: bool = True) -> float:
    """Seconds of one call of ``fn`` (after a warm-up call, which loads kernels and caches)."""
    if warm_up:
        fn()
    _synchronise(device)
    start = time.perf_counter()
    fn()
    _synchronise(device)
    return time.perf_counter() - start


def measure(profile, plan: dict, device: str, release) -> list[dict]:
    """Every measurement of the plan, as rows of (what, setting, value, unit); ``release()`` frees the loaded
    models between families, so each fits beside nothing else."""
    from recon import evaluate, gpu_budget, methods, models, recipes

    rows = []
    rng = np.random.default_rng(0)
    size = profile.image_size
    common = dict(n_samples=1, strength=profile.strength, guidance_scale=profile.guidance_scale,
                  num_inference_steps=profile.num_inference_steps, seed=0, progress=False)
    for name, run in (("img2img", lambda pipe, images, prompts, batch: methods.img2img(
                           pipe, None, init_images=images, prompts=prompts, batch_size=batch,
                           autocast=models.sd_autocast(profile), **common)),
                      ("depth2img", lambda pipe, images, prompts, batch: methods.depth2img(
                           pipe, images, rng.random((len(images), size, size), dtype=np.float32) + 0.1, prompts,
                           batch_size=batch, **common))):
        pipe = models.img2img(profile) if name == "img2img" else models.depth2img(profile)
        for batch in plan["batches"]:
            images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
            prompts = ["a photograph of a scene"] * batch
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats(device)
            seconds = timed(lambda: run(pipe, images, prompts, batch), device)
            rows.append({"what": name, "setting": f"batch {batch}", "value": batch / seconds, "unit": "images/s"})
            if device.startswith("cuda"):  # beside what recon.gpu_budget plans for it (one sample per image here)
                planned = gpu_budget.generation_gb(
                    profile.replace(n_samples=1), gpu_budget.PIPELINE_NETWORKS["sd" if name == "img2img" else "sd_depth"],
                    batch, profile.vae_slicing, autocast=name == "img2img" and profile.sd_autocast is not None)
                rows.append({"what": f"{name} peak GPU memory", "setting": f"batch {batch}; planned {planned:.1f} GB",
                             "value": torch.cuda.max_memory_allocated(device) / 1e9, "unit": "GB"})
        del pipe
        release()

    blip, processor = models.blip(profile)
    tokens = 1 + (profile.blip_image_size // blip.config.vision_config.patch_size) ** 2
    vision = rng.standard_normal((plan["blip_images"], tokens, blip.config.vision_config.hidden_size),
                                 dtype=np.float32)
    seconds = timed(lambda: methods.captions_from_vision_features(
        blip, processor, vision, repetition_penalty=profile.repetition_penalty, num_beams=profile.caption_beams,
        max_length=profile.caption_max_length, min_length=profile.caption_min_length, prompt=profile.caption_prompt,
        progress=False), device)
    rows.append({"what": "BLIP captions", "setting": f"{profile.caption_beams} beams, {len(vision)} images",
                 "value": seconds / len(vision), "unit": "s/image"})
    del blip, processor
    release()

    from recon import features

    vgg = models.vgg19_features(profile)
    widths = features.vgg_layer_widths(vgg, profile.vgg_layers, profile.vgg_pool, profile.generator_size)
    targets = {layer: rng.standard_normal((plan["gan_images"], width), dtype=np.float32)
               for layer, width in widths.items()}
    seconds = timed(lambda: methods.images_from_vgg_features(
        models.gan_generator(profile), vgg, targets, **recipes.feature_matching_options(profile), progress=False),
        device, warm_up=False)
    rows.append({"what": "+G", "setting": f"{profile.generator}, {profile.generator_steps} iterations",
                 "value": seconds / plan["gan_images"], "unit": "s/image"})
    del vgg
    release()

    X = torch.randn(plan["voxels"] * 2, plan["voxels"], device=device)
    gram = (X.T @ X).double()
    del X
    seconds = timed(lambda: torch.linalg.eigh(gram), device)
    rows.append({"what": "eigendecomposition", "setting": f"{plan['voxels']:,} voxels, float64",
                 "value": seconds, "unit": "s"})
    del gram

    n, dims = plan["identification"]
    originals = rng.standard_normal((n, dims), dtype=np.float32)
    generated = rng.standard_normal((n, N_SAMPLES, dims), dtype=np.float32)
    seconds = timed(lambda: evaluate.cross_correlations(originals, generated, device), device)
    rows.append({"what": "identification", "setting": f"{n} × {n} × {N_SAMPLES} samples, {dims:,} dims",
                 "value": seconds, "unit": "s"})
    return rows


def subject_hours(rows: list[dict], profile) -> dict:
    """GPU hours of one subject's generation, at the best measured batch: [30], +T, +T+G and the SD 2.0 control
    by img2img, +T+G+D by depth2img (982 images × 5 samples each), captions and +G once per test image."""
    best = {name: max(r["value"] for r in rows if r["what"] == name) for name in ("img2img", "depth2img")}
    per_image = {r["what"]: r["value"] for r in rows if r["unit"] == "s/image"}
    seconds = (4 * N_TEST * profile.n_samples / best["img2img"] + N_TEST * profile.n_samples / best["depth2img"]
               + N_TEST * (per_image["BLIP captions"] + per_image["+G"]))
    return {"generation_hours": round(seconds / 3600, 3), "img2img_s_per_image": round(1 / best["img2img"], 4)}


def markdown(report: dict) -> str:
    meta = report["meta"]
    tiny = " (tiny configurations, not the real architectures)" if meta["tiny"] else ""
    lines = [f":::{{table}} Measured by `benchmarks/gpu_check.py` on {meta['device_name']}{tiny}, {meta['dtype']} weights"
             f"{', SD img2img under ' + meta['sd_autocast'] + ' autocast' if meta.get('sd_autocast') else ''}, "
             f"torch {meta['torch']}, {meta['date']}.", ":name: tbl-gpu-check", "",
             "| what | setting | value |", "| --- | --- | ---: |"]
    lines += [f"| {r['what']} | {r['setting']} | {r['value']:.4g} {r['unit']} |" for r in report["rows"]]
    hours = report["subject"]
    lines += [":::", "", f"One subject's generation ([30], +T, +T+G and the SD 2.0 control by img2img, +T+G+D by depth2img, "
              f"982 images × 5 samples, plus captions and +G): about {hours['generation_hours']:.2f} GPU hours "
              f"({hours['img2img_s_per_image']:.3f} s per img2img image at the best batch)."]
    return "\n".join(lines) + "\n"


def device_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cuda on a GPU")
    parser.add_argument("--tiny", action="store_true", help="tiny configurations and sizes, on the CPU (CI's test)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"),
                        help="the models' weights (default float32, the nsd profile's)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS,
                        help="where the JSON report and latest.md go (default results/gpu/)")
    parser.add_argument("--workdir", type=Path, help="keep the written model folders here and reuse them")
    args = parser.parse_args(argv)
    if not args.tiny and not args.device.startswith("cuda"):
        parser.error("the full-size check is for a GPU (--device cuda); --tiny runs the same code on the CPU")
    from recon.book import quiet_libraries

    quiet_libraries()
    dryrun = _dryrun_module()
    dtype = args.dtype
    settings = dryrun.Settings(device=args.device, dtype=dtype, steps=2 if args.tiny else 50, tiny=args.tiny,
                               gan_steps=2 if args.tiny else 200, n_samples=N_SAMPLES)
    plan = (dict(batches=(1, 2), blip_images=2, gan_images=2, voxels=200, identification=(8, 1000)) if args.tiny
            else dict(batches=(1, 8, 16), blip_images=16, gan_images=16, voxels=N_VOXELS,
                      identification=(N_TEST, CLIP_EARLY_DIMS)))
    temporary = None if args.workdir else tempfile.mkdtemp(prefix="gpu-check-", dir="/tmp")
    workdir = args.workdir or Path(temporary)
    try:
        dryrun.write_missing_models(workdir, settings, dryrun.Stages(args.device, echo=False))
        profile = dryrun.dryrun_profile(workdir, settings)
        rows = measure(profile, plan, args.device, dryrun.release_models)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    date = datetime.date.today().isoformat()
    report = {"meta": {"device": args.device, "device_name": device_name, "dtype": dtype, "sd_autocast": settings.sd_autocast, "tiny": args.tiny,
                       "torch": torch.__version__, "date": date, "threads": torch.get_num_threads()},
              "rows": rows, "subject": subject_hours(rows, profile)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{device_slug(device_name)}-{date}{'-tiny' if args.tiny else ''}"
    (args.out_dir / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    summary = markdown(report)
    (args.out_dir / "latest.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
