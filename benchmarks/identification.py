"""Time the Takagi correlation matrix at the paper's size: the former float64 einsum vs the float32 product.

    python benchmarks/identification.py                    # 982 x 5 generations, 263,168 dims, CPU
    python benchmarks/identification.py --threads 2 --fraction 0.01 --out timings.json
    python benchmarks/identification.py --memmap /tmp      # data in .npy memmaps there (page cache, not RAM)
    python benchmarks/identification.py --device cuda      # the new one on a GPU

CLIP Early / Middle features are 257 tokens x 1024 = 263,168 dims; Table 1 correlates 982 test
images with 982 x 5 generations per metric. The data are random float32 (generated = noise + 0.1
x original, so identification is well above chance), drawn in place: 6.2 GB in RAM, or in .npy
memmaps with ``--memmap`` (as cached features are read), never a float64 copy. The einsum is
timed on the first ``fraction`` of the feature columns and extrapolated linearly (every step of
it is linear in the number of columns); the new implementation runs on everything. CPU seconds
are printed next to wall seconds because other jobs on a shared machine inflate the latter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recon import evaluate

N_IMAGES, N_SAMPLES, DIMS = 982, 5, 257 * 1024


def einsum_correlation_matrix(originals: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """The former implementation: float64 copies, z-scored rows, ``np.einsum``."""
    def zscore_rows(x):
        x = x - x.mean(axis=-1, keepdims=True)
        norm = np.linalg.norm(x, axis=-1, keepdims=True)
        return x / np.where(norm == 0, 1, norm)

    originals = np.asarray(originals, dtype=np.float64).reshape(len(originals), -1)
    generated = np.asarray(generated, dtype=np.float64)
    return np.einsum("id,jkd->ijk", zscore_rows(originals), zscore_rows(generated)).mean(axis=2)


def draw(n: int, n_samples: int, dims: int, folder: Path | None = None, seed: int = 0):
    """float32 originals (n, dims) and generations (n, n_samples, dims), drawn in place row by row,
    in RAM or in .npy memmaps in ``folder``."""
    rng = np.random.default_rng(seed)
    if folder is None:
        originals = np.empty((n, dims), dtype=np.float32)
        generated = np.empty((n, n_samples, dims), dtype=np.float32)
    else:
        originals = np.lib.format.open_memmap(folder / "originals.npy", "w+", np.float32, (n, dims))
        generated = np.lib.format.open_memmap(folder / "generated.npy", "w+", np.float32, (n, n_samples, dims))
    rng.standard_normal(out=originals, dtype=np.float32)
    for i in range(n):
        rng.standard_normal(out=generated[i], dtype=np.float32)
        generated[i] += 0.1 * originals[i]
    return originals, generated


def timed(fn):
    """(result, wall seconds); the process CPU seconds are in ``timed.cpu`` (robust to other load)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    timed.cpu = time.process_time() - cpu
    return result, time.perf_counter() - start


def run(args, folder: Path | None) -> None:
    (originals, generated), draw_s = timed(lambda: draw(args.n, args.samples, args.dims, folder))
    gb = (originals.nbytes + generated.nbytes) / 1e9
    print(f"{args.n} images x {args.samples} samples x {args.dims:,} dims float32 ({gb:.1f} GB "
          f"{'in memmaps in ' + str(folder) if folder else 'in RAM'}), drawn in {draw_s:.1f} s; "
          f"{args.threads} threads, device {args.device}; load average {os.getloadavg()[0]:.1f}", flush=True)

    part = max(1, round(args.dims * args.fraction))
    cols = slice(0, part)
    old_R, old_part_s = timed(lambda: einsum_correlation_matrix(originals[:, cols], generated[:, :, cols]))
    old_s, old_cpu = old_part_s * args.dims / part, timed.cpu * args.dims / part
    macs = args.n * args.n * args.samples * args.dims
    print(f"float64 einsum: {old_part_s:.1f} s on {part:,} columns -> {old_s:.0f} s ({old_s / 60:.1f} min) "
          f"extrapolated, {macs / old_s / 1e9:.2f} GMAC/s; {old_cpu:.0f} CPU s", flush=True)
    check_R = evaluate.correlation_matrix(originals[:, cols], generated[:, :, cols], args.device)
    max_diff = float(np.abs(check_R - old_R).max())
    rows = slice(0, min(args.n, 20))  # and every column: float32 error grows with the summed length
    full_diff = float(np.abs(evaluate.correlation_matrix(originals[rows], generated[rows], args.device)
                             - einsum_correlation_matrix(originals[rows], generated[rows])).max())
    print(f"float32 product vs float64 einsum: max |dR| = {max_diff:.1e} on the same {part:,} columns, "
          f"{full_diff:.1e} on the first {rows.stop} images x all {args.dims:,} columns", flush=True)

    R, new_s = timed(lambda: evaluate.correlation_matrix(originals, generated, args.device))
    new_cpu = timed.cpu
    accuracy = float(evaluate.identification_accuracy(R).mean())
    print(f"float32 product: {new_s:.1f} s ({new_s / 60:.2f} min), {macs / new_s / 1e9:.1f} GMAC/s; "
          f"{new_cpu:.0f} CPU s; identification {accuracy:.3f}")
    print(f"speed-up: {old_s / new_s:.0f}x wall, {old_cpu / new_cpu:.0f}x CPU time; "
          f"load average now {os.getloadavg()[0]:.1f}")
    if args.out:
        meta = {"n": args.n, "samples": args.samples, "dims": args.dims, "threads": args.threads,
                "device": args.device, "memmap": bool(folder), "torch": torch.__version__,
                "machine": platform.machine(), "cpus": os.cpu_count(), "load_average": os.getloadavg()[0]}
        result = {"einsum_seconds_extrapolated": round(old_s, 1), "einsum_cpu_seconds_extrapolated": round(old_cpu, 1),
                  "einsum_columns_timed": part, "float32_seconds": round(new_s, 1),
                  "float32_cpu_seconds": round(new_cpu, 1), "speed_up": round(old_s / new_s, 1),
                  "max_abs_diff_on_timed_columns": max_diff, "max_abs_diff_first_20_images_all_columns": full_diff}
        args.out.write_text(json.dumps({"meta": meta, **result}, indent=1))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=N_IMAGES, help="test images")
    parser.add_argument("--samples", type=int, default=N_SAMPLES)
    parser.add_argument("--dims", type=int, default=DIMS)
    parser.add_argument("--fraction", type=float, default=1 / 128, help="share of the columns the einsum runs on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memmap", type=Path, help="draw the data into .npy memmaps in a fresh folder here")
    parser.add_argument("--out", type=Path, help="write the timings as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:
        pass

    if args.memmap is None:
        run(args, None)
        return
    with tempfile.TemporaryDirectory(dir=args.memmap) as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
