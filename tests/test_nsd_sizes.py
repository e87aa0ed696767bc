"""recon.nsd_sizes at NSD's shapes: the chunk index it estimates, as h5py writes one at subj01's grid; the figure
benchmarks/nsd_scale.py reports. (At a small tree's shapes, against the sizes a dry run reads from test servers:
tests/test_nsd_fetch.py.)"""

import importlib.util
import math
import sys

import h5py
import numpy as np
import pytest

from recon import nsd_sizes, sphinx_substitutions
from recon.config import REPO_ROOT, ConfigError


def nsd_scale():
    spec = importlib.util.spec_from_file_location("nsd_scale", REPO_ROOT / "benchmarks" / "nsd_scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_chunk_index_estimate_holds_at_subj01s_grid(tmp_path):
    """NSD's betas are chunked one voxel a chunk: the index of 699,192 chunks is what the model adds to the array.
    One trial instead of 750 gives the same chunks and keys (the file is 55 MB, not 1.1 GB)."""
    x, y, z = nsd_sizes.NSD_GRIDS["subj01"]
    path = tmp_path / "betas.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("betas", data=np.ones((1, z, y, x), np.int16), chunks=(1, 1, 1, 1))
    n_chunks = x * y * z
    index = path.stat().st_size - n_chunks * 2 - nsd_sizes.HDF5_HEADER_BYTES
    assert abs(index / n_chunks - nsd_sizes.CHUNK_INDEX_BYTES) <= 5, index / n_chunks


def test_nsd_subj01_is_its_betas_and_stimuli_at_their_published_shapes():
    files = nsd_sizes.subject_files(nsd_sizes.NSD, "subj01", 37)
    betas = [size for path, size in files.items() if "betas_session" in path]
    array = 750 * 83 * 104 * 81 * 2  # int16 (trials, Z, Y, X)
    assert betas == [array + nsd_sizes.HDF5_HEADER_BYTES + 83 * 104 * 81 * nsd_sizes.CHUNK_INDEX_BYTES] * 37
    stimuli = files["nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"]
    assert stimuli == 73_000 * 425 * 425 * 3 + nsd_sizes.HDF5_HEADER_BYTES
    other = sum(files.values()) - sum(betas) - stimuli
    assert 0 < other < 0.002 * sum(files.values())  # the small files' estimates barely move the total
    assert sum(nsd_sizes.breakdown(nsd_sizes.NSD, "subj01", 37).values()) == sum(files.values())
    assert round(sum(files.values()) / nsd_sizes.GB, 1) == 80.5
    # shared files are counted once across subjects
    two = nsd_sizes.tree_bytes(nsd_sizes.NSD, ["subj01", "subj02"], 37)
    assert two == sum(files.values()) + sum(nsd_sizes.subject_files(nsd_sizes.NSD, "subj02", 37).values()) - (
        stimuli + sum(nsd_sizes.NSD_SMALL_FILES.values()) - nsd_sizes.NSD_SMALL_FILES["behaviour"])
    with pytest.raises(ConfigError, match="n_sessions must be in 1..40 for subj01, got 41"):
        nsd_sizes.subject_files(nsd_sizes.NSD, "subj01", 41)


def test_nsd_scale_reports_the_models_figure_apart_from_the_cache_disk():
    scale = nsd_scale()
    dataset = scale.dataset_figures()
    modelled = nsd_sizes.tree_bytes(nsd_sizes.NSD, [scale.SUBJECT], scale.N_SESSIONS)
    assert (dataset["subject"], dataset["sessions"]) == ("subj01", 37)
    assert dataset["gb"] == round(modelled / nsd_sizes.GB, 1)
    assert f"{dataset['gb']:.1f}" == sphinx_substitutions.nsd_tree_facts()["nsd_tree_gb"]  # the README's figure
    assert math.isclose(sum(dataset["files_gb"].values()), modelled / nsd_sizes.GB, abs_tol=0.01)
    lines = scale.dataset_lines(dataset, cache_disk_gb=56.0)
    assert lines[0].startswith(f"dataset: subj01 {dataset['gb']:.1f} GB (37 sessions; at RECON_NSD_ROOT, not on the "
                               "64 GB cache disk;")
    assert "they do not fit one 64 GB disk (the tree alone does not)" in lines[-1]
    assert scale.one_disk(10.0, 50.0) == "they fit one 64 GB disk"
    assert scale.one_disk(20.0, 50.0) == "they do not fit one 64 GB disk: keep the tree on another volume"
