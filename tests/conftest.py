"""A hand-written mini NSD tree in the official layout (independent of recon.toy.simulate).

Everything is small enough to check by hand: two subjects with (X, Y, Z) grids whose three
axes all differ (so an axis mix-up cannot pass), two sessions of four trials, ten stimuli.
"""

import contextlib
import io
import json
import socket
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch
from threadpoolctl import threadpool_limits

def run_cli(*argv) -> tuple[int, str, str]:
    """``recon`` with ``argv`` in this process: its exit code (argparse's too), stdout and stderr."""
    from recon import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True, scope="session")
def single_threaded():
    """Every test computes on one thread: the 2 CPU cores are shared, and BLAS or torch threads that
    spin against other work make small fits and models many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: offline behaviour must not depend on the network."""
    def refuse(*args, **kwargs):
        raise AssertionError("this test must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


TRIALS_PER_SESSION = 4
N_SESSIONS = 2
N_STIMULI = 10
#: 1-based, as in the file: subj01 sees 73k images 1, 2 (shared), 5, 6, 7, 8; subj02 sees no shared image
SUBJECTIM = {"subj01": [1, 2, 5, 6, 7, 8], "subj02": [3, 4, 9, 10, 5, 6]}
#: 1-based columns of subjectim, one per trial (2 sessions x 4 trials)
MASTERORDERING = [1, 3, 2, 4, 1, 5, 6, 2]
SHAREDIX = [1, 2]
#: streams colour table: value -> name, as FreeSurfer writes it
CTAB = {0: "Unknown", 1: "early", 2: "midventral", 5: "ventral"}


def _labels_subj01() -> np.ndarray:
    labels = np.zeros((4, 3, 2), dtype=np.int16)  # (X, Y, Z)
    labels[0, :, 0] = 1  # 3 early voxels
    labels[1, 0, :] = 1  # 2 more early voxels
    labels[2, 1, 1] = 5  # 1 ventral voxel
    labels[3, :, 1] = 5  # 3 more ventral voxels
    labels[3, 0, 0] = 2  # 1 midventral voxel
    return labels


def _labels_subj02() -> np.ndarray:
    labels = np.zeros((2, 3, 3), dtype=np.int16)
    labels[0] = 1  # 9 early voxels
    labels[1, :2, :] = 5  # 6 ventral voxels
    return labels


LABELS = {"subj01": _labels_subj01(), "subj02": _labels_subj02()}


class MiniNSD:
    """Writes the tree and keeps the exact values written, so tests can compute expectations by hand."""

    def __init__(self, root: Path, betas_format: str = "nii.gz", seed: int = 0):
        self.root = root
        rng = np.random.default_rng(seed)
        self.images = np.stack([np.full((4, 5, 3), 10 * i, dtype=np.uint8) for i in range(N_STIMULI)])
        self.images[:, 0, 0] = np.arange(N_STIMULI)[:, None] + 1  # each image differs in one more pixel too
        #: raw int16 betas per subject and session, (X, Y, Z, trials) = 300 x beta; each session has
        #: its own offset so per-session z-scoring differs from z-scoring the whole run
        self.raw = {}
        for subject, labels in LABELS.items():
            sessions = []
            for session in range(N_SESSIONS):
                values = rng.integers(-3000, 3000, size=(*labels.shape, TRIALS_PER_SESSION)) + 4000 * session
                sessions.append(values.astype(np.int16))
            self.raw[subject] = sessions
        self.raw["subj01"][0][0, 0, 0, :] = 600  # a voxel that is constant in session 1 (sd 0)
        self.write_design()
        self.write_stimuli()
        self.write_rois()
        self.write_betas(betas_format)

    def p(self, *parts) -> Path:
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------- experiment design
    @property
    def expdesign(self) -> Path:
        return self.p("nsddata", "experiments", "nsd", "nsd_expdesign.mat")

    @property
    def stim_info(self) -> Path:
        return self.p("nsddata", "experiments", "nsd", "nsd_stim_info_merged.csv")

    def write_design(self):
        subjectim = np.tile(np.arange(1, 7), (8, 1))  # subjects 3..8: never read
        subjectim[0], subjectim[1] = SUBJECTIM["subj01"], SUBJECTIM["subj02"]
        scipy.io.savemat(self.expdesign, {"masterordering": np.array([MASTERORDERING], dtype=np.float64),
                                          "subjectim": subjectim.astype(np.float64),
                                          "sharedix": np.array([SHAREDIX], dtype=np.float64)})
        ids = np.arange(N_STIMULI)
        pd.DataFrame({"nsdId": ids, "cocoId": 100 + ids,
                      "cocoSplit": np.where(ids % 2 == 0, "train2017", "val2017"),
                      "shared1000": np.isin(ids + 1, SHAREDIX)}).to_csv(self.stim_info, index=False)

    # ---------------------------------------------------------------------- stimuli
    @property
    def stimuli(self) -> Path:
        return self.p("nsddata_stimuli", "stimuli", "nsd", "nsd_stimuli.hdf5")

    def captions_path(self, split: str) -> Path:
        return self.p("nsddata_stimuli", "stimuli", "nsd", "annotations", f"captions_{split}.json")

    def write_stimuli(self):
        with h5py.File(self.stimuli, "w") as f:
            f.create_dataset("imgBrick", data=self.images, chunks=(1, *self.images.shape[1:]))
        for split in ("train2017", "val2017"):
            ids = [i for i in range(N_STIMULI) if (i % 2 == 0) == (split == "train2017")]
            annotations = [{"image_id": 100 + i, "id": k, "caption": f" caption {i} {k} "}
                           for i in ids for k in range(2)]
            self.captions_path(split).write_text(json.dumps({"annotations": annotations}))

    # -------------------------------------------------------------------------- ROIs
    @property
    def ctab(self) -> Path:
        return self.p("nsddata", "freesurfer", "fsaverage", "label", "streams.mgz.ctab")

    def streams(self, subject: str = "subj01") -> Path:
        return self.p("nsddata", "ppdata", subject, "func1pt8mm", "roi", "streams.nii.gz")

    def write_rois(self, ctab=CTAB):
        self.ctab.write_text("".join(f"{v:>3d}  {name:<24s}{40 * v} {200 - 20 * v} 30 0\n" for v, name in ctab.items()))
        for subject, labels in LABELS.items():
            nib.save(nib.Nifti1Image(labels, np.eye(4)), self.streams(subject))
            nib.save(nib.Nifti1Image((labels > 0).astype(np.int16), np.eye(4)),
                     self.p("nsddata", "ppdata", subject, "func1pt8mm", "roi", "nsdgeneral.nii.gz"))

    # ------------------------------------------------------------------------- betas
    def betas_path(self, session: int, suffix: str, subject: str = "subj01") -> Path:
        return self.p("nsddata_betas", "ppdata", subject, "func1pt8mm", "betas_fithrf_GLMdenoise_RR",
                      f"betas_session{session:02d}.{suffix}")

    # --------------------------------------------------------------------- behaviour
    def behaviour_path(self, subject: str = "subj01") -> Path:
        return self.p("nsddata", "ppdata", subject, "behav", "responses.tsv")

    def write_behaviour(self, subject: str = "subj01", ids=None) -> Path:
        """NSD's responses.tsv (the columns readers use); ``ids`` are 1-based 73k ids, the design's by default."""
        if ids is None:
            row = SUBJECTIM[subject]
            ids = [row[column - 1] for column in MASTERORDERING]
        n = len(ids)
        frame = pd.DataFrame({"SUBJECT": int(subject[4:]), "SESSION": np.arange(n) // TRIALS_PER_SESSION + 1,
                              "RUN": 1, "TRIAL": np.arange(n) % TRIALS_PER_SESSION + 1, "73KID": ids,
                              "10KID": np.resize(MASTERORDERING, n)})
        frame.to_csv(self.behaviour_path(subject), sep="\t", index=False)
        return self.behaviour_path(subject)

    def write_betas(self, betas_format: str):
        for subject, sessions in self.raw.items():
            for session, raw in enumerate(sessions, 1):
                if betas_format == "hdf5":
                    with h5py.File(self.betas_path(session, "hdf5", subject), "w") as f:
                        f.create_dataset("betas", data=raw.transpose(3, 2, 1, 0))  # (trials, Z, Y, X)
                else:
                    nib.save(nib.Nifti1Image(raw, np.eye(4)), self.betas_path(session, "nii.gz", subject))


@pytest.fixture
def mini_nsd(tmp_path):
    return MiniNSD(tmp_path / "nsd")


@pytest.fixture
def mini_nsd_hdf5(tmp_path):
    return MiniNSD(tmp_path / "nsd_h5", betas_format="hdf5")
