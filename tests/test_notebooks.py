"""The book's notebooks: jupytext pairs in sync, papermill parameters, the bad-subject error."""

import shutil

import jupytext
import papermill
import pytest

from recon import notebooks
from recon.config import REPO_ROOT

SECTIONS = ["baseline", "captions", "gan", "depth", "control", "table1"]
PARAMETERS = {"subject", "profile", "n_samples", "seed", "device"}


def test_every_pair_is_in_sync():
    assert notebooks.out_of_sync() == []
    assert {ipynb.stem for ipynb, _ in notebooks.pairs()} >= set(SECTIONS) | {"simulated_nsd"}


def test_an_edited_text_twin_is_detected(tmp_path):
    for ipynb, text in notebooks.pairs():
        shutil.copy(ipynb, tmp_path)
        shutil.copy(text, tmp_path)
    edited = tmp_path / "depth.py"
    edited.write_text(edited.read_text().replace("n_samples = 5", "n_samples = 3"))
    assert notebooks.out_of_sync(tmp_path) == ["depth.ipynb"]
    (tmp_path / "gan.py").unlink()
    with pytest.raises(FileNotFoundError, match="gan"):
        notebooks.pairs(tmp_path)


@pytest.mark.parametrize("section", SECTIONS)
def test_parameters_cell(section):
    nb = jupytext.read(REPO_ROOT / "notebooks" / f"{section}.ipynb")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = {line.split("=")[0].strip() for line in tagged[0].source.splitlines() if "=" in line}
    assert PARAMETERS <= names


def test_bad_subject_fails_at_once_listing_valid_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("RECON_CACHE", str(tmp_path / "cache"))
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        papermill.execute_notebook(REPO_ROOT / "notebooks" / "depth.ipynb", tmp_path / "out.ipynb",
                                   parameters={"subject": "subj03"}, kernel_name="python3", progress_bar=False,
                                   cwd=REPO_ROOT)
    assert "subj03" in str(failure.value) and "subj01, subj02, subj05, subj07" in str(failure.value)
    assert not (tmp_path / "cache").exists()  # failed before simulating or computing anything


# A section run for an injected subject (papermill -p subject subj07) is tested on a cache the
# workflow filled: tests/test_workflow.py::test_the_depth_section_reads_the_warm_cache_without_computing.
