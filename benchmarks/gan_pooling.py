"""What pooling the decoded VGG19 maps costs +G: the toy's +G images from pooled maps (the profile's) and from the
full maps (as the authors decode them), for one subject, each identified among the test images.

    python benchmarks/gan_pooling.py --subject subj01 --out benchmarks/measured/gan_pooling-toy-subj01.json

The authors decode VGG19's full maps (about 6.1 million targets per image on NSD); recon average-pools them to at
most ``vgg_pool`` x ``vgg_pool`` so that the decoded maps fit the disk. Here the toy profile runs twice, the second
time with ``vgg_pool`` at the generator's size (no pooling), through the same cache and code as the book: the VGG19
decoder, +G, then two-way identification of the +G image (Takagi protocol, Table 1's metrics) and its PixCorr.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from recon import evaluate
from recon.book import quiet_libraries
from recon.config import PEER_RESOLUTION
from recon.profiles import get_profile
from recon.experiment import Experiment


def measure(profile, subject: str, label: str) -> dict:
    exp = Experiment(profile, subject, progress=False)
    start = time.perf_counter()
    decoded = exp.decoded("vgg")
    images = exp.gan_images
    seconds = time.perf_counter() - start
    scores = exp.image_scores(images, f"+G image, vgg_pool {profile.vgg_pool}")
    pixels = evaluate.pixel_metrics(exp.test_images, images, PEER_RESOLUTION)
    return {"maps": label, "vgg_pool": profile.vgg_pool, "targets": int(decoded["predicted"].shape[1]),
            "decoding_mean_r": float(np.mean(decoded["test_r"])), "seconds": round(seconds, 1),
            "PixCorr": float(np.mean(pixels["PixCorr"])), "SSIM": float(np.mean(pixels["SSIM"])),
            "identification": {metric: float(value) for metric, value in scores.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--subject", default="subj01")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    quiet_libraries()
    profile = get_profile(args.profile)
    rows = [measure(profile, args.subject, "pooled (the profile's)"),
            measure(profile.replace(vgg_pool=profile.generator_size), args.subject, "full (the authors')")]
    for row in rows:
        ident = "  ".join(f"{m} {v:.3f}" for m, v in row["identification"].items())
        print(f"{row['maps']:<24} {row['targets']:>7} targets  r {row['decoding_mean_r']:.3f}  "
              f"PixCorr {row['PixCorr']:.3f}  SSIM {row['SSIM']:.3f}  {ident}  ({row['seconds']} s)")
    report = {"profile": args.profile, "subject": args.subject, "rows": rows, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "machine": platform.machine(), "date": time.strftime("%Y-%m-%d")}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
