"""The pipeline is not chaotic: another CPU's code paths move its products by rounding, not by more.

CI cannot choose its CPU, so this runs the smoke profile's baseline inputs, +G and the two generations
they feed under several code paths of the machine it runs on (benchmarks/cpu_capability.py ``--quick``):
ATen's and oneDNN's kernels (the machine's best against AVX2 where the best is AVX512, else against no
wide vectors at all), MKL's branch (COMPATIBLE, the SSE2 path, against the one MKL picks for this CPU, as
an AMD and an Intel CPU pick different ones) and, where the machine leaves it to OpenBLAS, numpy's
OpenBLAS kernels. +G in float32 made the +G images of two kernel sets differ in 77% of their pixels on the
toy profile and flipped a claim's verdict; float32 decoders let MKL's branch move the decoded VGG19
features and so every +G image (on an AMD EPYC, Table 1's +G rows by up to 0.013). Here the +G images
may differ only where a value sits on uint8's rounding boundary, and not at all between MKL's branches.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "cpu_capability.py"


def _module():
    spec = importlib.util.spec_from_file_location("cpu_capability", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best_capability() -> str:
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return subprocess.run([sys.executable, "-c", probe], env=_module().environment("default"), check=True,
                          capture_output=True, text=True).stdout.strip()


def _openblas_architecture() -> str:
    probe = ("import numpy; from threadpoolctl import threadpool_info; numpy.ones(2) @ numpy.ones(2); "
             "print(next((i.get('architecture') for i in threadpool_info() if i.get('internal_api') == 'openblas'), ''))")
    return subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()


def test_other_code_paths_move_the_products_by_rounding_only(tmp_path, monkeypatch):
    best = _best_capability()
    if best not in {"AVX2", "AVX512"}:
        pytest.skip(f"PyTorch runs {best} kernels here; the comparison needs an x86 CPU with AVX2")
    other = "avx2" if best == "AVX512" else "sse41"
    paths = ["default", other, "mkl-compatible"]
    # a machine that sets OPENBLAS_CORETYPE needs it (older OpenBLAS builds miscompute there): left alone
    if "OPENBLAS_CORETYPE" not in os.environ and _openblas_architecture() not in {"", "Haswell"}:
        paths.append("openblas-haswell")
    out = tmp_path / "spread.json"
    cpu_capability = _module()
    monkeypatch.setenv("RECON_BENCH_THREADS", "1")  # one thread per child process, as in every test
    assert cpu_capability.main(["--profile", "smoke", "--quick", "--capabilities", *paths,
                                "--work", str(tmp_path), "--out", str(out)]) == 0
    comparisons = list(json.loads(out.read_text())["comparisons"].values())
    for path, comparison in zip(paths[1:], comparisons):
        ran = comparison["capabilities"]
        assert ran[0] != ran[1], f"both runs used {ran[0]}: the environment variables of {path} did not take"
        stages = comparison["stages"]
        assert stages["test_betas"]["share differing"] == 0  # the simulation: the same everywhere
        assert stages["captions"]["differing"] == 0, (path, stages["captions"])
        if path == "mkl-compatible":
            # float64 decoders, rounded once to float16: MKL's branch leaves the decoded VGG19 features, and so the
            # +G images, unchanged (float32 decoders: 0.45% of the decoded values and 0.8% of +G's pixels moved)
            assert stages["decoded vgg"]["share differing"] == 0, stages["decoded vgg"]
            assert stages["+G images"]["share of pixels differing"] == 0, stages["+G images"]
        # float64 +G: on the toy profile one pixel in 1.2 million moved, by one grey level (a value on a rounding
        # boundary of uint8); float32 +G moved 0.23% of these images' pixels after only the smoke profile's 3 steps
        assert stages["+G images"]["share of pixels differing"] < 1e-4, (path, stages["+G images"])
        assert stages["+G images"]["max |d| (grey levels)"] <= 1, (path, stages["+G images"])
        for name in ("generated [30] sd", "generated +T+G sd"):
            # the generations round differently in a few pixels by a grey level or two, no more
            assert stages[name]["share of pixels differing"] < 0.01, (path, name, stages[name])
            assert stages[name]["max |d| (grey levels)"] <= 4, (path, name, stages[name])
