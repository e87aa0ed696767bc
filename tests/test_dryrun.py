"""The nsd dry run (benchmarks/nsd_dryrun.py) on tiny configurations of the same classes.

The full-size run takes tens of minutes on a CPU and is no test; this keeps its stage runner
working as the package's signatures change: every stage of every method, through the Hub-like
folder layout, the manifest check in ``recon.models`` and the ``nsd`` profile. Torch runs on one
thread here, as in every test (conftest's ``single_threaded``).
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from recon.config import METHODS

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "nsd_dryrun.py"


@pytest.fixture(scope="module")
def dryrun():
    spec = importlib.util.spec_from_file_location("nsd_dryrun", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through their module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("dryrun")


def test_every_stage_runs_on_tiny_configs(dryrun, workdir, capsys, monkeypatch):
    """... by the book's own recipes (recon.recipes), each called for the decoded and the true inputs."""
    from recon import recipes

    called = []
    for name in ("ridge_decode", "captions", "depth", "gan_images", "reconstruct"):
        def recorded(*args, _name=name, _recipe=getattr(recipes, name), **kwargs):
            called.append(_name if _name != "reconstruct" else f"reconstruct {args[1]}")
            return _recipe(*args, **kwargs)

        monkeypatch.setattr(recipes, name, recorded)
    out = workdir / "report.json"
    assert dryrun.main(["--tiny", "--workdir", str(workdir), "--out", str(out)]) == 0
    assert called[:6] == ["ridge_decode"] * 6  # one decoder per target: z, c, c_sd2, blip, dpt, vgg
    expected = ["captions", "depth", "gan_images"] + [f"reconstruct {m}" for m in METHODS]
    assert called[6:] == expected * 2  # decoded, then the oracle's true inputs
    report = json.loads(out.read_text())
    rows = {row["stage"]: row for row in report["stages"]}
    assert len(rows) == len(report["stages"])  # stage names are unique
    for method in METHODS:
        assert any(stage.startswith(f"generate {method} (") for stage in rows), method
        assert f"identification {method}" in rows
        assert any(stage.startswith(f"oracle generate {method} (") for stage in rows), method  # true inputs
        assert f"identification oracle {method}" in rows
    assert {"true captions (BLIP generate)", "true depth (DPT neck + head)"} <= set(rows)
    # each timed stage names the product of recon.stages.STAGES it makes: every product but the dataset (random
    # inputs here) and the swaps (the oracle's recipe with fewer true inputs)
    from recon.stages import STAGES
    timed = {row["product"] for row in report["stages"]}
    assert timed - {None} == set(STAGES) - {"dataset", "swap"}, timed
    assert all(0 <= v <= 1 for scores in report["oracle scores"].values() for v in scores.values())
    assert rows["features DPT hidden states"]["output"] == "(2, 4, 17, 16) float32"  # 1 + 4 x 4 tokens
    # the profile's feature dtypes: float32 as the authors' features, DPT's float16 (its float32 would not fit the disk)
    assert rows["decode dpt (ridge)"]["output"] == "(2, 4, 17, 16) float16"
    assert rows["decode z (ridge)"]["output"].endswith(" float32")
    assert rows["generate +T+G+D (depth2img)"]["output"] == "(2, 2, 64, 64, 3) uint8"
    assert rows["generate text-to-image (SD 1.4, seen images' captions)"]["output"] == "(2, 2, 64, 64, 3) uint8"
    assert all(row["seconds"] >= 0 for row in report["stages"])
    assert all(0 <= v <= 1 for scores in report["scores"].values() for v in scores.values())
    assert len(report["captions"]) == 2 and all(isinstance(c, str) for c in report["captions"])
    assert report["meta"]["denoising_steps"] >= 1
    # +G as the nsd profile's default: the authors' relu7 generator and Caffe VGG19 (recon.kamitani), random
    # weights saved as the Kamitani lab cookbook's files (full size even in a tiny run: bdpy's architectures are
    # fixed), the decoded maps rescaled by bdpy's formula with the file's feat_std0
    assert report["meta"]["generator"] == "authors" and report["meta"]["generator_size"] == 224
    assert rows["load VGG19"]["output"] == "143.7 M params"  # bdpy's VGG19, fc layers included
    # the authors' eight layers, their conv maps pooled to 14 x 14 as the nsd profile stores them
    assert rows["features VGG19"]["output"] == f"(2, {196 * (64 + 128 + 256 + 512 + 512) + 4096 * 2 + 1000}) float32"
    assert rows["+G feature matching (authors, 2 steps)"]["output"] == "(2, 64, 64, 3) uint8"
    printed = capsys.readouterr().out
    assert printed.strip().endswith(f"dryrun: all {len(rows)} stages passed on cpu float32")


def test_a_failing_stage_is_named(dryrun, workdir, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(dryrun.features, "vae_latents", broken)
    assert dryrun.main(["--tiny", "--workdir", str(workdir)]) == 1  # reuses the folders of the test above
    printed = capsys.readouterr().out
    assert "dryrun: stage 'features z (VAE encoder)' failed on cpu float32: RuntimeError: out of memory" in printed


def test_nan_outputs_fail_their_stage(dryrun):
    stages = dryrun.Stages(echo=False)
    with pytest.raises(dryrun.StageFailed) as failed:
        stages.run("depth", "depth", lambda: np.array([0.0, np.nan], dtype=np.float32))
    assert failed.value.stage == "depth" and isinstance(failed.value.__cause__, FloatingPointError)
    with pytest.raises(dryrun.StageFailed) as failed:  # NaN cast to uint8 images: numpy only warns
        stages.run("reconstruct", "generate", lambda: np.array([np.nan], dtype=np.float32).astype(np.uint8))
    assert isinstance(failed.value.__cause__, RuntimeWarning)


def test_steps_must_denoise(dryrun):
    with pytest.raises(SystemExit):
        dryrun.parse_args(["--steps", "1", "--strength", "0.5"])


def test_the_pixel_generator_runs_when_named(dryrun, tmp_path):
    """--generator pixels, for a run without the cookbook's files: the pixel generator and the profile's own VGG19
    (the tiny run's narrowed one), no cookbook written."""
    out = tmp_path / "report.json"
    assert dryrun.main(["--tiny", "--generator", "pixels", "--workdir", str(tmp_path), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {row["stage"]: row for row in report["stages"]}
    assert report["meta"]["generator"] == "pixels" and report["meta"]["generator_size"] == 64
    assert rows["+G feature matching (pixels, 2 steps)"]["output"] == "(2, 64, 64, 3) uint8"
    assert not (tmp_path / "models" / dryrun.COOKBOOK).exists()
