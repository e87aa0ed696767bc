"""The simulated NSD: the official layout read by the one reader, determinism, and what the brain carries."""

import hashlib

import numpy as np
import pytest

from recon.config import STREAMS_ROIS, SUBJECTS
from recon.nsd import NSDReader
from recon.probe import roi_probe
from recon.simulate import SimulationConfig, simulate_nsd

SMALL = SimulationConfig(n_shared=10, n_train=40, trials_per_session=50, image_size=32)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    return simulate_nsd(tmp_path_factory.mktemp("sim") / "nsd", SMALL, progress=False)


def test_tree_is_read_by_the_nsd_reader(small_tree):
    reader = NSDReader(small_tree, SMALL.trials_per_session)
    voxels = {}
    for subject in SUBJECTS:
        data = reader.load_subject(subject, STREAMS_ROIS, SMALL.n_sessions)
        assert len(data.test_ids) == SMALL.n_shared and set(data.test_repeats) == {SMALL.repetitions}
        assert len(data.train_ids) == SMALL.n_train * SMALL.repetitions
        assert not np.isin(data.train_ids, data.test_ids).any()
        voxels[subject] = data.train_betas.shape[1]
    assert len(set(voxels.values())) == len(SUBJECTS)  # each subject has its own voxel count
    images = reader.images(reader.load_subject("subj01", ["early"], SMALL.n_sessions).test_ids)
    assert images.shape == (SMALL.n_shared, 32, 32, 3) and images.dtype == np.uint8
    assert all(len(c) == 5 for c in reader.captions(np.arange(5)))


def test_same_seed_same_bytes_other_seed_other_data(small_tree, tmp_path):
    again = simulate_nsd(tmp_path / "again", SMALL, progress=False)
    other = simulate_nsd(tmp_path / "other", SimulationConfig(**{**SMALL.__dict__, "seed": 1}), progress=False)
    betas = "nsddata_betas/ppdata/subj05/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.nii.gz"
    stimuli = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
    a = NSDReader(small_tree, 50).load_subject("subj05", ["early"], SMALL.n_sessions).train_betas
    b = NSDReader(again, 50).load_subject("subj05", ["early"], SMALL.n_sessions).train_betas
    np.testing.assert_array_equal(a, b)
    assert NSDReader(small_tree, 50).images([0, 1]).tobytes() == NSDReader(again, 50).images([0, 1]).tobytes()
    assert _digest(small_tree / betas) != _digest(other / betas)
    assert NSDReader(small_tree, 50).images([0]).tobytes() != NSDReader(other, 50).images([0]).tobytes()
    assert (small_tree / stimuli).is_file()


def test_an_existing_tree_of_another_configuration_is_refused(small_tree):
    with pytest.raises(FileExistsError, match="another configuration"):
        simulate_nsd(small_tree, SimulationConfig(**{**SMALL.__dict__, "seed": 5}), progress=False)


@pytest.fixture(scope="module")
def probe_table(tmp_path_factory):
    config = SimulationConfig(n_shared=60, n_train=600, trials_per_session=330, image_size=32)
    root = simulate_nsd(tmp_path_factory.mktemp("sim_probe") / "nsd", config, progress=False)
    reader = NSDReader(root, config.trials_per_session)
    data = reader.load_subject("subj01", ("early", "ventral"), config.n_sessions)
    return roi_probe(reader, data)


def test_early_voxels_carry_low_level_features_better_than_ventral(probe_table):
    low = probe_table["low-level (8x8 colour maps)"]
    assert low["early"] > low["ventral"] + 0.05, probe_table


def test_ventral_voxels_carry_caption_semantics_better_than_early(probe_table):
    semantic = probe_table["semantic (shape and colour words)"]
    assert semantic["ventral"] > semantic["early"] + 0.05, probe_table
