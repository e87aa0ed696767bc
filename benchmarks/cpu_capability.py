"""How far each product of one subject's analysis moves when the CPU's code paths change.

    python benchmarks/cpu_capability.py                                   # toy, subj01: default vs avx2
    python benchmarks/cpu_capability.py --profile smoke --out spread.json
    python benchmarks/cpu_capability.py --capabilities default mkl-avx2 mkl-compatible   # MKL's branches
    python benchmarks/cpu_capability.py --capabilities default avx2 default   # the last: a repeat, for scale

Each capability runs the whole analysis of one subject from an empty cache in a process of its own, with
``ATEN_CPU_CAPABILITY`` (ATen's vectorised kernels) and ``ONEDNN_MAX_CPU_ISA`` (oneDNN's convolutions) set as
an older CPU would have them, or with the code path of a library that dispatches by vendor and model on its own:
``MKL_CBWR`` (MKL, PyTorch's BLAS and LAPACK: an AMD CPU gets another branch than an Intel one) or
``OPENBLAS_CORETYPE`` (numpy's OpenBLAS); ``default`` sets none of them: the machine's best. The child reports the
paths it ran (ATen's level from ``torch.backends.cpu.get_cpu_capability()``, MKL's branch as asked for,
OpenBLAS's kernels from threadpoolctl). The parent then compares every product stage by
stage against the first capability's: the simulated betas, each true and decoded feature (largest difference over
the feature's sd), the decoded captions, the decoded depth, the +G images, each method's generations (uint8:
share of pixels that differ, mean and largest difference in grey levels), each Table 1 cell and each claim's
interval on this subject. A stage whose inputs agree and whose outputs do not is where rounding is amplified.

CI cannot choose its CPU, so ``tests/test_cpu_capability.py`` runs this comparison on the smoke profile.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: What each name sets: ATen's dispatch level and oneDNN's instruction-set ceiling, or the code path of a library
#: that picks its own by vendor and microarchitecture (``default``: none of them, the machine's best).
CAPABILITIES = {
    "default": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "sse41": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},  # no wide vectors at all
    # MKL (PyTorch's BLAS and LAPACK) dispatches by CPU on its own; ATen's variables do not reach it. Its conditional
    # numerical reproducibility branches stand in for another vendor's CPU: AVX2 is what an AMD Zen or an older Intel
    # gets, COMPATIBLE (SSE2) the one branch Intel documents as the same on every x86 vendor
    "mkl-avx2": {"MKL_CBWR": "AVX2"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    # numpy's OpenBLAS picks its kernels by core type (the simulation's matrix products)
    "openblas-haswell": {"OPENBLAS_CORETYPE": "Haswell"},
}
#: variables a run inherits only from its capability; OPENBLAS_CORETYPE is not among them: where a machine sets it,
#: its OpenBLAS needs it to compute correctly, so a run changes it only when its capability names it
_CONTROLLED = {"ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR"}
FEATURES = ("z", "c", "blip", "dpt", "vgg")
GENERATIONS = (("[30]", "sd"), ("+T", "sd"), ("+T+G", "sd"), ("+T+G+D", "sd"), ("[30]", "sd2"))
#: ``--quick`` (the test's): the baseline's inputs and +G, and the two generations they feed; no evaluation
QUICK_FEATURES, QUICK_GENERATIONS = ("z", "c", "vgg"), (("[30]", "sd"), ("+T+G", "sd"))


def environment(capability: str) -> dict:
    """The process environment that runs ``capability``: the variables of every other level removed."""
    if capability not in CAPABILITIES:
        raise SystemExit(f"unknown capability {capability!r}; expected one of {', '.join(CAPABILITIES)}")
    env = {k: v for k, v in os.environ.items() if k not in _CONTROLLED}
    return env | CAPABILITIES[capability]


def code_paths() -> str:
    """The code paths this process runs: ATen's kernel level, MKL's branch as asked for, OpenBLAS's kernels."""
    import torch
    from threadpoolctl import threadpool_info

    openblas = next((i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"), "?")
    return (f"ATen {torch.backends.cpu.get_cpu_capability()}, MKL {os.environ.get('MKL_CBWR', 'default')}, "
            f"OpenBLAS {openblas}")


def compute(profile_name: str, subject: str, cache: Path, out: Path, n_boot: int, quick: bool = False) -> None:
    """The child: every product of ``subject`` in a fresh ``cache`` (``quick``: those of :data:`QUICK_FEATURES`
    and :data:`QUICK_GENERATIONS`), saved to ``out`` (npz + json)."""
    import torch

    from recon import book, claims, control
    from recon.experiment import Experiment

    torch.set_num_threads(int(os.environ.get("RECON_BENCH_THREADS", "2")))
    exp = book.start(profile_name, subject, cache_dir=cache)
    arrays, timings = {"test_betas": np.asarray(exp.data.test_betas)}, {}

    def timed(stage, fn):
        start = time.perf_counter()
        value = fn()
        timings[stage] = round(time.perf_counter() - start, 1)
        return value

    for target in QUICK_FEATURES if quick else FEATURES:
        arrays[f"features {target}"] = np.asarray(exp.stimulus_features(target), dtype=np.float32)
        arrays[f"decoded {target}"] = np.asarray(timed(f"decoded {target}", lambda t=target: exp.decoded(t))["predicted"],
                                                 dtype=np.float32)
    captions = timed("captions", lambda: exp.decoded_captions)
    if not quick:
        arrays["depth"] = np.asarray(timed("depth", lambda: exp.decoded_depth))
    arrays["+G images"] = np.asarray(timed("+G", lambda: exp.gan_images))
    for method, variant in QUICK_GENERATIONS if quick else GENERATIONS:
        arrays[f"generated {method} {variant}"] = np.asarray(
            timed(f"generate {method} {variant}", lambda m=method, v=variant: exp.reconstruct(m, v)))
    summary = {"capability": code_paths(), "captions": captions, "seconds": timings}
    np.savez(out.with_suffix(".npz"), **arrays)
    if quick:
        out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
        return
    scores = {f"{method} {variant}": timed(f"scores {method} {variant}", lambda m=method, v=variant: exp.scores(m, v))
              for method, variant in GENERATIONS}
    table = claims.judge({subject: exp}, control.overlap_ids(exp.profile), n_boot=n_boot, seed=exp.profile.seed)
    out.with_suffix(".json").write_text(json.dumps(summary | {
        "scores": scores, "claims": table.to_dict(orient="records")}, indent=1))


def _float_spread(a: np.ndarray, b: np.ndarray) -> dict:
    a, b = a.astype(np.float64), b.astype(np.float64)
    scale = float(a.std()) or 1.0
    return {"max |d| / sd": float(np.abs(a - b).max() / scale), "share differing": float((a != b).mean())}


def _image_spread(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"share of pixels differing": float((d > 0).mean()), "mean |d| (grey levels)": float(d.mean()),
            "max |d| (grey levels)": int(d.max())}


def compare(reference: Path, other: Path) -> dict:
    """Stage by stage, how ``other``'s products differ from ``reference``'s (see the module docstring)."""
    ref_arrays, new_arrays = np.load(reference.with_suffix(".npz")), np.load(other.with_suffix(".npz"))
    ref, new = json.loads(reference.with_suffix(".json").read_text()), json.loads(other.with_suffix(".json").read_text())
    stages = {}
    for name in ref_arrays.files:
        a, b = ref_arrays[name], new_arrays[name]
        stages[name] = _image_spread(a, b) if a.dtype == np.uint8 else _float_spread(a, b)
        if name == "+G images":
            stages["captions"] = {"differing": sum(x != y for x, y in zip(ref["captions"], new["captions"])),
                                  "of": len(ref["captions"])}
    result = {"capabilities": [ref["capability"], new["capability"]], "stages": stages}
    if "scores" not in ref:  # a quick run
        return result
    by_run = {run: max(abs(new["scores"][run][metric] - value) for metric, value in metrics.items())
              for run, metrics in ref["scores"].items()}
    ends = []
    for r, n in zip(ref["claims"], new["claims"]):
        ends += [abs(r["ci_low"] - n["ci_low"]), abs(r["ci_high"] - n["ci_high"])]
    verdicts = [f"{r['claim']} {r['metric']}: {r['verdict']} -> {n['verdict']}"
                for r, n in zip(ref["claims"], new["claims"]) if r["verdict"] != n["verdict"]]
    return result | {"Table 1 cells: largest |d| per run": by_run, "Table 1 cells: largest |d|": max(by_run.values()),
                     "claim interval ends: largest |d|": max(ends), "verdicts changed": verdicts}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--subject", default="subj01")
    parser.add_argument("--capabilities", nargs="+", default=["default", "avx2"],
                        help=f"compared with the first; from {', '.join(CAPABILITIES)} (default: %(default)s)")
    parser.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples of each claim's interval")
    parser.add_argument("--quick", action="store_true", help="only the inputs of [30] and +T+G, +G and those two "
                        "generations, without evaluation (what the test runs)")
    parser.add_argument("--work", type=Path, help="keep each run's cache and products here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="write the comparison as JSON here")
    parser.add_argument("--child", nargs=2, metavar=("CACHE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        compute(args.profile, args.subject, Path(args.child[0]), Path(args.child[1]), args.n_boot, args.quick)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        runs = []
        for i, capability in enumerate(args.capabilities):
            run = work / f"{i}-{capability}"
            start = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--profile", args.profile, "--subject", args.subject,
                            "--n-boot", str(args.n_boot), *(["--quick"] if args.quick else []), "--child", str(run / "cache"), str(run / "products")],
                           env=environment(capability), check=True)
            print(f"{capability}: {time.perf_counter() - start:.0f} s", flush=True)
            runs.append(run / "products")
        result = {"profile": args.profile, "subject": args.subject,
                  "comparisons": {f"{args.capabilities[0]} vs {c} ({i})": compare(runs[0], run)
                                  for i, (c, run) in enumerate(zip(args.capabilities[1:], runs[1:]), start=1)}}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
