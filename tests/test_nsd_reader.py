"""NSDReader against a hand-written mini tree: every value below is computed by hand from conftest."""

import gzip

import h5py
import numpy as np
import pytest
from conftest import LABELS, MASTERORDERING, N_SESSIONS, SUBJECTIM_SUBJ01, TRIALS_PER_SESSION, MiniNSD

from recon.config import ConfigError
from recon.nsd import NSDFileError, NSDReader


def reader(tree) -> NSDReader:
    return NSDReader(tree.root, trials_per_session=TRIALS_PER_SESSION)


def expected_zscored(tree) -> np.ndarray:
    """(trials, X, Y, Z) betas / 300, z-scored per voxel within each session."""
    out = []
    for raw in tree.raw:
        b = np.moveaxis(raw.astype(np.float64) / 300.0, -1, 0)
        std = b.std(axis=0)
        out.append((b - b.mean(axis=0)) / np.where(std == 0, 1, std))
    return np.concatenate(out)


def test_one_based_indices_become_zero_based_73k_ids(mini_nsd):
    trials = reader(mini_nsd).trials("subj01", N_SESSIONS)
    expected = [SUBJECTIM_SUBJ01[m - 1] - 1 for m in MASTERORDERING]  # both files are 1-based
    assert trials["nsd_id"].tolist() == expected == [0, 4, 1, 5, 0, 6, 7, 1]
    assert trials["session"].tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    assert trials["shared"].tolist() == [True, False, True, False, True, False, False, True]


def test_betas_are_scaled_by_300(mini_nsd):
    mask = LABELS > 0
    betas = reader(mini_nsd).session_betas("subj01", 1, mask)
    np.testing.assert_allclose(betas, mini_nsd.raw[0][mask].T / 300.0, rtol=1e-6)


def test_zscoring_per_session_and_train_test_split(mini_nsd):
    data = reader(mini_nsd).load_subject("subj01", ["early", "ventral"], N_SESSIONS)
    z = expected_zscored(mini_nsd)[:, LABELS > 0]
    shared = np.array([True, False, True, False, True, False, False, True])
    np.testing.assert_allclose(data.train_betas, z[~shared], rtol=1e-5, atol=1e-6)
    assert data.train_ids.tolist() == [4, 5, 6, 7]
    # test images: 73k ids 0 and 1, each the mean of its two presentations
    assert data.test_ids.tolist() == [0, 1] and data.test_repeats.tolist() == [2, 2]
    np.testing.assert_allclose(data.test_betas[0], (z[0] + z[4]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data.test_betas[1], (z[2] + z[7]) / 2, rtol=1e-5, atol=1e-6)


def test_each_session_is_standardised_on_its_own(mini_nsd):
    data = reader(mini_nsd).load_subject("subj01", ["early"], N_SESSIONS)
    all_trials = expected_zscored(mini_nsd)[:, LABELS == 1]
    for session in range(N_SESSIONS):
        block = all_trials[session * TRIALS_PER_SESSION : (session + 1) * TRIALS_PER_SESSION]
        np.testing.assert_allclose(block.mean(axis=0), 0, atol=1e-9)
        np.testing.assert_allclose(block.std(axis=0), 1, atol=1e-9)
    assert data.train_betas.shape == (4, int((LABELS == 1).sum()))


def test_rois_are_selected_by_the_names_in_the_colour_table(mini_nsd):
    r = reader(mini_nsd)
    data = r.load_subject("subj01", ["ventral"], N_SESSIONS)
    assert data.train_betas.shape[1] == int((LABELS == 5).sum()) == 3
    assert set(data.roi_of_voxel) == {"ventral"}
    # Rename label 5 in the table: the reader follows the table, not a hard-coded number.
    mini_nsd.write_rois({0: "Unknown", 1: "early", 5: "ventral_renamed"})
    renamed = NSDReader(mini_nsd.root, TRIALS_PER_SESSION)
    assert renamed.roi_labels() == {"early": 1, "ventral_renamed": 5}
    with pytest.raises(KeyError, match="ventral"):
        renamed.load_subject("subj01", ["ventral"], N_SESSIONS)


def test_columns_select_rois_within_a_multi_roi_load(mini_nsd):
    data = reader(mini_nsd).load_subject("subj01", ["early", "ventral"], N_SESSIONS)
    assert data.columns(["early"]).sum() == 3 and data.columns(["ventral"]).sum() == 3
    with pytest.raises(KeyError, match="not loaded"):
        data.columns(["lateral"])


def test_hdf5_and_nifti_betas_agree(mini_nsd, mini_nsd_hdf5):
    a = reader(mini_nsd).load_subject("subj01", ["early", "ventral"], N_SESSIONS)
    b = reader(mini_nsd_hdf5).load_subject("subj01", ["early", "ventral"], N_SESSIONS)
    assert reader(mini_nsd_hdf5).betas_path("subj01", 1).suffix == ".hdf5"
    np.testing.assert_array_equal(a.train_betas, b.train_betas)
    np.testing.assert_array_equal(a.test_betas, b.test_betas)
    assert a.roi_of_voxel.tolist() == b.roi_of_voxel.tolist()


def test_images_are_read_lazily_by_id_in_the_requested_order(mini_nsd, monkeypatch):
    r = reader(mini_nsd)
    requested = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        requested.append(key)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    images = r.images([7, 2, 7])
    assert images.shape == (3, 4, 4, 3) and images.dtype == np.uint8
    assert [int(images[i, 0, 0, 0]) for i in range(3)] == [70, 20, 70]
    assert [list(k) for k in requested if not isinstance(k, tuple)] == [[2, 7]]  # only the two needed, once
    with pytest.raises(IndexError, match="0..9"):
        r.images([10])


def test_captions_by_73k_id_across_coco_splits(mini_nsd):
    captions = reader(mini_nsd).captions([3, 0])
    assert captions == [["caption 3 0", "caption 3 1"], ["caption 0 0", "caption 0 1"]]


# ------------------------------------------------------------------------ broken files
def test_unknown_subject_lists_the_valid_ones(mini_nsd):
    with pytest.raises(ConfigError, match="subj03.*subj01, subj02, subj05, subj07"):
        reader(mini_nsd).trials("subj03", 1)


def test_missing_root_and_missing_file(mini_nsd, tmp_path):
    with pytest.raises(NSDFileError, match="does not exist"):
        NSDReader(tmp_path / "nowhere")
    mini_nsd.expdesign.unlink()
    with pytest.raises(NSDFileError, match=r"missing NSD file .*nsd_expdesign\.mat.*masterordering"):
        reader(mini_nsd).trials("subj01", 1)


def test_missing_session_names_the_betas_file(mini_nsd):
    mini_nsd.betas_path(2, "nii.gz").unlink()
    with pytest.raises(NSDFileError, match=r"betas_session02\.hdf5 \(or \.nii\.gz\).*subj01 session 2"):
        reader(mini_nsd).load_subject("subj01", ["early"], N_SESSIONS)


def test_truncated_betas_fail_naming_the_file(mini_nsd):
    path = mini_nsd.betas_path(1, "nii.gz")
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) // 2])
    with pytest.raises(NSDFileError, match=r"betas_session01\.nii\.gz.*truncated or corrupt"):
        reader(mini_nsd).load_subject("subj01", ["early"], N_SESSIONS)


def test_wrongly_shaped_betas(mini_nsd, mini_nsd_hdf5):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((3, 2, 2, 3), np.int16), np.eye(4)), mini_nsd.betas_path(1, "nii.gz"))
    with pytest.raises(NSDFileError, match=r"shape \(3, 2, 2, 3\), expected \(3, 2, 2, 4\)"):
        reader(mini_nsd).load_subject("subj01", ["early"], N_SESSIONS)
    with h5py.File(mini_nsd_hdf5.betas_path(1, "hdf5"), "w") as f:
        f.create_dataset("betas", data=np.zeros((4, 2, 2, 2), np.int16))
    with pytest.raises(NSDFileError, match=r"expected \(4, 2, 2, 3\) \(trials, Z, Y, X\)"):
        reader(mini_nsd_hdf5).load_subject("subj01", ["early"], N_SESSIONS)


def test_stimuli_without_imgbrick_or_of_wrong_dtype(mini_nsd):
    with h5py.File(mini_nsd.stimuli, "w") as f:
        f.create_dataset("images", data=mini_nsd.images)
    with pytest.raises(NSDFileError, match=r"nsd_stimuli\.hdf5 has no dataset 'imgBrick'"):
        reader(mini_nsd).images([0])
    with h5py.File(mini_nsd.stimuli, "w") as f:
        f.create_dataset("imgBrick", data=mini_nsd.images.astype(np.float32))
    with pytest.raises(NSDFileError, match=r"expected \(n, H, W, 3\) uint8"):
        reader(mini_nsd).images([0])


def test_malformed_design_and_atlas(mini_nsd):
    import scipy.io

    scipy.io.savemat(mini_nsd.expdesign, {"masterordering": np.array([[1, 2]]), "subjectim": np.ones((8, 2))})
    with pytest.raises(NSDFileError, match="no variable 'sharedix'"):
        reader(mini_nsd).trials("subj01", 1)
    mini_nsd.ctab.write_text("one early\n")
    with pytest.raises(NSDFileError, match=r"streams\.mgz\.ctab:1: expected '<value> <name>"):
        reader(mini_nsd).roi_labels()


def test_session_count_is_checked(mini_nsd):
    with pytest.raises(ValueError, match=r"n_sessions must be in 1\.\.2, got 3"):
        reader(mini_nsd).trials("subj01", 3)


def test_a_second_mini_tree_with_other_values_differs(tmp_path):
    a, b = MiniNSD(tmp_path / "a", seed=1), MiniNSD(tmp_path / "b", seed=2)
    assert not np.array_equal(reader(a).load_subject("subj01", ["early"], 2).train_betas,
                              reader(b).load_subject("subj01", ["early"], 2).train_betas)
