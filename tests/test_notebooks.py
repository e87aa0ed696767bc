"""The book's notebooks: jupytext pairs in sync, papermill parameters, the bad-subject error."""

import shutil

import jupytext
import nbformat
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


def test_papermill_runs_a_section_for_an_injected_subject(tmp_path, monkeypatch):
    """The depth section end to end on the smoke profile (a tiny simulated NSD) for subj07."""
    monkeypatch.setenv("RECON_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "depth-subj07.ipynb"
    papermill.execute_notebook(REPO_ROOT / "notebooks" / "depth.ipynb", out,
                               parameters={"subject": "subj07", "profile": "smoke", "n_samples": 2},
                               kernel_name="python3", progress_bar=False, cwd=REPO_ROOT)
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'subject = "subj07"' in injected[0].source
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "cache" / "smoke-nsd").is_dir()  # the data came from the smoke profile's own tree
