"""Committed result tables: written atomically, and any changed number found by `check`."""

import json
import os
import subprocess

import pandas as pd
import pytest

from recon import results
from recon.profiles import get_profile


def _table(value=0.5):
    return pd.DataFrame({"subject": ["subj01", "subj02"], "method": ["[30]", "+T"], "CLIP(Late)": [value, 0.75]})


def test_write_goes_to_the_profiles_results_dir_and_smoke_writes_nothing(tmp_path):
    profile = get_profile("toy", results_dir=tmp_path / "toy")
    path = results.write(_table(), profile, "table1")
    assert path == tmp_path / "toy" / "table1.csv"
    assert pd.read_csv(path).equals(_table())
    assert not list((tmp_path / "toy").glob(".*"))  # no partial file left behind
    assert get_profile("smoke").results_dir is None
    assert results.write(_table(), get_profile("smoke"), "table1") is None


def test_differences_name_the_row_column_and_values():
    assert results.differences(_table(), _table(0.5 + 5e-7)) == []
    found = results.differences(_table(), _table(0.52), label="t.csv")
    assert found == ["t.csv: row 0 (subject=subj01, method=[30]), CLIP(Late): 0.52, committed 0.5"]
    changed = _table()
    changed.loc[1, "method"] = "+T+G"
    assert "method" in results.differences(_table(), changed)[0]
    assert "rows" in results.differences(_table(), _table().iloc[:1])[0]
    assert "columns" in results.differences(_table(), _table().rename(columns={"CLIP(Late)": "x"}))[0]


@pytest.fixture
def repo(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    folder = tmp_path / "results" / "toy"
    folder.mkdir(parents=True)
    _table().to_csv(folder / "table1.csv", index=False)
    git("add", ".")
    git("commit", "-qm", "tables")
    return tmp_path, folder


def test_check_against_the_committed_tables(repo):
    root, folder = repo
    assert results.check(folder, repo=root) == []
    _table(0.51).to_csv(folder / "table1.csv", index=False)
    assert "CLIP(Late): 0.51, committed 0.5" in results.check(folder, repo=root)[0]
    _table().to_csv(folder / "claims.csv", index=False)
    (folder / "table1.csv").unlink()
    found = results.check(folder, repo=root)
    assert any("table1.csv: committed at HEAD but not written" in line for line in found)
    assert any("claims.csv: written by this build but not committed" in line for line in found)


def test_zoo_quality_frame_flattens_every_number():
    manifest = {"models": {"clip": {"quality": {"judge_on_true_images": {"colour": 1.0, "shape": 0.4}, "candidates": 300}},
                           "dpt": {"quality": {"mean_pixel_r": 0.98, "example": "text is skipped"}}, "vae": {}}}
    frame = results.zoo_quality_frame(manifest)
    assert frame.values.tolist() == [["clip", "candidates", 300.0], ["clip", "judge_on_true_images.colour", 1.0],
                                     ["clip", "judge_on_true_images.shape", 0.4], ["dpt", "mean_pixel_r", 0.98]]


def test_environment_names_the_cpu_kernels_threads_and_libraries(tmp_path):
    found = results.environment()
    assert found["torch_cpu_capability"] and found["torch_threads"] >= 1 and found["cpu"]
    assert found["torch version"] and {"numpy version", "diffusers version", "himalaya version"} <= set(found)
    assert found["mkl_branch"] == (os.environ.get("MKL_CBWR") or "default")
    toy = get_profile("toy", results_dir=tmp_path / "toy")
    path = results.write_environment(toy)
    assert path == tmp_path / "toy" / results.ENVIRONMENT
    # the toy's arithmetic is recorded beside the machine's: float64 decoders and +G on a grid, one thread
    assert json.loads(path.read_text()) == found | {"decoder_dtype": "float64", "generator_dtype": "float64",
                                                    "generator_code_quantum": 2.0**-16, "compute_threads": 1}
    assert results.write_environment(get_profile("smoke")) is None


def test_check_allows_the_other_environment_tolerance_only_where_the_environment_changed(repo, monkeypatch, capsys):
    root, folder = repo
    monkeypatch.setattr(results, "REPO_ROOT", root)
    committed = results.environment() | {"cpu": "AuthenticAMD 25 1"}
    (folder / results.ENVIRONMENT).write_text(json.dumps(committed))
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "environment"], cwd=root, check=True)
    assert results.environment_changes(folder, repo=root) == []  # the committed file, unchanged
    _table(0.5 + 0.0005).to_csv(folder / "table1.csv", index=False)
    assert results.main(["check"]) == 1  # same environment: 1e-6
    (folder / results.ENVIRONMENT).write_text(json.dumps(committed | {"cpu": "AuthenticAMD 25 17"}))
    assert results.environment_changes(folder, repo=root) == ["cpu: AuthenticAMD 25 17, committed AuthenticAMD 25 1"]
    assert results.main(["check"]) == 0
    assert "environment differs" in capsys.readouterr().out
    _table(0.5 + 0.002).to_csv(folder / "table1.csv", index=False)  # e.g. float32 +G: up to 0.011
    assert results.main(["check"]) == 1  # beyond what another environment explains
    assert results.main(["check", "--tolerance", "0.02"]) == 0


def test_another_environment_may_move_a_verdict_only_across_the_edge_its_interval_lies_within_tolerance_of():
    """On another CPU the interval ends may move by the tolerance, so a verdict whose end lies that close to the
    edge of the borderline band may change; a verdict whose interval lies far from every edge may not."""
    committed = pd.DataFrame([
        dict(claim="+D raises CLIP(Late)", subject="subj05", metric="CLIP(Late)", difference=-0.04,
             ci_low=-0.09, ci_high=0.0011, verdict="not reproduced"),  # 1e-4 outside the band of 0.001
        dict(claim="+T > [30]", subject="subj01", metric="CLIP(Late)", difference=-0.1,
             ci_low=-0.17, ci_high=-0.04, verdict="reversed"),
    ])
    near_edge = committed.assign(verdict=["borderline", "reversed"])
    far_from_edges = committed.assign(verdict=["not reproduced", "borderline"])
    assert results.differences(committed, near_edge, results.OTHER_ENVIRONMENT_TOLERANCE) == []
    assert len(results.differences(committed, near_edge, results.TOLERANCE)) == 1  # same environment: exact
    (found,) = results.differences(committed, far_from_edges, results.OTHER_ENVIRONMENT_TOLERANCE)
    assert "verdict: borderline, committed reversed" in found
