"""Does storing features and predictions in float16 change decoding accuracy? Toy profile, one subject.

    python benchmarks/feature_dtype.py [--subject subj01] [--targets z c blip dpt vgg]

Decodes each target twice, with the profile's ``feature_dtype`` float32 and float16 (everything
else equal), and prints the mean test correlation of both and their difference.
"""

from __future__ import annotations

import argparse
import time

import torch

from recon import book
from recon.profiles import get_profile
from recon.experiment import Experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--subject", default="subj01")
    parser.add_argument("--targets", nargs="+", default=["z", "c", "blip", "dpt", "vgg"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    book.quiet_libraries()
    runs = {dtype: Experiment(get_profile(args.profile, feature_dtype=dtype), args.subject, progress=False)
            for dtype in ("float32", "float16")}
    print(f"{'target':<8}{'r float32':>12}{'r float16':>12}{'difference':>12}{'seconds':>10}")
    for target in args.targets:
        start = time.perf_counter()
        r = {dtype: float(exp.decoded(target)["test_r"].mean()) for dtype, exp in runs.items()}
        print(f"{target:<8}{r['float32']:>12.5f}{r['float16']:>12.5f}{r['float16'] - r['float32']:>12.1e}"
              f"{time.perf_counter() - start:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
