"""+G's optimisation budget: what each (steps, learning rate) recovers of unseen images, and what it costs.

    python benchmarks/gan_budget.py                                  # the grid below, 60 probe scenes
    python benchmarks/gan_budget.py --budgets 30:0.3 60:0.1 --out budgets.json
    python benchmarks/gan_budget.py --budgets 60:0.1 --vgg19 other/model.safetensors   # another VGG19 to match

+G (:func:`recon.methods.images_from_vgg_features`) runs exactly as the toy profile runs it, through its generator
(the zoo's VAE decoder), VGG19 layers and pooling; only the steps and the learning rate vary. No brain is involved:
the images are the first ``--n`` scenes of the zoo's quality probe (single-object scenes no model trained on), and
the targets are their exact VGG19 features and a stand-in for decoded ones
(:func:`recon.toy.zoo.vgg.inversion_targets`: pulled halfway to the mean feature of other scenes, plus noise of half
its sd). Reported per budget and target: PixCorr and SSIM against the true images; two-way identification of the +G
images among the probe's (Takagi protocol) on pixels and on Table 1's seven metrics, as the toy profile computes them;
the colour and category that the zoo's CLIP judge names (it names them on the true images too, first row); the wall
time. PixCorr alone rewards an image pulled towards the mean scene; identification asks whether it is still this
scene's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from recon import evaluate, methods, models
from recon.book import quiet_libraries
from recon.profiles import get_profile
from recon.toy.zoo import build, quality, train, vgg

#: (steps, lr): the profile's budget until 2026-11-27 (30 at 0.3), and around it
BUDGETS = [(30, 0.3), (60, 0.3), (120, 0.3), (30, 0.1), (60, 0.1), (120, 0.1), (60, 0.05)]


def run(budgets: list[tuple[int, float]], n: int, n_reference: int, vgg19: str | None = None) -> dict:
    """The rows for each budget; ``vgg19`` (a profile model spec) replaces the zoo's VGG19 that +G matches."""
    profile = get_profile("toy")
    if vgg19 is not None:
        profile = profile.replace(models=dataclasses.replace(profile.models, vgg19=vgg19))
    zoo_seed = models.zoo_manifest(profile)["models"]["clip"]["seed"]
    probe = train.SceneData.draw(n, zoo_seed, build.IMAGE_SIZE, single_object=True, stream=train.QUALITY_STREAM)
    reference = train.SceneData.draw(n_reference, zoo_seed + 1, build.IMAGE_SIZE)  # ordinary scenes, unseen too
    truth = [scene.objects[0] for scene in probe.scenes]
    clip, clip_processor = models.clip(profile)
    judge = quality.AttributeJudge(clip, clip_processor.tokenizer, clip_processor.image_processor)
    network = models.vgg19_features(profile)
    vae = models.img2img(profile).vae
    with torch.no_grad():  # the latent shape the VAE gives these images: the +G code's shape
        latent_shape = vae.encode(torch.zeros(1, 3, build.IMAGE_SIZE, build.IMAGE_SIZE)).latent_dist.mean.shape[1:]
    generator = models.gan_generator(profile, latent_shape)
    exact, noisy = vgg.inversion_targets(network, probe.images, reference.images, profile, shrink=0.5, noise=0.5,
                                         rng=np.random.default_rng(profile.seed))
    evaluation = evaluate.EvaluationFeatures(profile)
    originals = evaluation(probe.images, progress=False)
    rows = [{"targets": "true images"} | judge.accuracy(probe.images, truth)]
    print(json.dumps(rows[0]), flush=True)
    for steps, lr in budgets:
        for name, targets in (("exact", exact), ("shrunk, noisy", noisy)):
            start = time.perf_counter()
            images = methods.images_from_vgg_features(
                generator, network, targets, layers=profile.vgg_layers, pool=profile.vgg_pool, steps=steps, lr=lr,
                seed=profile.seed, batch_size=n, output_size=build.IMAGE_SIZE, dtype=models.generator_dtype(profile),
                code_quantum=profile.generator_code_quantum,
                progress=False)
            seconds = time.perf_counter() - start
            scores = evaluate.pixel_metrics(probe.images, images, size=build.IMAGE_SIZE)
            generated = {metric: f[:, None] for metric, f in evaluation(images, progress=False).items()}
            identified = evaluate.identification_scores(originals, generated) | {
                "pixels": evaluate.two_way_identification(probe.images, images[:, None])}  # it flattens
            rows.append({"steps": steps, "lr": lr, "targets": name, "seconds": round(seconds, 1),
                         "ms_per_image_step": round(1000 * seconds / (n * steps), 1),
                         "PixCorr": round(float(scores["PixCorr"].mean()), 3),
                         "SSIM": round(float(scores["SSIM"].mean()), 3)} | judge.accuracy(images, truth)
                        | {f"identification {k}": round(v, 3) for k, v in identified.items()})
            print(json.dumps(rows[-1]), flush=True)
    return {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "n_images": n, "generator": profile.generator, "layers": list(profile.vgg_layers),
            "vgg19": profile.models.vgg19, "rows": rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", nargs="+", default=[f"{s}:{lr}" for s, lr in BUDGETS],
                        help="steps:lr pairs (default: %(default)s)")
    parser.add_argument("--n", type=int, default=60, help="probe scenes (default: %(default)s)")
    parser.add_argument("--n-reference", type=int, default=300, help="scenes whose mean the stand-in shrinks to")
    parser.add_argument("--vgg19", help="the VGG19 +G matches, as a profile model spec (a zoo folder or a "
                        ".safetensors file); default: the zoo's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet_libraries()
    budgets = [(int(s), float(lr)) for s, lr in (b.split(":") for b in args.budgets)]
    result = run(budgets, args.n, args.n_reference, args.vgg19)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
