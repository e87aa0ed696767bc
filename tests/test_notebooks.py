"""The book's notebooks: jupytext pairs in sync, papermill parameters, the bad-subject error."""

import shutil

import jupytext
import papermill
import pytest

from recon import notebooks
from recon.config import REPO_ROOT, ConfigError

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


def test_a_parameter_the_notebook_does_not_take_fails_naming_it(tmp_path, monkeypatch):
    """papermill only warns "Passed unknown parameter" and ran the section with its defaults."""
    monkeypatch.setenv("RECON_CACHE", str(tmp_path / "cache"))
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        papermill.execute_notebook(REPO_ROOT / "notebooks" / "depth.ipynb", tmp_path / "out.ipynb",
                                   parameters={"subject": "subj07", "strength": 2}, kernel_name="python3",
                                   progress_bar=False, cwd=REPO_ROOT)
    assert "unknown parameter 'strength': this notebook takes subject, profile, n_samples, seed, device, " \
           "n_sessions" in str(failure.value)
    assert not (tmp_path / "cache").exists()


def test_injected_parameters_are_checked_against_the_parameters_cell():
    from recon.book import check_injected_parameters

    defaults = 'subject = "subj01"\nn_samples: int = 5\n'
    check_injected_parameters(["", defaults, '# Parameters\nsubject = "subj07"\n', "x = 1"])  # known: fine
    check_injected_parameters(["", defaults, "strength = 2"])  # not papermill's cell: the notebook's own
    with pytest.raises(ConfigError, match=r"unknown parameters 'strength', 'steps': this notebook takes subject, "
                                          r"n_samples"):
        check_injected_parameters(["", defaults, "# Parameters\nstrength = 2\nsubject = 'subj02'\nsteps = 3\n"])


def test_a_section_computes_on_the_profiles_threads(tmp_path):
    """Everything a notebook computes, in the cache or not (the probes, the zoo's checks), on the toy's one thread:
    with 2 BLAS threads on 2 busy cores those sections ran 11 times slower."""
    import subprocess
    import sys

    code = ("import torch, threadpoolctl\nfrom recon import book\n"
            f"book.start('toy', 'subj01', cache_dir={str(tmp_path)!r})\n"
            "print(torch.get_num_threads(), sorted({p['num_threads'] for p in threadpoolctl.threadpool_info()}))")
    env = {k: v for k, v in __import__("os").environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "1 [1]"
