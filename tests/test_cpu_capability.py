"""The pipeline is not chaotic: another CPU kernel set moves its products by rounding, not by more.

CI cannot choose its CPU, so this runs the smoke profile's baseline inputs, +G and the two generations
they feed under two kernel sets of the machine it runs on (benchmarks/cpu_capability.py ``--quick``):
the machine's best against AVX2 where the best is AVX512, else against no wide vectors at all. +G in
float32 made the +G images of the two sets differ in 77% of their pixels on the toy profile and
flipped a claim's verdict; here they may differ only where a value sits on uint8's rounding boundary.
"""

import importlib.util
import json
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


def test_another_kernel_set_moves_the_products_by_rounding_only(tmp_path, monkeypatch):
    best = _best_capability()
    if best not in {"AVX2", "AVX512"}:
        pytest.skip(f"PyTorch runs {best} kernels here; the comparison needs an x86 CPU with AVX2")
    other = "avx2" if best == "AVX512" else "sse41"
    out = tmp_path / "spread.json"
    cpu_capability = _module()
    monkeypatch.setenv("RECON_BENCH_THREADS", "1")  # one thread per child process, as in every test
    assert cpu_capability.main(["--profile", "smoke", "--quick", "--capabilities", "default", other,
                                "--work", str(tmp_path), "--out", str(out)]) == 0
    (comparison,) = json.loads(out.read_text())["comparisons"].values()
    ran = comparison["capabilities"]
    assert ran[0] != ran[1], f"both runs used {ran[0]} kernels: the environment variables did not take"
    stages = comparison["stages"]
    assert stages["test_betas"]["share differing"] == 0  # the simulation is numpy's: the same everywhere
    # float64 +G: on the toy profile one pixel in 1.2 million moved, by one grey level (a value on a rounding
    # boundary of uint8); float32 +G moved 0.23% of these images' pixels after only the smoke profile's 3 steps
    assert stages["+G images"]["share of pixels differing"] < 1e-4, stages["+G images"]
    assert stages["+G images"]["max |d| (grey levels)"] <= 1, stages["+G images"]
    assert stages["captions"]["differing"] == 0
    for name in ("generated [30] sd", "generated +T+G sd"):
        # the generations round differently in a few pixels by a grey level or two, no more
        assert stages[name]["share of pixels differing"] < 0.01, (name, stages[name])
        assert stages[name]["max |d| (grey levels)"] <= 4, (name, stages[name])
