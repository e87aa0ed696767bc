"""Per-stage digests name the first stage whose product differs while its inputs agree."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from recon import results, stage_digests
from recon.cache import Cache
from recon.experiment import Experiment
from recon.profiles import get_profile


@pytest.fixture(scope="module")
def smoke_digests(tmp_path_factory):
    exp = Experiment(get_profile("smoke", cache_dir=tmp_path_factory.mktemp("cache")), "subj01", progress=False)
    exp.decoded("z")  # and, through it, the test images' z features
    return exp, stage_digests.stage_digests(exp)


def test_digests_cover_the_computed_stages_in_the_graphs_order(smoke_digests):
    exp, found = smoke_digests
    assert list(found) == ["dataset", "features z subj01", "decoded z subj01"]  # nothing else is computed
    assert found["decoded z subj01"]["needs"] == ["features z subj01"]
    assert found["features z subj01"]["needs"] == ["dataset"]
    assert found == stage_digests.stage_digests(exp)  # the same bytes, the same digests
    entry = exp.entry_path("decoded", "z")
    assert found["decoded z subj01"]["digest"] == stage_digests.entry_digest(entry)


def test_entry_digest_follows_the_bytes_and_is_none_for_a_missing_entry(tmp_path):
    cache = Cache(tmp_path)
    cache.save(tmp_path / "a", {"x": np.arange(4.0)})
    cache.save(tmp_path / "b", {"x": np.arange(4.0)})
    cache.save(tmp_path / "c", {"x": np.arange(4.0) + 1e-12})
    digest = stage_digests.entry_digest
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    assert digest(tmp_path / "missing") is None


def _other(found, *changed):
    return {name: entry | ({"digest": "other"} if name in changed else {}) for name, entry in found.items()}


def test_the_first_differing_stage_is_the_one_whose_inputs_agree(smoke_digests):
    _, found = smoke_digests
    assert stage_digests.first_differences(found, found) == []
    # the decoder's arithmetic differs: its product and all below it move, its features do not
    assert stage_digests.first_differences(found, _other(found, "decoded z subj01")) == [
        "decoded z subj01 (its inputs agree: features z subj01)"]
    # the features differ: the decoder inherits it, so only the features are named
    assert stage_digests.first_differences(found, _other(found, "features z subj01", "decoded z subj01")) == [
        "features z subj01 (its inputs agree: dataset)"]
    lines = stage_digests.describe(found, _other(found, "features z subj01", "decoded z subj01"))
    assert lines[0].startswith("stages.json: 2 of 3 stages' products differ")


def test_check_names_the_first_differing_stage(smoke_digests, tmp_path, monkeypatch, capsys):
    _, found = smoke_digests
    folder = tmp_path / "results" / "toy"
    folder.mkdir(parents=True)
    table = pd.DataFrame({"subject": ["subj01"], "method": ["+T+G"], "CLIP(Late)": [0.5]})
    table.to_csv(folder / "table1.csv", index=False)
    (folder / stage_digests.FILENAME).write_text(json.dumps({"subject": "subj01", "stages": found}))
    for args in (["init", "-q"], ["add", "."], ["-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm", "t"]):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.setattr(results, "REPO_ROOT", tmp_path)
    assert results.main(["check"]) == 0
    table.assign(**{"CLIP(Late)": 0.51}).to_csv(folder / "table1.csv", index=False)
    (folder / stage_digests.FILENAME).write_text(json.dumps({"subject": "subj01",
                                                             "stages": _other(found, "decoded z subj01")}))
    assert results.main(["check"]) == 1
    err = capsys.readouterr().err
    assert "CLIP(Late): 0.51, committed 0.5" in err
    assert "decoded z subj01 (its inputs agree: features z subj01)" in err
