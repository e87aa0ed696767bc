"""The simulated NSD: procedural scenes, four simulated subjects, written in the official layout.

The simulated brain uses its own encoding model, built on scene attributes and simple image
statistics, never on the decoders' targets (VAE latents, CLIP, BLIP, DPT, VGG features):

* early voxels (``early``): population receptive fields over local luminance, colour opponency
  (red-green, blue-yellow) and contrast of a 16 x 16 version of the image;
* ventral voxels (``ventral``): tuning to object identity, colour, their conjunctions and the
  background category;
* lateral and parietal voxels (``lateral``, ``parietal``): tuning to where objects are, how big
  they are and how far away (a coarse occupancy map, size, a coarse depth map, horizon);
* the ``mid*`` streams mix early tuning with that of their higher neighbour.

Each voxel's response is a fixed random weighting of its features, z-scored over images (its
signal, unit variance). Its single-trial noise is set by a noise-ceiling SNR drawn per voxel
(:func:`draw_ncsnr`), calibrated to NSD's: ``ncsnr`` is the signal sd over the trial-noise sd, as
NSD defines it (Allen et al. 2022; :mod:`recon.noise_ceiling` measures it), so a trial is
``signal + noise / ncsnr``; it is written scaled by ``ncsnr / sqrt(1 + ncsnr**2)`` to unit
variance, ``(ncsnr * signal + noise) / sqrt(1 + ncsnr**2)``, so a voxel with ncsnr 0 carries pure
noise rather than an infinite noise sd, and every voxel's betas have the same scale whatever its
ncsnr, as NSD's percent-signal-change betas do. Each voxel's ncsnr is
``max(0, Normal(m, 0.952 m))`` with ``m`` its subject's median ncsnr over nsdgeneral in NSD
(betas_fithrf_GLMdenoise_RR, 1.8 mm; subj01 0.361, subj02 0.361, subj05 0.415, subj07 0.281),
the rectification being NSD's own (its estimator clips ``1 - noisesd**2`` at 0); the spread is
fitted to subj01's median and mean (0.361, 0.387), and about 15% of the voxels (ncsnr 0) are
untuned. See :data:`NSD_NCSNR_MEDIAN` for the sources. On top, every trial gets a per-session
offset and gain, so the betas drift between sessions as the real data's do (what per-session
z-scoring removes). Betas are
written as int16 of 300 x value, in both of NSD's formats: ``betas_sessionNN.nii.gz`` (X, Y, Z,
trials) and ``betas_sessionNN.hdf5`` (dataset ``betas``, (trials, Z, Y, X), the transpose), as
NSD ships them, because readers differ in the one they open (``NSDAccess`` opens only the HDF5
for ``func1pt8mm``).

What else NSD ships and readers depend on, written so that code that knows only NSD's data
manual runs on the tree:

* ``nsddata/ppdata/subjNN/behav/responses.tsv``: one row per trial, NSD's 19 columns (see
  :func:`behaviour_table`). SUBJECT, SESSION, RUN, TRIAL, 73KID, 10KID and the memory columns
  (ISOLD, MEMORYRECENT, MEMORYFIRST, ISOLDCURRENT) follow exactly from the design. The toy has no
  model of the old/new task, so the button presses and what follows from them (ISCORRECT, RT,
  CHANGEMIND, ISCORRECTCURRENT, TOTAL1, TOTAL2, BUTTON, MISSINGDATA) and the clock (TIME) are
  simulated plausible values, from a random stream of their own.
* ``nsd_stim_info_merged.csv`` with NSD's columns (an unnamed index, cocoId, cocoSplit, cropBox,
  loss, nsdId, flagged, BOLD5000, shared1000, subject1..8, subjectN_repK). ``subjectN_repK`` is
  exact (the 1-based trial of the K-th showing, 0 if never shown); the toy renders square images
  and has no COCO annotations or BOLD5000, so cropBox, loss and BOLD5000 are simulated plausible
  values and no image is flagged.

Sessions are smaller than NSD's 750 trials (``trials_per_session``) but keep NSD's 12 runs, split
as NSD splits them (odd runs one trial longer where the trials do not divide evenly; see
:func:`run_lengths`).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import scipy.io
from tqdm.auto import tqdm

from . import scenes as sc
from ..config import SUBJECTS, STREAMS_ROIS
from ..nsd import BETA_SCALE, BETAS_DIR

COMPLETE_MARKER = ".complete.json"
#: Version of what the simulator writes; a tree written by another version is not reused.
#: 2: HDF5 betas, responses.tsv and NSD's full stim info columns.
LAYOUT_VERSION = 2
NSD_SUBJECT_COUNT = 8  # the expdesign and stim info cover all of NSD's subjects, simulated or not
STREAM_VALUES = {name: value for value, name in enumerate(STREAMS_ROIS, start=1)}
RUNS_PER_SESSION = 12  # NSD: 12 runs a session, 63 stimulus trials in odd runs and 62 in even ones
NSD_REPETITIONS = 3  # NSD's stim info has subjectN_rep0..rep2 whatever the toy's repetitions
#: Seeds of the random streams kept apart from the brain's, so adding what NSD ships left the
#: simulated betas, images and design of a seed exactly as they were.
BEHAVIOUR_STREAM, STIM_INFO_STREAM = 13, 14
#: Seed of each subject's voxel ncsnr draws, kept apart so the brain's stream draws what it did.
NCSNR_STREAM = 15
#: Median ncsnr over the nsdgeneral voxels of NSD's betas_fithrf_GLMdenoise_RR at 1.8 mm (3
#: repetitions), per subject, computed from NSD's released ``ncsnr.nii.gz`` and the subject's
#: ``nsdgeneral.nii.gz`` in brain-score/vision,
#: ``brainscore_vision/data/allen2022_fmri/data_packaging/notebooks/volumetric/
#: 01_nsd_data_exploration.ipynb`` (commit f2ded55): "subj01: nsdgeneral voxels=15,724, median
#: ncsnr=0.361, median NC=28.1%" ... subj02 0.361, subj05 0.415, subj07 0.281 (subj03 0.324,
#: subj04 0.296, subj06 0.343, subj08 0.226; mean of the per-subject median noise ceilings 24.2%).
#: Allen et al. 2022 publish the same ranking on the cortical surface (fsaverage nsdgeneral, the
#: authors' cvnlab/nsddatapaper ``mainfigures/MAPOFSIGNAL/MAPOFSIGNALnotes.m``: median ncsnr 0.490,
#: 0.510, 0.542, 0.371 for subj01, 02, 05, 07; mean median noise ceiling 36.2%), higher than the
#: volume's because the surface has no partial-volume voxels; the toy writes 1.8 mm volumes, so it
#: takes the volume's numbers.
NSD_NCSNR_MEDIAN = {"subj01": 0.361, "subj02": 0.361, "subj05": 0.415, "subj07": 0.281}
#: Published surface medians (Allen et al. 2022, see above), shown beside the volume's in the book.
NSD_SURFACE_NCSNR_MEDIAN = {"subj01": 0.490, "subj02": 0.510, "subj05": 0.542, "subj07": 0.371}
#: sd of the normal under the rectification, over its median. The one subject with a published
#: mean is subj01 (same notebook: "ncsnr in nsdgeneral: median=0.3608, mean=0.3868"); the mean of
#: max(0, Normal(m, s)) is m Phi(m/s) + s phi(m/s), which equals 0.3868 at m = 0.3608 for
#: s = 0.3436, so s / m = 0.952. The other subjects keep that shape, scaled to their median (no
#: other spread is published). P(ncsnr = 0) = Phi(-1 / 0.952) = 14.7%.
NCSNR_SD_OVER_MEDIAN = 0.952
#: responses.tsv's columns, in NSD's order
BEHAVIOUR_COLUMNS = (
    "SUBJECT", "SESSION", "RUN", "TRIAL", "73KID", "10KID", "TIME", "ISOLD", "ISCORRECT", "RT", "CHANGEMIND",
    "MEMORYRECENT", "MEMORYFIRST", "ISOLDCURRENT", "ISCORRECTCURRENT", "TOTAL1", "TOTAL2", "BUTTON", "MISSINGDATA",
)


@dataclass(frozen=True)
class SubjectSpec:
    grid: tuple[int, int, int]  # (X, Y, Z) voxels of the functional volume
    ncsnr_median: float  # median over voxels of the noise-ceiling SNR (signal sd / trial-noise sd)


@dataclass(frozen=True)
class SimulationConfig:
    seed: int = 0
    image_size: int = 64
    n_shared: int = 100
    n_train: int = 1000  # per subject, each of NSD's 8 subjects gets its own images
    repetitions: int = 3
    trials_per_session: int = 150
    subjects: dict = field(
        default_factory=lambda: {
            "subj01": SubjectSpec((16, 20, 16), NSD_NCSNR_MEDIAN["subj01"]),
            "subj02": SubjectSpec((16, 19, 15), NSD_NCSNR_MEDIAN["subj02"]),
            "subj05": SubjectSpec((15, 19, 15), NSD_NCSNR_MEDIAN["subj05"]),
            "subj07": SubjectSpec((15, 18, 14), NSD_NCSNR_MEDIAN["subj07"]),
        }
    )
    overlap_fraction: float = 0.07  # test images flagged as "seen in the generator's training data"

    @property
    def images_per_subject(self) -> int:
        return self.n_shared + self.n_train

    @property
    def n_stimuli(self) -> int:
        """Images in the stimulus brick: the shared ones plus every NSD subject's own."""
        return self.n_shared + NSD_SUBJECT_COUNT * self.n_train

    @property
    def n_sessions(self) -> int:
        trials = self.images_per_subject * self.repetitions
        if trials % self.trials_per_session:
            raise ValueError(
                f"{trials} trials do not fill sessions of {self.trials_per_session}; "
                "choose n_shared + n_train and repetitions so they do"
            )
        return trials // self.trials_per_session

    def bytes_upper_bound(self) -> int:
        """At most how many bytes the tree takes on disk: its arrays uncompressed (the images, the float32 depth
        maps, every subject's int16 betas twice, as NIfTI and as HDF5), plus 5% and 16 MB for chunk overheads
        and the tables. The default tree takes 162 MiB against this bound's 483 MiB: gzip shrinks the betas
        threefold and the depth maps twentyfold."""
        side = self.image_size * self.image_size
        arrays = self.n_stimuli * side * (3 + 4)
        for spec in self.subjects.values():
            arrays += 2 * int(np.prod(spec.grid)) * self.trials_per_session * self.n_sessions * 2
        return int(arrays * 1.05) + 16 * 2**20

    def write(self, root, progress: bool = True) -> Path:
        """Write this simulated NSD under ``root`` (:class:`recon.config.Simulation`, which the experiment calls)."""
        return simulate_nsd(root, self, progress=progress)

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "subjects"}
        out["subjects"] = {s: {"grid": list(v.grid), "ncsnr_median": v.ncsnr_median}
                           for s, v in self.subjects.items()}
        out["ncsnr_model"] = {"distribution": "max(0, normal)", "sd_over_median": NCSNR_SD_OVER_MEDIAN}
        return out


# --------------------------------------------------------------------------- the brain
def _early_channels(images: np.ndarray, grid: int = 16) -> np.ndarray:
    """(n, 4, grid*grid) luminance, red-green, blue-yellow and local contrast maps."""
    n, h, w, _ = images.shape
    x = images.astype(np.float32).reshape(n, grid, h // grid, grid, w // grid, 3).mean(axis=(2, 4)) / 255
    lum = x.mean(-1)
    rg = x[..., 0] - x[..., 1]
    by = x[..., 2] - 0.5 * (x[..., 0] + x[..., 1])
    padded = np.pad(lum, ((0, 0), (1, 1), (1, 1)), mode="edge")
    local_mean = sum(padded[:, i : i + grid, j : j + grid] for i in range(3) for j in range(3)) / 9
    contrast = np.abs(lum - local_mean)
    return np.stack([lum, rg, by, contrast], axis=1).reshape(n, 4, grid * grid)


def _semantic_features(scene_list) -> np.ndarray:
    """Which object categories and colours are present, their conjunctions, the background and the count."""
    colours = list(sc.COLORS)
    rows = []
    for scene in scene_list:
        category = np.zeros(len(sc.CATEGORIES))
        color = np.zeros(len(colours))
        conj = np.zeros((len(sc.CATEGORIES), len(colours)))
        for obj in scene.objects:
            k, c = sc.CATEGORIES.index(obj.category), colours.index(obj.color)
            category[k] = color[c] = conj[k, c] = 1
        background = np.array([scene.background == b for b in sc.BACKGROUNDS], dtype=float)
        rows.append(np.concatenate([category, color, conj.ravel(), background, [len(scene.objects)]]))
    return np.array(rows)


def _spatial_features(scene_list, depths: np.ndarray, grid: int = 4) -> np.ndarray:
    n, h, w = depths.shape
    coarse_depth = 1 - depths.reshape(n, grid, h // grid, grid, w // grid).mean(axis=(2, 4)).reshape(n, -1)
    rows = []
    for scene in scene_list:
        occupancy = np.zeros((grid, grid))
        sizes, nearness = [], []
        for obj in scene.objects:
            cx, cy, r = sc.object_geometry(obj, scene.horizon)
            gx, gy = min(int(cx * grid), grid - 1), min(int(cy * grid), grid - 1)
            occupancy[gy, gx] += r * 8
            sizes.append(r)
            nearness.append(1 - obj.depth)
        rows.append(np.concatenate([occupancy.ravel(), [max(sizes), np.mean(nearness), scene.horizon]]))
    return np.concatenate([np.array(rows), coarse_depth], axis=1)


def draw_ncsnr(median: float, n_voxels: int, rng) -> np.ndarray:
    """Each voxel's noise-ceiling SNR: ``max(0, Normal(median, NCSNR_SD_OVER_MEDIAN * median))``.

    The median is the subject's (:data:`NSD_NCSNR_MEDIAN`), the spread fitted to NSD's subj01
    (:data:`NCSNR_SD_OVER_MEDIAN`); the voxels the rectification sets to 0 (14.7%) are untuned.
    """
    if not median > 0:
        raise ValueError(f"the median ncsnr must be positive, got {median}")
    return np.maximum(0.0, rng.normal(median, NCSNR_SD_OVER_MEDIAN * median, n_voxels))


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0, keepdims=True)
    return (x - x.mean(axis=0, keepdims=True)) / np.where(sd == 0, 1, sd)


def voxel_responses(rois: np.ndarray, images, scene_list, depths, rng) -> np.ndarray:
    """Noise-free responses (n_images, n_voxels), unit variance per voxel, for each voxel's ROI label."""
    n_images = len(images)
    early = _early_channels(images)
    semantic = _semantic_features(scene_list)
    spatial = _spatial_features(scene_list, depths)
    n_pix = early.shape[-1]
    grid = int(np.sqrt(n_pix))
    gy, gx = np.mgrid[0:grid, 0:grid]

    def prf_block(n_vox):
        centres = rng.uniform(0, grid - 1, (n_vox, 2))
        sigma = rng.uniform(0.8, 2.5, (n_vox, 1))
        field = np.exp(-((gx.ravel() - centres[:, :1]) ** 2 + (gy.ravel() - centres[:, 1:]) ** 2) / (2 * sigma**2))
        field /= field.sum(axis=1, keepdims=True)
        weights = rng.normal(0, 1, (n_vox, 4)) * np.array([1.0, 0.8, 0.8, 0.6])
        return np.einsum("ncp,vp,vc->nv", early, field, weights)

    def tuned_block(features, n_vox, sparsity):
        weights = rng.normal(0, 1, (features.shape[1], n_vox)) * (rng.random((features.shape[1], n_vox)) < sparsity)
        return features @ weights

    out = np.zeros((n_images, len(rois)))
    for name in STREAMS_ROIS:
        columns = np.flatnonzero(rois == STREAM_VALUES[name])
        k = len(columns)
        if k == 0:
            continue
        if name == "early":
            block = prf_block(k)
        elif name == "ventral":
            block = tuned_block(semantic, k, 0.3)
        elif name in ("lateral", "parietal"):
            block = tuned_block(spatial, k, 0.35)
        else:  # mid streams: early-like tuning mixed with their higher neighbour
            higher = semantic if name == "midventral" else spatial
            block = 0.6 * _zscore(prf_block(k)) + 0.8 * _zscore(tuned_block(higher, k, 0.3))
        out[:, columns] = _zscore(block)
    return out


def _roi_volume(grid, rng) -> tuple[np.ndarray, np.ndarray]:
    """(streams labels, nsdgeneral mask) over the grid: an ellipsoid split posterior to anterior."""
    nx, ny, nz = grid
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in grid), indexing="ij")
    general = (x**2 + y**2 + z**2) <= 0.95
    yn = (y + 1) / 2  # 0 posterior .. 1 anterior
    zn = (z + 1) / 2  # 0 inferior .. 1 superior
    band = np.digitize(zn, [1 / 3, 2 / 3])  # 0 ventral, 1 lateral, 2 parietal
    labels = np.where(
        yn < 0.3,
        STREAM_VALUES["early"],
        np.where(yn < 0.5, np.choose(band, [2, 3, 4]), np.choose(band, [5, 6, 7])),
    )
    labels = np.where(general & (np.abs(x) < 0.9), labels, 0).astype(np.int16)
    return labels, general


# ---------------------------------------------------------------------------- writing
def _atomic_dir(target: Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))


def _affine() -> np.ndarray:
    return np.diag([1.8, 1.8, 1.8, 1.0])


#: the MAT v5 header's free-text description (116 bytes): scipy writes the creation time there, which made two
#: simulations of one seed differ in this file, so in the dataset's fingerprint and every cache key
MAT_DESCRIPTION = b"MATLAB 5.0 MAT-file, written by recon.toy.simulate".ljust(116)


def write_mat(path: Path, arrays: dict) -> None:
    """``scipy.io.savemat`` with a header that does not depend on when it was written."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, arrays)
    data = buffer.getvalue()
    if not data.startswith(b"MATLAB 5.0 MAT-file"):
        raise RuntimeError(f"scipy wrote an unexpected MAT header: {data[:40]!r}")
    path.write_bytes(MAT_DESCRIPTION + data[len(MAT_DESCRIPTION):])


def simulate_nsd(root, config: SimulationConfig | None = None, progress: bool = True) -> Path:
    """Write a simulated NSD tree at ``root`` (atomically) and return its path.

    An existing complete tree made with the same configuration is reused; anything else at
    ``root`` is refused rather than overwritten.
    """
    config = config or SimulationConfig()
    root = Path(root)
    marker = root / COMPLETE_MARKER
    if marker.is_file():
        recorded = json.loads(marker.read_text())
        if recorded.get("config") != config.as_dict():
            raise FileExistsError(f"{root} holds a simulated NSD made with another configuration; remove it first")
        if recorded.get("layout", 1) != LAYOUT_VERSION:
            raise FileExistsError(
                f"{root} holds a simulated NSD of layout {recorded.get('layout', 1)}, this simulator writes "
                f"layout {LAYOUT_VERSION} (HDF5 betas, responses.tsv); remove it first"
            )
        return root
    if root.exists():
        raise FileExistsError(f"{root} exists but is not a complete simulated NSD; remove it first")

    _check_room(root, config)
    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    staging = _atomic_dir(root)
    try:
        _write_tree(staging, config, rng, progress)
        (staging / COMPLETE_MARKER).write_text(
            json.dumps({"config": config.as_dict(), "layout": LAYOUT_VERSION,
                        "seconds": round(time.perf_counter() - start, 2)}, indent=1)
        )
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def _check_room(root: Path, config: SimulationConfig) -> None:
    """Refuse, in one line, to start a tree the disk has no room for: h5py, writing on a full disk, ended in a
    traceback and then a segmentation fault (exit 139) as it closed its files."""
    from ..cache import CacheFullError

    folder = next(p for p in (root.parent, *root.parents) if p.exists())
    needed, free = config.bytes_upper_bound(), shutil.disk_usage(folder).free
    if free < needed:
        raise CacheFullError(f"no space left for the simulated NSD {root}: it takes up to {needed:,} bytes and "
                             f"{free:,} are free under {folder}; free some space or move the cache (RECON_CACHE, "
                             f"or --cache)")


def _write_tree(root: Path, config: SimulationConfig, rng: np.random.Generator, progress: bool) -> None:
    n_total = config.n_stimuli
    scene_list = [sc.sample_scene(rng) for _ in range(n_total)]
    rendered = [sc.render(s, config.image_size) for s in tqdm(scene_list, desc="render scenes", disable=not progress)]
    images = np.stack([r[0] for r in rendered])
    depths = np.stack([r[1] for r in rendered])

    # ids: shared images are scattered through the 73k-style index, like NSD's shared1000
    permutation = rng.permutation(n_total)
    shared_ids = np.sort(permutation[: config.n_shared])
    subject_ids = permutation[config.n_shared :].reshape(NSD_SUBJECT_COUNT, config.n_train)
    subjectim = np.concatenate([np.tile(shared_ids, (NSD_SUBJECT_COUNT, 1)), subject_ids], axis=1)
    n_trials = config.images_per_subject * config.repetitions
    masterordering = np.concatenate([rng.permutation(config.images_per_subject) for _ in range(config.repetitions)])
    assert len(masterordering) == n_trials

    experiments = root / "nsddata" / "experiments" / "nsd"
    experiments.mkdir(parents=True)
    write_mat(experiments / "nsd_expdesign.mat", {
        "masterordering": (masterordering + 1)[None, :].astype(np.float64),
        "subjectim": (subjectim + 1).astype(np.float64),
        "sharedix": (shared_ids + 1)[None, :].astype(np.float64),
    })
    coco_ids = rng.choice(np.arange(100_000, 600_000), size=n_total, replace=False)
    splits = np.where(rng.random(n_total) < 0.85, "train2017", "val2017")
    info = stim_info_table(coco_ids, splits, shared_ids, subjectim, masterordering,
                           np.random.default_rng([config.seed, STIM_INFO_STREAM]))
    info.to_csv(experiments / "nsd_stim_info_merged.csv")  # NSD's file starts with an unnamed index

    stimuli = root / "nsddata_stimuli" / "stimuli" / "nsd"
    (stimuli / "annotations").mkdir(parents=True)
    with h5py.File(stimuli / "nsd_stimuli.hdf5", "w") as f:
        f.create_dataset("imgBrick", data=images, chunks=(1, *images.shape[1:]), compression="gzip", compression_opts=4)
    caption_rng = np.random.default_rng(config.seed + 1)
    for split in ("train2017", "val2017"):
        annotations = []
        for nsd_id in np.flatnonzero(splits == split):
            for text in sc.captions(scene_list[nsd_id], caption_rng):
                annotations.append({"image_id": int(coco_ids[nsd_id]), "id": len(annotations), "caption": text})
        (stimuli / "annotations" / f"captions_{split}.json").write_text(json.dumps({"annotations": annotations}))

    labels_dir = root / "nsddata" / "freesurfer" / "fsaverage" / "label"
    labels_dir.mkdir(parents=True)
    ctab = ["0 Unknown 0 0 0 0"] + [f"{v} {name} {40 * v} {255 - 30 * v} {20 * v} 0" for name, v in STREAM_VALUES.items()]
    (labels_dir / "streams.mgz.ctab").write_text("\n".join(ctab) + "\n")
    (labels_dir / "nsdgeneral.mgz.ctab").write_text("0 Unknown 0 0 0 0\n1 nsdgeneral 255 255 255 0\n")

    # ground truth that NSD does not have, kept apart from the official layout
    extras = root / "toy_extras"
    extras.mkdir()
    pd.DataFrame([sc.attributes(s) for s in scene_list]).rename_axis("nsdId").to_csv(extras / "scenes.csv")
    with h5py.File(extras / "depth.hdf5", "w") as f:
        f.create_dataset("depth", data=depths, chunks=(1, *depths.shape[1:]), compression="gzip")
    n_overlap = max(1, int(round(config.overlap_fraction * config.n_shared)))
    overlap = np.sort(rng.choice(shared_ids, size=n_overlap, replace=False))
    pd.DataFrame({"nsdId": overlap}).to_csv(extras / "overlap_nsd_ids.csv", index=False)

    for name, spec in tqdm(config.subjects.items(), desc="simulate subjects", disable=not progress):
        number = int(name[4:])
        _write_subject(root, name, spec, subjectim[number - 1], masterordering, images, scene_list, depths, config, rng)
        behav = root / "nsddata" / "ppdata" / name / "behav"
        behav.mkdir(parents=True)
        table = behaviour_table(number, subjectim[number - 1], masterordering, config.trials_per_session,
                                np.random.default_rng([config.seed, BEHAVIOUR_STREAM, number]))
        table.to_csv(behav / "responses.tsv", sep="\t", index=False, na_rep="NaN", float_format="%.10g")


def _write_subject(root, name, spec, subject_ids, masterordering, images, scene_list, depths, config, rng):
    labels, general = _roi_volume(spec.grid, rng)
    roi_dir = root / "nsddata" / "ppdata" / name / "func1pt8mm" / "roi"
    roi_dir.mkdir(parents=True)
    nib.save(nib.Nifti1Image(labels, _affine()), roi_dir / "streams.nii.gz")
    nib.save(nib.Nifti1Image(general.astype(np.int16), _affine()), roi_dir / "nsdgeneral.nii.gz")

    mask = general
    voxel_labels = labels[mask]
    ids = np.asarray(subject_ids)
    signal = voxel_responses(
        voxel_labels, images[ids], [scene_list[i] for i in ids], depths[ids], rng
    )  # (images_per_subject, voxels)
    betas_dir = root / "nsddata_betas" / "ppdata" / name / "func1pt8mm" / BETAS_DIR
    betas_dir.mkdir(parents=True)
    n_vox = signal.shape[1]
    amplitude = rng.uniform(1.0, 3.0, n_vox)  # percent signal change scale per voxel
    ncsnr = draw_ncsnr(spec.ncsnr_median, n_vox, np.random.default_rng([config.seed, NCSNR_STREAM, int(name[4:])]))
    # signal + noise / ncsnr, scaled to unit variance: no division, so ncsnr = 0 is pure noise
    norm = np.sqrt(1 + ncsnr**2)
    signal_weight, noise_weight = ncsnr / norm, 1 / norm
    for session in range(config.n_sessions):
        rows = masterordering[session * config.trials_per_session : (session + 1) * config.trials_per_session]
        offset = rng.normal(0, 1.0, n_vox)
        gain = rng.uniform(0.8, 1.25, n_vox)
        noise = rng.normal(0, 1.0, (len(rows), n_vox))
        values = amplitude * gain * (signal_weight * signal[rows] + noise_weight * noise) + offset
        scaled = np.rint(values * BETA_SCALE)
        # A trial has unit variance before the amplitude (<= 3), gain (<= 1.25) and offset (sd 1):
        # int16 / 300 holds +-109, over 25 sd, so this never fires on a sane configuration; if it
        # does, it fails rather than clipping betas silently.
        if np.abs(scaled).max() > np.iinfo(np.int16).max:
            raise OverflowError(f"{name} session {session + 1}: a beta of {np.abs(values).max():.1f} does not fit "
                                f"int16 x {BETA_SCALE} (|beta| <= {np.iinfo(np.int16).max / BETA_SCALE:.1f})")
        volume = np.zeros((*spec.grid, len(rows)), dtype=np.int16)
        volume[mask] = scaled.astype(np.int16).T
        nib.save(nib.Nifti1Image(volume, _affine()), betas_dir / f"betas_session{session + 1:02d}.nii.gz")
        _write_hdf5_betas(betas_dir / f"betas_session{session + 1:02d}.hdf5", volume)


def _write_hdf5_betas(path: Path, volume: np.ndarray) -> None:
    """NSD's HDF5 betas: dataset ``betas``, (trials, Z, Y, X) int16, the transpose of the NIfTI volume.

    One chunk per trial, so a reader of some trials reads only those; gzip is built into every HDF5
    library, so any reader opens it, and it keeps the file the size of the ``.nii.gz``.
    """
    data = volume.transpose(3, 2, 1, 0)
    with h5py.File(path, "w") as f:
        f.create_dataset("betas", data=data, chunks=(1, *data.shape[1:]), compression="gzip", compression_opts=4)


# ---------------------------------------------------------------- what NSD ships beside
def run_lengths(trials_per_session: int) -> np.ndarray:
    """Stimulus trials in each run of a session: NSD's 12 runs, split as NSD splits its 750.

    NSD's runs hold 63 (odd runs) and 62 (even runs) stimulus trials. A smaller session keeps the
    12 runs (or one run per trial if it has fewer than 12) and divides its trials as evenly as
    possible, the extra trials going to odd runs first: 750 gives NSD's 63/62, the toy's 150 gives
    13/12, 100 gives runs 1, 3, 5, 7 of 9 and the rest of 8.
    """
    n_runs = min(RUNS_PER_SESSION, trials_per_session)
    base, extra = divmod(trials_per_session, n_runs)
    lengths = np.full(n_runs, base)
    odd_first = np.concatenate([np.arange(0, n_runs, 2), np.arange(1, n_runs, 2)])  # runs 1, 3, ..., then 2, 4, ...
    lengths[odd_first[:extra]] += 1
    return lengths


def _memory_columns(nsd_ids: np.ndarray, session: np.ndarray) -> dict[str, np.ndarray]:
    """ISOLD, MEMORYRECENT, MEMORYFIRST, ISOLDCURRENT: exact, from the order of presentation.

    MEMORYRECENT (MEMORYFIRST) counts the stimulus trials between this one and the most recent
    (first) showing of the image, NaN on its first showing; ISOLDCURRENT says whether the image
    was shown earlier in the same session.
    """
    n = len(nsd_ids)
    recent, first = np.full(n, np.nan), np.full(n, np.nan)
    old_current = np.zeros(n, dtype=int)
    last_seen: dict[int, int] = {}
    first_seen: dict[int, int] = {}
    for t, image in enumerate(nsd_ids.tolist()):
        if image in last_seen:
            recent[t] = t - last_seen[image] - 1
            first[t] = t - first_seen[image] - 1
            old_current[t] = int(session[last_seen[image]] == session[t])
        else:
            first_seen[image] = t
        last_seen[image] = t
    return {"ISOLD": (~np.isnan(recent)).astype(int), "MEMORYRECENT": recent, "MEMORYFIRST": first,
            "ISOLDCURRENT": old_current}


def _simulated_responses(memory: dict[str, np.ndarray], run_id: np.ndarray, rng) -> dict[str, np.ndarray]:
    """Plausible old/new button presses; the toy has no model of the task, so these are invented.

    The subject says "old" with a probability that falls with the trials since the last showing
    (a forgetting curve from 0.95 to 0.55) and false-alarms on 15% of new images; 1.5% of trials
    get no press, 3% a change of mind (one press of the other button first). On 0.5% of runs the
    button box "fails": no response is recorded and MISSINGDATA is 1. BUTTON is the final press
    (1 = new, 2 = old), TOTAL1 and TOTAL2 count the presses of each button, RT (ms) is log-normal
    around 900 ms, and ISCORRECT / ISCORRECTCURRENT score the final press against ISOLD /
    ISOLDCURRENT. Trials without a press have NaN BUTTON, RT, CHANGEMIND and correctness.
    """
    n = len(run_id)
    is_old = memory["ISOLD"].astype(bool)
    p_old = np.where(is_old, 0.55 + 0.4 * np.exp(-np.nan_to_num(memory["MEMORYRECENT"]) / 500), 0.15)
    says_old = rng.random(n) < p_old
    failed_runs = rng.random(run_id.max() + 1) < 0.005
    missing = failed_runs[run_id]
    pressed = (rng.random(n) >= 0.015) & ~missing
    change = (rng.random(n) < 0.03) & pressed
    rt = np.clip(np.rint(900 * np.exp(rng.normal(0, 0.3, n))), 250, 3999)
    button = np.where(says_old, 2.0, 1.0)
    nan_unless_pressed = lambda values: np.where(pressed, values, np.nan)  # noqa: E731
    return {
        "ISCORRECT": nan_unless_pressed(says_old == is_old),
        "RT": nan_unless_pressed(rt),
        "CHANGEMIND": nan_unless_pressed(change),
        "ISCORRECTCURRENT": nan_unless_pressed(says_old == memory["ISOLDCURRENT"].astype(bool)),
        "TOTAL1": np.where(pressed, np.where(says_old, change, 1), 0).astype(int),
        "TOTAL2": np.where(pressed, np.where(says_old, 1, change), 0).astype(int),
        "BUTTON": nan_unless_pressed(button),
        "MISSINGDATA": missing.astype(int),
    }


def _trial_times(session: np.ndarray, run: np.ndarray, trial: np.ndarray, rng) -> np.ndarray:
    """TIME, invented: a MATLAB-style day count from midnight of the first session's day.

    Sessions a week apart (give or take two days) start at 9:00; runs start 6 minutes apart and
    trials 4 s apart (NSD's 3 s image and 1 s gap; NSD's blank trials are not simulated).
    """
    n_sessions = int(session.max())
    days = 7.0 * np.arange(n_sessions) + np.concatenate([[0], rng.integers(-2, 3, n_sessions - 1)])
    seconds = 9 * 3600 + (run - 1) * 360 + (trial - 1) * 4
    return days[session - 1] + seconds / 86400


def behaviour_table(number: int, subject_row: np.ndarray, masterordering: np.ndarray, trials_per_session: int,
                    rng) -> pd.DataFrame:
    """``responses.tsv`` of one subject: a row per trial in NSD's columns; ids are 1-based as in NSD.

    ``subject_row`` is the subject's 0-based row of ``subjectim`` and ``masterordering`` the 0-based
    design; 73KID and 10KID follow from them exactly, so the file agrees with ``nsd_expdesign.mat``.
    """
    n = len(masterordering)
    lengths = run_lengths(trials_per_session)
    position = np.arange(n)
    session = position // trials_per_session + 1
    run = np.tile(np.repeat(np.arange(1, len(lengths) + 1), lengths), n // trials_per_session)
    trial = np.tile(np.concatenate([np.arange(1, k + 1) for k in lengths]), n // trials_per_session)
    nsd_ids = np.asarray(subject_row)[masterordering]
    memory = _memory_columns(nsd_ids, session)
    columns = {
        "SUBJECT": np.full(n, number),
        "SESSION": session,
        "RUN": run,
        "TRIAL": trial,
        "73KID": nsd_ids + 1,
        "10KID": masterordering + 1,
        "TIME": _trial_times(session, run, trial, rng),
        **memory,
        **_simulated_responses(memory, (session - 1) * len(lengths) + run - 1, rng),
    }
    return pd.DataFrame({name: columns[name] for name in BEHAVIOUR_COLUMNS})


def _presentation_trials(nsd_ids: np.ndarray, n_stimuli: int, repetitions: int) -> np.ndarray:
    """(n_stimuli, repetitions): the 1-based trial of each image's K-th showing, 0 where it has none."""
    out = np.zeros((n_stimuli, repetitions), dtype=int)
    shown = np.zeros(n_stimuli, dtype=int)
    for t, image in enumerate(nsd_ids.tolist()):
        if shown[image] < repetitions:
            out[image, shown[image]] = t + 1
        shown[image] += 1
    return out


def stim_info_table(coco_ids, splits, shared_ids, subjectim, masterordering, rng) -> pd.DataFrame:
    """``nsd_stim_info_merged.csv`` in NSD's columns, one row per 73k id (0-based ``nsdId``).

    cropBox is (top, bottom, left, right), the fractions cropped from a 4:3 COCO photograph
    (landscape three times in four) to make it square; loss, the fraction of annotated object area
    the crop removed, is a small invented number; BOLD5000 marks an invented 2% of images; none is
    flagged. subjectN_repK is exact: the subject's 1-based trial of the image's K-th showing, 0 if
    it is never shown that often.
    """
    n = len(coco_ids)
    landscape = rng.random(n) < 0.75
    first_side = np.round(0.25 * rng.uniform(0.3, 0.7, n), 7)
    second_side = np.round(0.25 - first_side, 7)
    zeros = np.zeros(n)
    top, bottom = np.where(landscape, zeros, first_side), np.where(landscape, zeros, second_side)
    left, right = np.where(landscape, first_side, zeros), np.where(landscape, second_side, zeros)
    info = pd.DataFrame({
        "cocoId": coco_ids,
        "cocoSplit": splits,
        "cropBox": [f"({a:g}, {b:g}, {c:g}, {d:g})" for a, b, c, d in zip(top, bottom, left, right)],
        "loss": np.round(rng.beta(1, 20, n), 4),
        "nsdId": np.arange(n),
        "flagged": np.zeros(n, dtype=bool),
        "BOLD5000": rng.random(n) < 0.02,
        "shared1000": np.isin(np.arange(n), shared_ids),
    })
    for s in range(len(subjectim)):
        info[f"subject{s + 1}"] = np.isin(info["nsdId"], subjectim[s]).astype(int)
    repetitions = max(NSD_REPETITIONS, int(np.bincount(masterordering).max()))
    for s in range(len(subjectim)):
        trials = _presentation_trials(np.asarray(subjectim[s])[masterordering], n, repetitions)
        for k in range(repetitions):
            info[f"subject{s + 1}_rep{k}"] = trials[:, k]
    return info


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write the simulated NSD tree")
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=SimulationConfig.n_train)
    parser.add_argument("--n-shared", type=int, default=SimulationConfig.n_shared)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    simulate_nsd(args.root, SimulationConfig(seed=args.seed, n_train=args.n_train, n_shared=args.n_shared))
    print(f"wrote {args.root} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
