"""The simulated tree read the way the NSD community reads NSD, knowing only NSD's data manual.

The reader below is written for these tests from NSD's documentation, the way ``NSDAccess`` and
the authors' ``make_subjmri.py`` read the data: ``responses.tsv`` (73KID, 1-based) maps trials to
images, ``h5py`` opens ``betas_sessionNN.hdf5`` ((trials, Z, Y, X) int16), the NIfTI atlas is
transposed to (Z, Y, X) to match, the colour table is read as space-separated columns, and each
ROI's voxels are taken with a boolean mask of the transposed atlas, so they come in (Z, Y, X)
C order. It must give the trials, voxels and averaged test betas that ``NSDReader`` gives.
"""

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io

from recon.config import STREAMS_ROIS, SUBJECTS

from recon.profiles import get_profile
from recon.nsd import BETAS_DIR, NSDReader
from recon.toy.simulate import BEHAVIOUR_COLUMNS, SimulationConfig, simulate_nsd

CONFIG = SimulationConfig(n_shared=10, n_train=40, trials_per_session=50, image_size=32)
#: nsd_stim_info_merged.csv's columns after NSD's unnamed index column
STIM_INFO_COLUMNS = (["cocoId", "cocoSplit", "cropBox", "loss", "nsdId", "flagged", "BOLD5000", "shared1000"]
                     + [f"subject{s}" for s in range(1, 9)]
                     + [f"subject{s}_rep{k}" for s in range(1, 9) for k in range(3)])


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return simulate_nsd(tmp_path_factory.mktemp("community") / "nsd", CONFIG, progress=False)


# --------------------------------------------------------- a reader that knows only the manual
def read_behaviour(root, subject, sessions) -> pd.DataFrame:
    table = pd.read_csv(root / "nsddata" / "ppdata" / subject / "behav" / "responses.tsv", delimiter="\t")
    return table[table["SESSION"].isin(sessions)]


def read_hdf5_betas(root, subject, session) -> np.ndarray:
    path = root / "nsddata_betas" / "ppdata" / subject / "func1pt8mm" / BETAS_DIR / f"betas_session{session:02d}.hdf5"
    with h5py.File(path, "r") as f:
        return f["betas"][:]  # (trials, Z, Y, X) int16


def read_atlas(root, subject, atlas="streams") -> tuple[np.ndarray, dict[str, int]]:
    """(labels as (Z, Y, X), ROI name -> value), the colour table read as NSDAccess reads it."""
    ctab = pd.read_csv(root / "nsddata" / "freesurfer" / "fsaverage" / "label" / f"{atlas}.mgz.ctab",
                       delimiter=" ", header=None, index_col=0)
    names = {name: value for value, name in ctab[1].items()}
    volume = nib.load(root / "nsddata" / "ppdata" / subject / "func1pt8mm" / "roi" / f"{atlas}.nii.gz").get_fdata()
    return volume.transpose(2, 1, 0), names


def prepare_subject(root, subject, n_sessions) -> tuple[np.ndarray, dict]:
    """The authors' data preparation: trials from responses.tsv, raw betas per ROI, shared images
    averaged over their repeats (here divided by 300 to compare in percent signal change)."""
    sessions = range(1, n_sessions + 1)
    stims_all = read_behaviour(root, subject, sessions)["73KID"].to_numpy() - 1
    sharedix = scipy.io.loadmat(root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat")["sharedix"].ravel() - 1
    betas = np.concatenate([read_hdf5_betas(root, subject, s) for s in sessions])
    atlas, names = read_atlas(root, subject)
    in_test = np.isin(stims_all, sharedix)
    test_ids = pd.unique(stims_all[in_test])  # first-showing order, as make_subjmri.py keeps them
    rois = {}
    for roi, value in names.items():
        if value == 0:
            continue
        roi_betas = betas[:, atlas == value].astype(np.float64) / 300.0
        rois[roi] = {
            "zyx": np.argwhere(atlas == value),
            "train": roi_betas[~in_test],
            "test_ids": test_ids,
            "test": np.stack([roi_betas[stims_all == image].mean(axis=0) for image in test_ids]),
            "per_trial": roi_betas,
        }
    return stims_all, rois


def reader_order(reader, subject, data, roi) -> np.ndarray:
    """The permutation taking NSDReader's (X, Y, Z)-ordered columns of ``roi`` to (Z, Y, X) order."""
    mask, names = reader.roi_selection(subject, data.rois)
    xyz = np.argwhere(mask)[names == roi]
    return xyz, np.lexsort(xyz.T)  # lexsort's last key (z) is the primary one


# ---------------------------------------------------------------------------------- tests
def test_the_tree_has_what_nsd_ships(tree):
    behaviour = pd.read_csv(tree / "nsddata" / "ppdata" / "subj01" / "behav" / "responses.tsv", delimiter="\t")
    assert tuple(behaviour.columns) == BEHAVIOUR_COLUMNS
    info = pd.read_csv(tree / "nsddata" / "experiments" / "nsd" / "nsd_stim_info_merged.csv", index_col=0)
    assert list(info.columns) == STIM_INFO_COLUMNS
    assert info.index.tolist() == info["nsdId"].tolist() == list(range(CONFIG.n_stimuli))
    for subject in SUBJECTS:
        for session in (1, CONFIG.n_sessions):
            folder = tree / "nsddata_betas" / "ppdata" / subject / "func1pt8mm" / BETAS_DIR
            nifti = np.asarray(nib.load(folder / f"betas_session{session:02d}.nii.gz").dataobj)
            hdf5 = read_hdf5_betas(tree, subject, session)
            assert hdf5.dtype == np.int16 and hdf5.shape == nifti.shape[::-1]
            np.testing.assert_array_equal(hdf5, nifti.transpose(3, 2, 1, 0))


@pytest.mark.parametrize("subject", SUBJECTS)
def test_the_authors_preparation_gives_recons_trials_voxels_and_test_betas(tree, subject):
    n_sessions = CONFIG.n_sessions
    stims_all, rois = prepare_subject(tree, subject, n_sessions)
    reader = NSDReader(tree, CONFIG.trials_per_session)
    data = reader.load_subject(subject, STREAMS_ROIS, n_sessions, zscore_per_session=False)

    # the trial-to-image mapping
    trials = reader.trials(subject, n_sessions)
    np.testing.assert_array_equal(stims_all, trials["nsd_id"])
    assert set(rois) == set(STREAMS_ROIS)
    for roi in STREAMS_ROIS:
        community = rois[roi]
        xyz, order = reader_order(reader, subject, data, roi)
        # each ROI's voxel set, and its order: the community's is (Z, Y, X), recon's (X, Y, Z)
        np.testing.assert_array_equal(community["zyx"][:, ::-1], xyz[order])
        columns = data.columns([roi])
        assert columns.sum() == len(community["zyx"])
        ours = data.train_betas[:, columns][:, order]
        np.testing.assert_allclose(community["train"], ours, rtol=1e-6, atol=1e-6)
        # the averaged test betas, per shared image (theirs in first-showing order, ours sorted)
        by_id = np.argsort(community["test_ids"])
        np.testing.assert_array_equal(community["test_ids"][by_id], data.test_ids)
        np.testing.assert_allclose(community["test"][by_id], data.test_betas[:, columns][:, order],
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(stims_all[~np.isin(stims_all, data.test_ids)], data.train_ids)


def test_per_session_zscoring_is_the_only_difference(tree):
    """recon's default preparation is the community's betas z-scored per voxel within each session."""
    subject, n_sessions = "subj02", CONFIG.n_sessions
    stims_all, rois = prepare_subject(tree, subject, n_sessions)
    reader = NSDReader(tree, CONFIG.trials_per_session)
    data = reader.load_subject(subject, STREAMS_ROIS, n_sessions)
    in_test = np.isin(stims_all, data.test_ids)
    for roi in ("early", "ventral"):
        per_trial = rois[roi]["per_trial"].reshape(n_sessions, CONFIG.trials_per_session, -1)
        sd = per_trial.std(axis=1, keepdims=True)
        z = ((per_trial - per_trial.mean(axis=1, keepdims=True)) / np.where(sd == 0, 1, sd)).reshape(len(stims_all), -1)
        _, order = reader_order(reader, subject, data, roi)
        np.testing.assert_allclose(z[~in_test], data.train_betas[:, data.columns([roi])][:, order], atol=2e-5)


def test_stim_info_repetitions_agree_with_responses(tree):
    info = pd.read_csv(tree / "nsddata" / "experiments" / "nsd" / "nsd_stim_info_merged.csv", index_col=0)
    design = scipy.io.loadmat(tree / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat")
    assert set(np.flatnonzero(info["shared1000"])) == set(design["sharedix"].ravel() - 1)
    for subject in SUBJECTS:
        number = int(subject[4:])
        behaviour = read_behaviour(tree, subject, range(1, CONFIG.n_sessions + 1))
        trial_numbers = pd.Series(np.arange(1, len(behaviour) + 1)).groupby(behaviour["73KID"].to_numpy() - 1)
        shown = trial_numbers.apply(list)
        for k in range(3):
            expected = np.zeros(CONFIG.n_stimuli, dtype=int)
            expected[shown.index] = [t[k] if len(t) > k else 0 for t in shown]
            np.testing.assert_array_equal(info[f"subject{number}_rep{k}"], expected)
        assert set(np.flatnonzero(info[f"subject{number}"])) == set(shown.index)


def test_the_nsd_profile_follows_the_authors_preprocessing():
    assert get_profile("nsd").zscore_betas_per_session is False
    assert get_profile("toy").zscore_betas_per_session is True
    assert get_profile("smoke").zscore_betas_per_session is True
