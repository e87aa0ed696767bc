"""Time each stage of one subject's analysis from an empty cache.

    python benchmarks/stages.py                       # toy profile, subj01
    python benchmarks/stages.py --profile smoke --subject subj07 --out timings.json
    python benchmarks/stages.py --threads 1 --subject subj02 &   # two subjects at once, one thread each

Each stage is timed on its own (its inputs computed by the stages before it), in a fresh temporary
cache unless ``--cache`` is given, so the numbers are what a first book build pays. The simulated
NSD is written into that cache too and timed as the first stage.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from recon import book
from recon.profiles import get_profile
from recon.experiment import Experiment, ensure_dataset

METHODS = ("[30]", "+T", "+T+G", "+T+G+D")


def run(profile_name: str, subject: str, cache: Path, device: str) -> list[dict]:
    profile = get_profile(profile_name, cache_dir=cache, device=device)
    book.quiet_libraries()
    rows = []

    def timed(stage, fn):
        start = time.perf_counter()
        fn()
        rows.append({"stage": stage, "seconds": round(time.perf_counter() - start, 2)})
        print(f"{stage:<28} {rows[-1]['seconds']:>8.2f} s", flush=True)

    if profile.simulation is not None:
        timed("simulate NSD tree", lambda: ensure_dataset(profile, progress=False))
    exp = Experiment(profile, subject, progress=False)
    timed("read subject betas", lambda: exp.data)
    for target in ("z", "c", "blip", "dpt", "vgg"):
        timed(f"test features {target}", lambda t=target: exp.stimulus_features(t, "test"))
        # the training features are extracted into a scratch entry inside the decoder's stage
        timed(f"train features + decoder {target}", lambda t=target: exp.decoded(t))
    timed("captions (BLIP generate)", lambda: exp.decoded_captions)
    timed("depth (DPT neck + head)", lambda: exp.decoded_depth)
    timed("+G feature matching", lambda: exp.gan_images)
    for method in METHODS:
        timed(f"generate {method}", lambda m=method: exp.reconstruct(m))
    timed("evaluation features + scores", lambda: [exp.scores(m) for m in METHODS])
    n = len(exp.test_images)
    print(f"{n} test images x {profile.n_samples} samples, {profile.num_inference_steps} DDIM steps "
          f"(strength {profile.strength}: {int(profile.num_inference_steps * profile.strength)} denoising steps)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--subject", default="subj01")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache", type=Path, help="cache folder (default: a fresh temporary one)")
    parser.add_argument("--out", type=Path, help="write the timings as JSON here")
    parser.add_argument("--threads", type=int, help="torch and BLAS threads (default: torch's, one per core)")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.profile, args.subject, args.cache or Path(tmp), args.device)
    total = sum(r["seconds"] for r in rows)
    print(f"{'total':<28} {total:>8.2f} s")
    if args.out:
        meta = {"profile": args.profile, "subject": args.subject, "device": args.device, "torch": torch.__version__,
                "threads": torch.get_num_threads(), "machine": platform.machine()}
        args.out.write_text(json.dumps({"meta": meta, "stages": rows, "total_seconds": round(total, 2)}, indent=1))


if __name__ == "__main__":
    main()
