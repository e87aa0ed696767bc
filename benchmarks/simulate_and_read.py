"""Simulator run time and the NSD reader's peak memory on a simulated tree of a chosen scale.

    python benchmarks/simulate_and_read.py                      # the toy profile's default tree
    python benchmarks/simulate_and_read.py --n-train 2000 --n-shared 200 --grid-scale 1.5

The tree is written to a temporary folder; each subject is then loaded (all seven streams ROIs,
every session) by this script in a fresh subprocess (``--load``), whose peak resident memory is
reported beside the size of the arrays it returns.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; getrusage's ru_maxrss survives exec, so a
    child would report its parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def load(root: str, trials_per_session: int, n_sessions: int, subject: str) -> dict:
    from recon.config import STREAMS_ROIS
    from recon.nsd import NSDReader

    start = time.perf_counter()
    data = NSDReader(root, trials_per_session).load_subject(subject, STREAMS_ROIS, n_sessions)
    return {"subject": subject, "seconds": round(time.perf_counter() - start, 2),
            "voxels": data.train_betas.shape[1], "trials": len(data.train_ids) + int(data.test_repeats.sum()),
            "arrays_MB": round((data.train_betas.nbytes + data.test_betas.nbytes) / 1e6, 1),
            "peak_rss_MB": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-shared", type=int, default=None)
    parser.add_argument("--trials-per-session", type=int, default=None)
    parser.add_argument("--grid-scale", type=float, default=1.0, help="multiply each subject's voxel grid sides")
    parser.add_argument("--load", nargs=4, metavar=("ROOT", "TRIALS_PER_SESSION", "N_SESSIONS", "SUBJECT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        root, tps, n_sessions, subject = args.load
        print(json.dumps(load(root, int(tps), int(n_sessions), subject)))
        return

    from recon.toy.simulate import SimulationConfig, simulate_nsd

    base = SimulationConfig()
    subjects = {name: replace(spec, grid=tuple(int(round(g * args.grid_scale)) for g in spec.grid))
                for name, spec in base.subjects.items()}
    sizes = {k: v for k, v in [("n_train", args.n_train), ("n_shared", args.n_shared),
                               ("trials_per_session", args.trials_per_session)] if v is not None}
    config = replace(base, subjects=subjects, **sizes)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = simulate_nsd(Path(tmp) / "nsd", config, progress=False)
        simulate_seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(f"simulated {config.n_sessions} sessions x {config.trials_per_session} trials per subject, "
              f"{config.n_stimuli} images: {simulate_seconds:.1f} s, {size / 1e6:.0f} MB "
              f"on disk, simulator peak RSS {peak_rss_mb()} MB")
        for subject in subjects:
            out = subprocess.run([sys.executable, __file__, "--load", str(root), str(config.trials_per_session),
                                  str(config.n_sessions), subject], check=True, capture_output=True, text=True)
            print(json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
