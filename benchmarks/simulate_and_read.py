"""Simulator run time and the NSD reader's peak memory on a simulated tree of a chosen scale.

    python benchmarks/simulate_and_read.py                      # the toy profile's default tree
    python benchmarks/simulate_and_read.py --n-train 2000 --n-shared 200 --grid-scale 2

The tree is written to a temporary folder; each subject is then loaded (all seven streams ROIs,
every session) in a fresh subprocess, whose peak resident memory is reported beside the size of
the arrays it returns.
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

from recon.simulate import SimulationConfig, SubjectSpec

LOAD = """
import json, resource, sys, time
from recon.config import STREAMS_ROIS
from recon.nsd import NSDReader
root, tps, n_sessions, subject = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
start = time.perf_counter()
data = NSDReader(root, tps).load_subject(subject, STREAMS_ROIS, n_sessions)
seconds = time.perf_counter() - start
print(json.dumps({"subject": subject, "seconds": round(seconds, 2), "voxels": data.train_betas.shape[1],
                  "trials": len(data.train_ids) + int(data.test_repeats.sum()),
                  "arrays_MB": round((data.train_betas.nbytes + data.test_betas.nbytes) / 1e6, 1),
                  "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=SimulationConfig.n_train)
    parser.add_argument("--n-shared", type=int, default=SimulationConfig.n_shared)
    parser.add_argument("--trials-per-session", type=int, default=SimulationConfig.trials_per_session)
    parser.add_argument("--grid-scale", type=float, default=1.0, help="multiply each subject's voxel grid sides")
    args = parser.parse_args()
    base = SimulationConfig()
    subjects = {name: SubjectSpec(tuple(int(round(g * args.grid_scale)) for g in spec.grid), spec.noise)
                for name, spec in base.subjects.items()}
    config = replace(base, n_train=args.n_train, n_shared=args.n_shared,
                     trials_per_session=args.trials_per_session, subjects=subjects)
    from recon.simulate import simulate_nsd

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = simulate_nsd(Path(tmp) / "nsd", config, progress=False)
        simulate_seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(f"simulated {config.n_sessions} sessions x {config.trials_per_session} trials per subject, "
              f"{config.n_shared + 8 * config.n_train} images: {simulate_seconds:.1f} s, {size / 1e6:.0f} MB on disk")
        for subject in subjects:
            out = subprocess.run([sys.executable, "-c", LOAD, str(root), str(config.trials_per_session),
                                  str(config.n_sessions), subject], check=True, capture_output=True, text=True)
            print(json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
