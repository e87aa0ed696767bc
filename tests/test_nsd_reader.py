"""NSDReader against a hand-written mini tree: every expected value is computed by hand from conftest."""

import re

import h5py
import nibabel as nib
import numpy as np
import pytest
import scipy.io
from conftest import LABELS, N_SESSIONS, TRIALS_PER_SESSION, MiniNSD

from recon.config import ConfigError
from recon.nsd import NSDFileError, NSDReader

#: subj01's trials, by hand: masterordering [1,3,2,4,1,5,6,2] picks columns of subjectim row
#: [1,2,5,6,7,8] -> 1-based ids [1,5,2,6,1,7,8,2] -> 0-based [0,4,1,5,0,6,7,1]; sharedix [1,2] -> 0 and 1
SUBJ01_IDS = [0, 4, 1, 5, 0, 6, 7, 1]
SUBJ01_SHARED = [True, False, True, False, True, False, False, True]
#: subj02: row [3,4,9,10,5,6] -> 1-based [3,9,4,10,3,5,6,4] -> 0-based; none of them shared
SUBJ02_IDS = [2, 8, 3, 9, 2, 4, 5, 3]


def reader(tree) -> NSDReader:
    return NSDReader(tree.root, trials_per_session=TRIALS_PER_SESSION)


def by_hand(tree, subject: str, labels) -> np.ndarray:
    """(trials, voxels): raw / 300, z-scored per voxel within each session (sd 0 -> left at 0)."""
    mask = np.isin(LABELS[subject], labels)
    out = []
    for raw in tree.raw[subject]:
        b = raw[mask].T.astype(np.float64) / 300.0  # voxels in C order of (X, Y, Z)
        sd = b.std(axis=0)
        out.append((b - b.mean(axis=0)) / np.where(sd == 0, 1, sd))
    return np.concatenate(out)


def path_pattern(path) -> str:
    return re.escape(str(path))


# ----------------------------------------------------------------------- design
def test_one_based_indices_become_zero_based_73k_ids(mini_nsd):
    r = reader(mini_nsd)
    trials = r.trials("subj01", N_SESSIONS)
    assert trials["nsd_id"].tolist() == SUBJ01_IDS
    assert trials["session"].tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    assert trials["shared"].tolist() == SUBJ01_SHARED
    # the subject's row is subjectim[number - 1]: subj02 is row 2 of the file, not row 3
    assert r.trials("subj02", N_SESSIONS)["nsd_id"].tolist() == SUBJ02_IDS
    assert r.trials("subj01", 1)["nsd_id"].tolist() == SUBJ01_IDS[:4]
    assert r.expdesign["sharedix"].tolist() == [0, 1]


def test_betas_are_divided_by_300(mini_nsd):
    mask = LABELS["subj01"] > 0
    betas = reader(mini_nsd).session_betas("subj01", 2, mask)
    assert betas.dtype == np.float32 and betas.shape == (TRIALS_PER_SESSION, 10)
    raw = mini_nsd.raw["subj01"][1]
    np.testing.assert_allclose(betas, raw[mask].T / 300.0, rtol=1e-6)
    assert betas[0, 0] == pytest.approx(float(raw[0, 0, 0, 0]) / 300.0)  # first voxel in (X, Y, Z) order


def test_zscored_within_each_session(mini_nsd):
    data = reader(mini_nsd).load_subject("subj02", ["early", "ventral"], N_SESSIONS)
    # subj02 never sees a shared image: every trial comes back as a train row, in order
    assert data.train_ids.tolist() == SUBJ02_IDS and len(data.test_ids) == 0
    for session in range(N_SESSIONS):
        block = data.train_betas[session * TRIALS_PER_SESSION : (session + 1) * TRIALS_PER_SESSION]
        np.testing.assert_allclose(block.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(block.std(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(data.train_betas, by_hand(mini_nsd, "subj02", [1, 5]), rtol=1e-5, atol=2e-5)
    # the sessions' offsets (4000 apart in raw units) are gone: not z-scored over the whole run
    whole = np.concatenate(mini_nsd.raw["subj02"], axis=-1)[LABELS["subj02"] > 0].T / 300.0
    whole = (whole - whole.mean(0)) / whole.std(0)
    assert np.abs(data.train_betas - whole).max() > 0.5


def test_without_per_session_zscoring_betas_are_raw_over_300(mini_nsd):
    """The authors' preparation: raw / 300, test images averaged over repeats, no per-session scaling."""
    data = reader(mini_nsd).load_subject("subj01", ["early", "ventral"], N_SESSIONS, zscore_per_session=False)
    mask = np.isin(LABELS["subj01"], [1, 5])
    raw = np.concatenate([r[mask].T for r in mini_nsd.raw["subj01"]]).astype(np.float64) / 300.0
    shared = np.array(SUBJ01_SHARED)
    np.testing.assert_allclose(data.train_betas, raw[~shared], rtol=1e-6)
    assert data.test_ids.tolist() == [0, 1]
    np.testing.assert_allclose(data.test_betas, [(raw[0] + raw[4]) / 2, (raw[2] + raw[7]) / 2], rtol=1e-6)
    # the sessions' offsets (4000 raw units) are still there
    assert data.train_betas[2:].mean() - data.train_betas[:2].mean() > 10


def test_a_constant_voxel_gives_zeros_not_nans(mini_nsd):
    data = reader(mini_nsd).load_subject("subj01", ["early"], N_SESSIONS)
    assert np.isfinite(data.train_betas).all() and np.isfinite(data.test_betas).all()
    session1_train = [i for i in range(4) if not SUBJ01_SHARED[i]]
    assert np.all(data.train_betas[: len(session1_train), 0] == 0)


def test_train_test_split_and_test_average_over_repeats(mini_nsd):
    data = reader(mini_nsd).load_subject("subj01", ["early", "ventral"], N_SESSIONS)
    z = by_hand(mini_nsd, "subj01", [1, 5])
    shared = np.array(SUBJ01_SHARED)
    assert data.train_ids.tolist() == [4, 5, 6, 7]  # the subject's own images
    np.testing.assert_allclose(data.train_betas, z[~shared], rtol=1e-5, atol=2e-5)
    # test: 73k ids 0 (trials 1 and 5) and 1 (trials 3 and 8), one averaged row each
    assert data.test_ids.tolist() == [0, 1] and data.test_repeats.tolist() == [2, 2]
    assert data.test_betas.shape == (2, 9)
    np.testing.assert_allclose(data.test_betas[0], (z[0] + z[4]) / 2, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(data.test_betas[1], (z[2] + z[7]) / 2, rtol=1e-5, atol=2e-5)


# -------------------------------------------------------------------- behaviour
def test_responses_that_agree_with_the_design_are_accepted(mini_nsd):
    mini_nsd.write_behaviour("subj01")
    r = reader(mini_nsd)
    assert (r.behaviour("subj01")["73KID"] - 1).tolist() == SUBJ01_IDS
    assert r.trials("subj01", N_SESSIONS)["nsd_id"].tolist() == SUBJ01_IDS
    assert r.behaviour("subj02") is None  # no file: nothing to check
    assert r.trials("subj02", 1)["nsd_id"].tolist() == SUBJ02_IDS[:4]
    # a file with more trials than the sessions read (NSD's covers sessions not yet released) is fine
    mini_nsd.write_behaviour("subj01", [i + 1 for i in SUBJ01_IDS] + [3])
    assert len(reader(mini_nsd).load_subject("subj01", ["early"], 1).train_ids) == 2


def test_responses_that_disagree_name_both_files_and_the_first_differing_trial(mini_nsd):
    ids = [i + 1 for i in SUBJ01_IDS]
    ids[5] = 9  # trial 6 = session 2, trial 2 of the session
    path = mini_nsd.write_behaviour("subj01", ids)
    expected = (f"{path_pattern(path)} disagrees with {path_pattern(mini_nsd.expdesign)} for subj01: first at "
                r"trial 6 \(SESSION 2, RUN 1, TRIAL 2\), where responses.tsv has 73KID 9 and the design gives 7")
    with pytest.raises(NSDFileError, match=expected):
        reader(mini_nsd).load_subject("subj01", ["early"], N_SESSIONS)
    reader(mini_nsd).load_subject("subj01", ["early"], 1)  # session 1 agrees


def test_responses_shorter_than_the_sessions_read_or_without_73kid(mini_nsd):
    path = mini_nsd.write_behaviour("subj01", [i + 1 for i in SUBJ01_IDS[:4]])
    with pytest.raises(NSDFileError, match=path_pattern(path) + " lists 4 trials but .* gives subj01 8"):
        reader(mini_nsd).trials("subj01", N_SESSIONS)
    assert reader(mini_nsd).trials("subj01", 1)["nsd_id"].tolist() == SUBJ01_IDS[:4]
    path.write_text("SUBJECT\tSESSION\n1\t1\n")
    with pytest.raises(NSDFileError, match=path_pattern(path) + " has no 73KID column"):
        reader(mini_nsd).trials("subj01", 1)


# ------------------------------------------------------------------------- ROIs
def test_rois_by_name_from_the_colour_table(mini_nsd):
    r = reader(mini_nsd)
    assert r.roi_labels() == {"early": 1, "midventral": 2, "ventral": 5}
    data = r.load_subject("subj01", ["ventral", "early"], N_SESSIONS)
    labels = LABELS["subj01"]
    expected = np.array([{1: "early", 5: "ventral"}[v] for v in labels[np.isin(labels, [1, 5])]])
    assert data.roi_of_voxel.tolist() == expected.tolist()  # (X, Y, Z) C order, midventral left out
    assert data.columns(["early"]).sum() == 5 and data.columns(["ventral"]).sum() == 4
    with pytest.raises(KeyError, match="not loaded"):
        data.columns(["midventral"])
    # a subject has its own volume: subj02 has other voxel counts
    assert reader(mini_nsd).load_subject("subj02", ["ventral"], 1).train_betas.shape[1] == 6


def test_the_reader_follows_the_colour_table_not_fixed_numbers(mini_nsd):
    # swap the names of values 1 and 5: "early" must now select the voxels labelled 5
    mini_nsd.write_rois({0: "Unknown", 1: "ventral", 2: "midventral", 5: "early"})
    data = reader(mini_nsd).load_subject("subj01", ["early"], N_SESSIONS)
    assert data.train_betas.shape[1] == 4
    np.testing.assert_allclose(data.train_betas, by_hand(mini_nsd, "subj01", [5])[~np.array(SUBJ01_SHARED)],
                               rtol=1e-5, atol=2e-5)
    # rename a label: the old name is gone, the new one works
    mini_nsd.write_rois({0: "Unknown", 1: "early", 5: "ventral_new"})
    renamed = reader(mini_nsd)
    assert renamed.roi_labels() == {"early": 1, "ventral_new": 5}
    assert renamed.load_subject("subj01", ["ventral_new"], 1).train_betas.shape[1] == 4
    with pytest.raises(KeyError, match=r"\['ventral'\] are not in the streams atlas.*ventral_new"):
        renamed.load_subject("subj01", ["ventral"], 1)


def test_unknown_roi_names_the_roi_and_the_atlas_labels(mini_nsd):
    expected = r"\['V1'\] are not in the streams atlas; it has \['early', 'midventral', 'ventral'\]"
    with pytest.raises(KeyError, match=expected):
        reader(mini_nsd).load_subject("subj01", ["early", "V1"], 1)


# ------------------------------------------------------------------- two formats
def test_hdf5_and_nifti_betas_agree(mini_nsd, mini_nsd_hdf5):
    assert reader(mini_nsd_hdf5).betas_path("subj01", 1).suffix == ".hdf5"
    assert reader(mini_nsd).betas_path("subj01", 1).name == "betas_session01.nii.gz"
    for subject in ("subj01", "subj02"):
        a = reader(mini_nsd).load_subject(subject, ["early", "ventral"], N_SESSIONS)
        b = reader(mini_nsd_hdf5).load_subject(subject, ["early", "ventral"], N_SESSIONS)
        np.testing.assert_array_equal(a.train_betas, b.train_betas)
        np.testing.assert_array_equal(a.test_betas, b.test_betas)
        assert a.roi_of_voxel.tolist() == b.roi_of_voxel.tolist()
    mask = LABELS["subj01"] == 5
    np.testing.assert_array_equal(reader(mini_nsd_hdf5).session_betas("subj01", 2, mask),
                                  reader(mini_nsd).session_betas("subj01", 2, mask))



def test_betas_stored_as_nsds_one_chunk_per_voxel_read_the_same_in_slabs_of_planes(mini_nsd_hdf5):
    """NSD's betas files are chunked one voxel's trials at a time: the reader reads them in slabs of Z planes (each
    chunk once), not in ranges of trials (every chunk once per range), and gets the same betas."""
    from recon.nsd import hdf5_read_plan

    path = reader(mini_nsd_hdf5).betas_path("subj01", 2)
    mask = LABELS["subj01"] == 5
    contiguous = reader(mini_nsd_hdf5).session_betas("subj01", 2, mask, chunk=2)
    with h5py.File(path, "r") as f:
        betas = f["betas"][()]
    with h5py.File(path, "w") as f:  # the same values, as NSD stores them
        f.create_dataset("betas", data=betas, chunks=(betas.shape[0], 1, 1, 1))
    np.testing.assert_array_equal(reader(mini_nsd_hdf5).session_betas("subj01", 2, mask, chunk=2), contiguous)
    # the plans: at NSD's shape, 13 planes with all 750 trials (as much as 125 trials of the volume) per read;
    # a file of one trial a chunk (the simulated tree's) or contiguous, 125 trials at a time
    nsd = hdf5_read_plan((750, 83, 104, 81), (750, 1, 1, 1), 125)
    assert nsd[0] == (slice(None), slice(0, 13)) and nsd[-1] == (slice(None), slice(78, 83)) and len(nsd) == 7
    for chunks in (None, (1, 83, 104, 81)):
        assert hdf5_read_plan((750, 83, 104, 81), chunks, 125)[1] == (slice(125, 250), slice(None))


# ------------------------------------------------------------------ stimuli, text
def test_images_are_read_lazily_in_the_requested_order(mini_nsd, monkeypatch):
    r = reader(mini_nsd)
    requested = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        requested.append(key)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    images = r.images([7, 2, 7])
    assert images.shape == (3, 4, 5, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, mini_nsd.images[[7, 2, 7]])
    # one read of exactly the two distinct images, never the whole brick
    assert [np.asarray(k).tolist() for k in requested] == [[2, 7]]
    assert r.images([]).shape == (0, 4, 5, 3)
    assert r.n_stimuli == 10
    with pytest.raises(IndexError, match=r"0\.\.9, got range 3\.\.10"):
        r.images([3, 10])


def test_captions_by_73k_id_across_coco_splits(mini_nsd):
    captions = reader(mini_nsd).captions([3, 0])  # cocoId 103 (val2017) and 100 (train2017)
    assert captions == [["caption 3 0", "caption 3 1"], ["caption 0 0", "caption 0 1"]]


# ---------------------------------------------------------------- bad input
def test_unknown_subject_lists_the_valid_ones(mini_nsd):
    with pytest.raises(ConfigError, match=r"'subj03'; valid subjects are subj01, subj02, subj05, subj07"):
        reader(mini_nsd).trials("subj03", 1)
    with pytest.raises(ConfigError, match="subj01, subj02, subj05, subj07"):
        reader(mini_nsd).betas_path("subj3", 1)


def test_missing_root(tmp_path):
    with pytest.raises(NSDFileError, match=f"NSD root {path_pattern(tmp_path / 'nowhere')} does not exist"):
        NSDReader(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "name, expected, action",
    [
        ("expdesign", "MATLAB file with masterordering, subjectim, sharedix", lambda r: r.trials("subj01", 1)),
        ("stim_info", "CSV with nsdId, cocoId, cocoSplit, shared1000", lambda r: r.captions([0])),
        ("ctab", "colour table of the streams atlas", lambda r: r.roi_labels()),
        ("streams", "streams ROI volume of subj01", lambda r: r.load_subject("subj01", ["early"], 1)),
        ("stimuli", "HDF5 file with dataset 'imgBrick'", lambda r: r.images([0])),
        ("captions", "COCO-style caption annotations", lambda r: r.captions([0])),
    ],
)
def test_a_missing_file_is_named_with_what_was_expected(mini_nsd, name, expected, action):
    path = {"expdesign": mini_nsd.expdesign, "stim_info": mini_nsd.stim_info, "ctab": mini_nsd.ctab,
            "streams": mini_nsd.streams("subj01"), "stimuli": mini_nsd.stimuli,
            "captions": mini_nsd.captions_path("train2017")}[name]
    path.unlink()
    with pytest.raises(NSDFileError, match=f"missing NSD file {path_pattern(path)} \\(expected {re.escape(expected)}"):
        action(reader(mini_nsd))


def test_a_missing_session_names_the_betas_file(mini_nsd):
    path = mini_nsd.betas_path(2, "nii.gz")
    path.unlink()
    hdf5 = path_pattern(path.with_name("betas_session02.hdf5"))
    with pytest.raises(NSDFileError, match=hdf5 + r" \(or \.nii\.gz\): betas of subj01 session 2"):
        reader(mini_nsd).load_subject("subj01", ["early"], N_SESSIONS)
    reader(mini_nsd).load_subject("subj01", ["early"], 1)  # session 1 alone is still fine


def test_truncated_gzip_nifti_fails_naming_the_file(mini_nsd):
    path = mini_nsd.betas_path(1, "nii.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NSDFileError, match=f"cannot read {path_pattern(path)} \\(truncated or corrupt\\?\\)"):
        reader(mini_nsd).load_subject("subj01", ["early"], N_SESSIONS)
    roi = mini_nsd.streams("subj02")
    roi.write_bytes(roi.read_bytes()[:40])
    with pytest.raises(NSDFileError, match=f"cannot read {path_pattern(roi)}"):
        reader(mini_nsd).load_subject("subj02", ["early"], 1)


def test_nan_betas_stop_the_reader_naming_subject_session_and_count(mini_nsd):
    path = mini_nsd.betas_path(1, "nii.gz")
    betas = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    mask = LABELS["subj01"] > 0
    betas[mask, 1] = np.nan  # one trial of every ROI voxel: a float file from another preparation
    nib.save(nib.Nifti1Image(betas, np.eye(4)), path)
    with pytest.raises(NSDFileError, match=f"subj01 session 1: {int(mask.sum())} betas within the ROIs are NaN or "
                       f"infinite in {path_pattern(path)}"):
        reader(mini_nsd).load_subject("subj01", ["early", "midventral", "ventral"], N_SESSIONS)


def test_a_stim_info_cut_short_is_refused_naming_what_it_lacks(mini_nsd):
    path = reader(mini_nsd).stim_info_path
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # whole rows and a cut one: it still parses
    with pytest.raises(NSDFileError, match=f"{path_pattern(path)} is incomplete \\(truncated\\?\\): .* rows, "
                                           r"\d+ of the 10 images of the design missing"):
        reader(mini_nsd).stim_info


def test_wrongly_shaped_betas(mini_nsd, mini_nsd_hdf5):
    path = mini_nsd.betas_path(1, "nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 3, 2, 3), np.int16), np.eye(4)), path)  # 3 trials, not 4
    expected = r" has shape \(4, 3, 2, 3\), expected \(4, 3, 2, 4\) \(X, Y, Z, trials\)"
    with pytest.raises(NSDFileError, match=path_pattern(path) + expected):
        reader(mini_nsd).load_subject("subj01", ["early"], N_SESSIONS)
    path = mini_nsd_hdf5.betas_path(1, "hdf5")
    with h5py.File(path, "w") as f:  # (trials, X, Y, Z) instead of (trials, Z, Y, X)
        f.create_dataset("betas", data=np.zeros((4, 4, 3, 2), np.int16))
    expected = r" has shape \(4, 4, 3, 2\), expected \(4, 2, 3, 4\) \(trials, Z, Y, X\)"
    with pytest.raises(NSDFileError, match=path_pattern(path) + expected):
        reader(mini_nsd_hdf5).load_subject("subj01", ["early"], N_SESSIONS)
    with h5py.File(path, "w") as f:
        f.create_dataset("beta", data=np.zeros((4, 2, 3, 4), np.int16))
    with pytest.raises(NSDFileError, match=path_pattern(path) + " has no dataset 'betas'"):
        reader(mini_nsd_hdf5).load_subject("subj01", ["early"], N_SESSIONS)


def test_stimuli_without_imgbrick_or_of_the_wrong_type(mini_nsd):
    with h5py.File(mini_nsd.stimuli, "w") as f:
        f.create_dataset("images", data=mini_nsd.images)
    with pytest.raises(NSDFileError, match=path_pattern(mini_nsd.stimuli) + " has no dataset 'imgBrick'"):
        reader(mini_nsd).images([0])
    with h5py.File(mini_nsd.stimuli, "w") as f:
        f.create_dataset("imgBrick", data=mini_nsd.images.astype(np.float32))
    with pytest.raises(NSDFileError, match=r"imgBrick is \(10, 4, 5, 3\) float32, expected \(n, H, W, 3\) uint8"):
        reader(mini_nsd).images([0])
    mini_nsd.stimuli.write_bytes(b"not an hdf5 file")
    with pytest.raises(NSDFileError, match=f"cannot read {path_pattern(mini_nsd.stimuli)}"):
        reader(mini_nsd).images([0])


def test_malformed_design_table_and_atlas(mini_nsd):
    scipy.io.savemat(mini_nsd.expdesign, {"masterordering": np.array([[1, 2]]), "subjectim": np.ones((8, 2))})
    with pytest.raises(NSDFileError, match=path_pattern(mini_nsd.expdesign) + " has no variable 'sharedix'"):
        reader(mini_nsd).trials("subj01", 1)
    scipy.io.savemat(mini_nsd.expdesign, {"masterordering": np.array([[1, 7]]), "subjectim": np.ones((8, 6)),
                                          "sharedix": np.array([[1]])})
    with pytest.raises(NSDFileError, match="masterordering indexes outside subjectim's 6 columns"):
        reader(mini_nsd).trials("subj01", 1)
    mini_nsd.stim_info.write_text("nsdId,cocoId\n0,100\n")
    with pytest.raises(NSDFileError, match=r"lacks columns \['cocoSplit', 'shared1000'\]"):
        reader(mini_nsd).captions([0])
    mini_nsd.ctab.write_text("one early\n")
    with pytest.raises(NSDFileError, match=path_pattern(mini_nsd.ctab) + ":1: expected '<value> <name> ...'"):
        reader(mini_nsd).roi_labels()


def test_session_count_is_checked(mini_nsd):
    for bad in (0, 3):
        with pytest.raises(ValueError, match=rf"n_sessions must be in 1\.\.2, got {bad}"):
            reader(mini_nsd).load_subject("subj01", ["early"], bad)
    # trials_per_session defines the sessions: 8 trials are 4 sessions of 2
    assert NSDReader(mini_nsd.root, trials_per_session=2).max_sessions == 4


def test_another_tree_with_other_values_gives_other_betas(tmp_path):
    a, b = MiniNSD(tmp_path / "a", seed=1), MiniNSD(tmp_path / "b", seed=2)
    assert not np.array_equal(reader(a).load_subject("subj01", ["early"], 2).train_betas,
                              reader(b).load_subject("subj01", ["early"], 2).train_betas)


# ----------------------------------------------------------------- the layout without the files
def test_the_files_a_subject_needs_are_known_from_the_design_alone(mini_nsd_hdf5, tmp_path):
    """What the fetcher downloads: the same list as the files read, from the design and stimulus table alone."""
    mini_nsd_hdf5.write_behaviour("subj01")
    used = reader(mini_nsd_hdf5).files_used("subj01", N_SESSIONS)
    bare = tmp_path / "bare"
    for file in reader(mini_nsd_hdf5).design_files:
        target = bare / file.relative_to(mini_nsd_hdf5.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.read_bytes())
    needed = NSDReader(bare, TRIALS_PER_SESSION).files_needed("subj01", N_SESSIONS, betas_suffix=".hdf5")
    assert [p.relative_to(bare) for p in needed] == [p.relative_to(mini_nsd_hdf5.root) for p in used]
    assert needed[-1].name == "responses.tsv"  # optional, last: the fetcher fetches it where the server has it
    nifti = NSDReader(bare, TRIALS_PER_SESSION).files_needed("subj01", 1, betas_suffix=".nii.gz")
    assert [p.name for p in nifti if "betas" in p.name] == ["betas_session01.nii.gz"]
    with pytest.raises(ConfigError, match=r"betas format '\.mat' is not one NSD ships; valid: \.hdf5, \.nii\.gz"):
        NSDReader(bare, TRIALS_PER_SESSION).files_needed("subj01", 1, betas_suffix=".mat")
    # without the optional file the reader reads the rest
    mini_nsd_hdf5.behaviour_path("subj01").unlink()
    assert reader(mini_nsd_hdf5).files_used("subj01", N_SESSIONS) == used[:-1]


def test_betas_are_checked_from_their_header(mini_nsd, mini_nsd_hdf5):
    for tree in (mini_nsd, mini_nsd_hdf5):
        assert reader(tree).check_betas("subj01", 1, LABELS["subj01"].shape) == reader(tree).betas_path("subj01", 1)
        with pytest.raises(NSDFileError, match=r"has shape .*, expected"):
            reader(tree).check_betas("subj01", 1, (4, 3, 3))
    path = mini_nsd_hdf5.betas_path(1, "hdf5")
    path.write_bytes(b"\0" * 8 + path.read_bytes()[8:])  # the HDF5 signature gone
    with pytest.raises(NSDFileError, match=f"cannot read {path_pattern(path)} \\(truncated or corrupt\\?\\)"):
        reader(mini_nsd_hdf5).check_betas("subj01", 1, LABELS["subj01"].shape)
