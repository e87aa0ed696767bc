"""A hand-written mini NSD tree in the official layout (independent of recon.simulate)."""

import json
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io

TRIALS_PER_SESSION = 4
N_SESSIONS = 2
GRID = (3, 2, 2)  # X, Y, Z
N_STIMULI = 10
#: 1-based, as in the file: subj01 sees 73k images 1, 2 (shared), 5, 6, 7, 8
SUBJECTIM_SUBJ01 = [1, 2, 5, 6, 7, 8]
#: 1-based columns of subjectim, one per trial (2 sessions x 4 trials)
MASTERORDERING = [1, 3, 2, 4, 1, 5, 6, 2]
SHAREDIX = [1, 2]
#: streams labels: value -> name, as the colour table writes them
CTAB = {0: "Unknown", 1: "early", 5: "ventral"}
LABELS = np.array([[[1, 1], [0, 5]], [[5, 5], [0, 0]], [[1, 0], [0, 0]]])  # (X, Y, Z)


class MiniNSD:
    """Paths and the exact values written, so tests can compute expectations by hand."""

    def __init__(self, root: Path, betas_format: str = "nii.gz", seed: int = 0):
        self.root = root
        rng = np.random.default_rng(seed)
        self.raw = [rng.integers(-3000, 3000, size=(*GRID, TRIALS_PER_SESSION), dtype=np.int16)
                    for _ in range(N_SESSIONS)]
        self.images = np.stack([np.full((4, 4, 3), 10 * i, dtype=np.uint8) for i in range(N_STIMULI)])
        self.write_design()
        self.write_stimuli()
        self.write_rois()
        self.write_betas(betas_format)

    def p(self, *parts) -> Path:
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def expdesign(self) -> Path:
        return self.p("nsddata", "experiments", "nsd", "nsd_expdesign.mat")

    def write_design(self):
        subjectim = np.tile(np.arange(1, 7), (8, 1))
        subjectim[0] = SUBJECTIM_SUBJ01
        scipy.io.savemat(self.expdesign, {"masterordering": np.array([MASTERORDERING]),
                                          "subjectim": subjectim, "sharedix": np.array([SHAREDIX])})
        ids = np.arange(N_STIMULI)
        pd.DataFrame({"nsdId": ids, "cocoId": 100 + ids,
                      "cocoSplit": np.where(ids % 2 == 0, "train2017", "val2017"),
                      "shared1000": np.isin(ids + 1, SHAREDIX)}).to_csv(
            self.p("nsddata", "experiments", "nsd", "nsd_stim_info_merged.csv"), index=False)

    @property
    def stimuli(self) -> Path:
        return self.p("nsddata_stimuli", "stimuli", "nsd", "nsd_stimuli.hdf5")

    def write_stimuli(self):
        with h5py.File(self.stimuli, "w") as f:
            f.create_dataset("imgBrick", data=self.images, chunks=(1, 4, 4, 3))
        for split in ("train2017", "val2017"):
            ids = [i for i in range(N_STIMULI) if (i % 2 == 0) == (split == "train2017")]
            annotations = [{"image_id": 100 + i, "id": k, "caption": f"caption {i} {k} "}
                           for i in ids for k in range(2)]
            self.p("nsddata_stimuli", "stimuli", "nsd", "annotations", f"captions_{split}.json").write_text(
                json.dumps({"annotations": annotations}))

    @property
    def ctab(self) -> Path:
        return self.p("nsddata", "freesurfer", "fsaverage", "label", "streams.mgz.ctab")

    @property
    def streams(self) -> Path:
        return self.p("nsddata", "ppdata", "subj01", "func1pt8mm", "roi", "streams.nii.gz")

    def write_rois(self, ctab=CTAB):
        self.ctab.write_text("".join(f"{v} {name} 0 0 0 0\n" for v, name in ctab.items()))
        nib.save(nib.Nifti1Image(LABELS.astype(np.int16), np.eye(4)), self.streams)
        nib.save(nib.Nifti1Image((LABELS > 0).astype(np.int16), np.eye(4)),
                 self.p("nsddata", "ppdata", "subj01", "func1pt8mm", "roi", "nsdgeneral.nii.gz"))

    def betas_path(self, session: int, suffix: str) -> Path:
        return self.p("nsddata_betas", "ppdata", "subj01", "func1pt8mm", "betas_fithrf_GLMdenoise_RR",
                      f"betas_session{session:02d}.{suffix}")

    def write_betas(self, betas_format: str):
        for session, raw in enumerate(self.raw, 1):
            if betas_format == "hdf5":
                with h5py.File(self.betas_path(session, "hdf5"), "w") as f:
                    f.create_dataset("betas", data=raw.transpose(3, 2, 1, 0))  # (trials, Z, Y, X)
            else:
                nib.save(nib.Nifti1Image(raw, np.eye(4)), self.betas_path(session, "nii.gz"))


@pytest.fixture
def mini_nsd(tmp_path):
    return MiniNSD(tmp_path / "nsd")


@pytest.fixture
def mini_nsd_hdf5(tmp_path):
    return MiniNSD(tmp_path / "nsd_h5", betas_format="hdf5")
