"""The one reader of the Natural Scenes Dataset's official file layout.

It serves the real NSD and the simulated toy tree alike. Everything is read lazily and in
chunks: one session of betas at a time, images by index, never all 73k stimuli.

Layout (paths relative to the NSD root)::

    nsddata/experiments/nsd/nsd_expdesign.mat        masterordering, subjectim, sharedix (1-based)
    nsddata/experiments/nsd/nsd_stim_info_merged.csv
    nsddata/freesurfer/fsaverage/label/<atlas>.mgz.ctab   label value -> ROI name
    nsddata/ppdata/subjNN/func1pt8mm/roi/<atlas>.nii.gz   (X, Y, Z) integer labels
    nsddata/ppdata/subjNN/behav/responses.tsv        one row per trial, 73KID 1-based (optional:
                                                     checked against the design where present)
    nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR/
        betas_sessionNN.hdf5    dataset ``betas`` (trials, Z, Y, X) int16, or
        betas_sessionNN.nii.gz  (X, Y, Z, trials) int16; both are beta * 300
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5     dataset ``imgBrick`` (73000, H, W, 3) uint8
    nsddata_stimuli/stimuli/nsd/annotations/captions_{train,val}2017.json   COCO captions
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import scipy.io

from .cache import file_sha256 as _file_sha256
from .config import ConfigError, check_subject
from .errors import ReconError

BETA_SCALE = 300.0
BETAS_DIR = "betas_fithrf_GLMdenoise_RR"
#: the formats NSD ships each session's betas in, in the reader's order of preference (HDF5 reads in part)
BETAS_SUFFIXES = (".hdf5", ".nii.gz")


#: where :meth:`NSDReader.fingerprint` remembers file digests, at the NSD root
DIGEST_MEMO = ".recon-digests.json"


class NSDFileError(ReconError, OSError):
    """A missing, truncated or malformed NSD file; the message names the file and the expectation."""


@dataclass
class SubjectData:
    """Betas of one subject, split like the paper: train trials, test images averaged over repeats."""

    subject: str
    rois: tuple[str, ...]
    train_betas: np.ndarray  # (n_train_trials, n_voxels) float32, z-scored per session or raw / 300
    train_ids: np.ndarray  # (n_train_trials,) 0-based 73k ids
    test_betas: np.ndarray  # (n_test_images, n_voxels), mean over repetitions
    test_ids: np.ndarray  # (n_test_images,) 0-based 73k ids, sorted
    test_repeats: np.ndarray  # (n_test_images,) number of trials averaged
    roi_of_voxel: np.ndarray  # (n_voxels,) ROI name per column

    def columns(self, rois) -> np.ndarray:
        """Boolean column mask selecting the voxels of ``rois`` (a subset of ``self.rois``)."""
        missing = set(rois) - set(self.rois)
        if missing:
            raise KeyError(f"ROIs {sorted(missing)} were not loaded; loaded: {list(self.rois)}")
        return np.isin(self.roi_of_voxel, list(rois))


def subject_number(subject: str) -> int:
    return int(check_subject(subject)[4:])


def hdf5_read_plan(shape, chunks, trials_at_once: int) -> list[tuple[slice, slice]]:
    """The (trials, Z planes) slabs in which to read a session's (trials, Z, Y, X) betas, each about
    ``trials_at_once`` trials of the whole volume in size, along the way the file is stored. NSD stores each
    voxel's 750 trials as one chunk ([1 1 1 750] in its manual's X, Y, Z, trial order): reading a range of trials
    would read every chunk whole once per range (six times the file for 125 trials at a time), so such a file is
    read in slabs of Z planes with all their trials, each chunk once. A file stored contiguously or in chunks of
    fewer trials (the simulated tree: one trial a chunk) is read in ranges of trials."""
    n_trials, n_planes = shape[0], shape[1]
    if chunks is not None and chunks[0] >= n_trials:
        step = max(1, n_planes * trials_at_once // n_trials)
        return [(slice(None), slice(z, min(z + step, n_planes))) for z in range(0, n_planes, step)]
    return [(slice(start, min(start + trials_at_once, n_trials)), slice(None))
            for start in range(0, n_trials, trials_at_once)]


class NSDReader:
    """Read one NSD tree. ``trials_per_session`` is 750 for the real dataset."""

    def __init__(self, root, trials_per_session: int = 750):
        self.root = Path(root)
        if not self.root.is_dir():
            raise NSDFileError(f"NSD root {self.root} does not exist or is not a directory: point RECON_NSD_ROOT (or "
                               f"--nsd-root) at the folder that holds nsddata/, nsddata_betas/ and nsddata_stimuli/ "
                               f"(the nsd profile's default is /data/nsd)")
        self.trials_per_session = int(trials_per_session)
        self._behaviour: dict[str, pd.DataFrame] = {}

    # ------------------------------------------------------------------ paths
    def path(self, *parts) -> Path:
        return self.root.joinpath(*parts)

    def _require(self, path: Path, what: str) -> Path:
        if not path.is_file():
            raise NSDFileError(f"missing NSD file {path} (expected {what})")
        return path

    @property
    def expdesign_path(self) -> Path:
        return self.path("nsddata", "experiments", "nsd", "nsd_expdesign.mat")

    @property
    def stim_info_path(self) -> Path:
        return self.path("nsddata", "experiments", "nsd", "nsd_stim_info_merged.csv")

    @property
    def stimuli_path(self) -> Path:
        return self.path("nsddata_stimuli", "stimuli", "nsd", "nsd_stimuli.hdf5")

    def ctab_path(self, atlas: str) -> Path:
        return self.path("nsddata", "freesurfer", "fsaverage", "label", f"{atlas}.mgz.ctab")

    def roi_path(self, subject: str, atlas: str) -> Path:
        return self.path("nsddata", "ppdata", check_subject(subject), "func1pt8mm", "roi", f"{atlas}.nii.gz")

    def betas_file(self, subject: str, session: int, suffix: str | None = None) -> Path:
        """The session's betas file in the format ``suffix`` (one of :data:`BETAS_SUFFIXES`), there or not; None: the
        format present, preferring HDF5 (partial reads), else the HDF5 name."""
        folder = self.path("nsddata_betas", "ppdata", check_subject(subject), "func1pt8mm", BETAS_DIR)
        if suffix is not None and suffix not in BETAS_SUFFIXES:
            raise ConfigError(f"betas format {suffix!r} is not one NSD ships; valid: {', '.join(BETAS_SUFFIXES)}")
        candidates = [folder / f"betas_session{session:02d}{s}" for s in ((suffix,) if suffix else BETAS_SUFFIXES)]
        return next((c for c in candidates if c.is_file()), candidates[0])

    def betas_path(self, subject: str, session: int) -> Path:
        """The session's betas file, preferring HDF5 (partial reads) over NIfTI; fails naming it if neither is there."""
        path = self.betas_file(subject, session)
        if not path.is_file():
            raise NSDFileError(f"missing NSD file {path} (or .nii.gz): betas of {subject} session {session}")
        return path

    def captions_path(self, split: str) -> Path:
        return self.path("nsddata_stimuli", "stimuli", "nsd", "annotations", f"captions_{split}.json")

    def behaviour_path(self, subject: str) -> Path:
        return self.path("nsddata", "ppdata", check_subject(subject), "behav", "responses.tsv")

    # ------------------------------------------------------------ experiment
    @cached_property
    def expdesign(self) -> dict[str, np.ndarray]:
        """masterordering, subjectim and sharedix converted to 0-based integer arrays."""
        path = self._require(self.expdesign_path, "MATLAB file with masterordering, subjectim, sharedix")
        try:
            mat = scipy.io.loadmat(path)
        except Exception as err:  # scipy raises several types for truncated files
            raise NSDFileError(f"cannot read {path}: {err}") from err
        out = {}
        for key in ("masterordering", "subjectim", "sharedix"):
            if key not in mat:
                raise NSDFileError(f"{path} has no variable {key!r}")
            out[key] = np.asarray(mat[key]).astype(np.int64) - 1  # the file is 1-based
        out["masterordering"] = out["masterordering"].ravel()
        out["sharedix"] = out["sharedix"].ravel()
        if out["subjectim"].ndim != 2 or out["subjectim"].shape[0] < 8:
            raise NSDFileError(f"{path}: subjectim has shape {out['subjectim'].shape}, expected (8, n_images)")
        if out["masterordering"].min() < 0 or out["masterordering"].max() >= out["subjectim"].shape[1]:
            raise NSDFileError(f"{path}: masterordering indexes outside subjectim's {out['subjectim'].shape[1]} columns")
        return out

    @cached_property
    def stim_info(self) -> pd.DataFrame:
        path = self._require(self.stim_info_path, "CSV with nsdId, cocoId, cocoSplit, shared1000")
        frame = pd.read_csv(path)
        needed = ["nsdId", "cocoId", "cocoSplit", "shared1000"]
        if not set(needed) <= set(frame.columns):
            raise NSDFileError(f"{path} lacks columns {sorted(set(needed) - set(frame.columns))}")
        # a file cut short still parses: it lacks rows (the images the design shows) or ends in empty cells
        shown = np.unique(self.expdesign["subjectim"])
        shown = shown[shown >= 0]  # rows of subjects a mini tree leaves empty read as -1
        absent = np.setdiff1d(shown, frame["nsdId"].to_numpy())
        empty = int(frame[needed].isna().to_numpy().sum())
        if len(absent) or empty:
            raise NSDFileError(f"{path} is incomplete (truncated?): {len(frame):,} rows, "
                               f"{len(absent):,} of the {len(shown):,} images of the design missing, {empty} empty cells")
        return frame.set_index("nsdId", drop=False)

    @property
    def max_sessions(self) -> int:
        return len(self.expdesign["masterordering"]) // self.trials_per_session

    def trials(self, subject: str, n_sessions: int) -> pd.DataFrame:
        """One row per trial of the first ``n_sessions`` sessions: session, nsd_id, shared."""
        number = subject_number(subject)
        self.check_sessions(subject, n_sessions)
        design = self.expdesign
        n_trials = n_sessions * self.trials_per_session
        order = design["masterordering"][:n_trials]
        nsd_ids = design["subjectim"][number - 1, order]
        self._check_behaviour(subject, nsd_ids)
        shared = np.isin(nsd_ids, design["sharedix"])
        return pd.DataFrame(
            {
                "trial": np.arange(n_trials),
                "session": np.arange(n_trials) // self.trials_per_session + 1,
                "nsd_id": nsd_ids,
                "shared": shared,
            }
        )

    def check_sessions(self, subject: str, n_sessions: int) -> None:
        """``n_sessions`` must fit the design: fail naming the subject, the sessions there are and the option."""
        if not 1 <= n_sessions <= self.max_sessions:
            raise ConfigError(
                f"n_sessions must be in 1..{self.max_sessions}, got {n_sessions}: the design of {subject} in "
                f"{self.expdesign_path} has {self.max_sessions} sessions of {self.trials_per_session} trials; "
                "set n_sessions (papermill -p n_sessions N, recon --n-sessions N)")

    def behaviour(self, subject: str) -> pd.DataFrame | None:
        """``responses.tsv`` of one subject (one row per trial, ids 1-based), or None without the file.

        Other readers (``NSDAccess``, the authors' ``make_subjmri.py``) map trials to images
        through this file's 73KID rather than through the design, so :meth:`trials` checks that
        the two agree.
        """
        if subject not in self._behaviour:
            path = self.behaviour_path(subject)
            if not path.is_file():
                return None
            try:
                frame = pd.read_csv(path, sep="\t")
            except Exception as err:
                raise NSDFileError(f"cannot read {path}: expected NSD's tab-separated responses: {err}") from err
            if "73KID" not in frame.columns:
                raise NSDFileError(f"{path} has no 73KID column (expected NSD's tab-separated responses)")
            self._behaviour[subject] = frame
        return self._behaviour[subject]

    def _check_behaviour(self, subject: str, nsd_ids: np.ndarray) -> None:
        """Fail, naming both files and the first differing trial, if responses.tsv contradicts the design."""
        frame = self.behaviour(subject)
        if frame is None:
            return
        path = self.behaviour_path(subject)
        if len(frame) < len(nsd_ids):
            raise NSDFileError(
                f"{path} lists {len(frame)} trials but {self.expdesign_path} gives {subject} "
                f"{len(nsd_ids)} in the sessions read; the two files do not describe the same experiment"
            )
        recorded = frame["73KID"].to_numpy()[: len(nsd_ids)] - 1  # the file is 1-based
        differing = np.flatnonzero(recorded != nsd_ids)
        if differing.size:
            t = int(differing[0])
            where = ", ".join(f"{c} {frame[c].iloc[t]}" for c in ("SESSION", "RUN", "TRIAL") if c in frame.columns)
            raise NSDFileError(
                f"{path} disagrees with {self.expdesign_path} for {subject}: first at trial {t + 1}"
                f"{f' ({where})' if where else ''}, where responses.tsv has 73KID {recorded[t] + 1} and the "
                f"design gives {nsd_ids[t] + 1} (both 1-based)"
            )

    # ------------------------------------------------------------------ ROIs
    def roi_labels(self, atlas: str = "streams") -> dict[str, int]:
        """ROI name -> label value, read from the atlas colour table (``0 Unknown`` dropped)."""
        path = self._require(self.ctab_path(atlas), f"colour table of the {atlas} atlas")
        labels = {}
        for line_number, line in enumerate(path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            try:
                value = int(parts[0])
            except ValueError as err:
                raise NSDFileError(f"{path}:{line_number}: expected '<value> <name> ...', got {line!r}") from err
            if value > 0 and len(parts) > 1:
                labels[parts[1]] = value
        if not labels:
            raise NSDFileError(f"{path} defines no ROI labels")
        return labels

    def roi_volume(self, subject: str, atlas: str = "streams") -> np.ndarray:
        path = self._require(self.roi_path(subject, atlas), f"{atlas} ROI volume of {subject}")
        try:
            volume = np.asarray(nib.load(path).dataobj)
        except Exception as err:
            raise NSDFileError(f"cannot read {path}: {err}") from err
        if volume.ndim != 3:
            raise NSDFileError(f"{path} has shape {volume.shape}, expected a 3-D (X, Y, Z) label volume")
        return np.rint(volume).astype(np.int32)

    def roi_selection(self, subject: str, rois, atlas: str = "streams") -> tuple[np.ndarray, np.ndarray]:
        """(mask, roi name per selected voxel) for the named ROIs; voxels in C order of (X, Y, Z)."""
        labels = self.roi_labels(atlas)
        unknown = [r for r in rois if r not in labels]
        if unknown:
            raise KeyError(f"ROIs {unknown} are not in the {atlas} atlas; it has {list(labels)}")
        volume = self.roi_volume(subject, atlas)
        mask = np.isin(volume, [labels[r] for r in rois])
        names = {labels[r]: r for r in rois}
        roi_of_voxel = np.array([names[v] for v in volume[mask]], dtype=object)
        return mask, roi_of_voxel

    # ----------------------------------------------------------------- betas
    def check_betas(self, subject: str, session: int, grid: tuple[int, int, int] | None) -> Path:
        """The session's betas file, after checking from its header alone (no beta is read) that it holds
        (X, Y, Z, trials) = (*grid, trials_per_session) betas (``grid`` None: only that the header reads)."""
        path = self.betas_path(subject, session)
        expected = (*(grid or (None,) * 3), self.trials_per_session)
        try:
            if path.suffix == ".hdf5":
                with h5py.File(path, "r") as f:
                    if "betas" not in f:
                        raise NSDFileError(f"{path} has no dataset 'betas'")
                    shape, expected, order = f["betas"].shape, expected[::-1], "(trials, Z, Y, X)"
            else:
                shape, order = nib.load(path).shape, "(X, Y, Z, trials)"
        except NSDFileError:
            raise
        except Exception as err:  # OSError from h5py, nibabel's ImageFileError, EOFError from a cut header
            raise NSDFileError(f"cannot read {path} (truncated or corrupt?): {err}") from err
        if grid is not None and tuple(shape) != expected:
            raise NSDFileError(f"{path} has shape {tuple(shape)}, expected {expected} {order}")
        return path

    def session_betas(self, subject: str, session: int, mask: np.ndarray, chunk: int = 125) -> np.ndarray:
        """(trials, voxels) float32 betas of one session within ``mask``, divided by 300, read ``chunk`` trials' worth
        of the volume at a time (:func:`hdf5_read_plan`)."""
        path = self.check_betas(subject, session, mask.shape)
        out = np.empty((self.trials_per_session, int(mask.sum())), dtype=np.float32)
        try:
            if path.suffix == ".hdf5":
                with h5py.File(path, "r") as f:
                    data = f["betas"]  # (trials, Z, Y, X)
                    mask_zyx = mask.T
                    column = 0
                    for trials, planes in hdf5_read_plan(data.shape, data.chunks, chunk):
                        inside = mask_zyx[planes]
                        block = data[trials, planes]
                        if planes == slice(None):  # a range of trials, every voxel
                            out[trials] = block[:, inside]
                        else:  # every trial of a slab of planes: the next voxels in (Z, Y, X) order
                            width = int(inside.sum())
                            out[:, column : column + width] = block[:, inside]
                            column += width
                # voxels came in (Z, Y, X) order: put them back in the NIfTI (X, Y, Z) order
                reordered = np.empty_like(out)
                reordered[:, _zyx_to_xyz_rank(mask)] = out
                out = reordered
            else:
                image = nib.load(path)
                for start in range(0, self.trials_per_session, chunk):
                    block = np.asarray(image.dataobj[..., start : start + chunk])
                    out[start : start + block.shape[-1]] = block[mask].T
        except Exception as err:  # EOFError, zlib.error, OSError from a truncated file
            raise NSDFileError(f"cannot read {path} (truncated or corrupt?): {err}") from err
        not_finite = int(np.count_nonzero(~np.isfinite(out)))
        if not_finite:  # NSD's betas are int16; a float file with NaNs would give NaN decoders downstream
            raise NSDFileError(f"{subject} session {session}: {not_finite} betas within the ROIs are NaN or infinite "
                               f"in {path}")
        out /= BETA_SCALE
        return out

    def load_subject(self, subject: str, rois, n_sessions: int, atlas: str = "streams",
                     zscore_per_session: bool = True) -> SubjectData:
        """Betas split into train trials and test images averaged over repeats.

        With ``zscore_per_session`` each voxel is z-scored within each session (NSD's usual
        preparation); without it the betas are the raw values / 300, as the authors'
        ``make_subjmri.py`` reads them; their ridge then standardises each voxel over the training
        trials, as :class:`recon.decode.RidgeDecoder` does either way.
        """
        rois = tuple(rois)
        mask, roi_of_voxel = self.roi_selection(subject, rois, atlas)
        trials = self.trials(subject, n_sessions)
        shared = trials["shared"].to_numpy()
        ids = trials["nsd_id"].to_numpy()
        test_ids, inverse, repeats = np.unique(ids[shared], return_inverse=True, return_counts=True)
        # Train rows go straight to their final array and test rows into a running sum, so the
        # peak memory is the output plus one session, not two copies of every trial.
        train_betas = np.empty((int((~shared).sum()), int(mask.sum())), dtype=np.float32)
        test_sum = np.zeros((len(test_ids), train_betas.shape[1]), dtype=np.float64)
        test_row = np.full(len(trials), -1)
        test_row[shared] = inverse
        n_train = 0
        for session in range(1, n_sessions + 1):
            block = self.session_betas(subject, session, mask)
            if zscore_per_session:
                zscore_in_place(block)
            rows = slice((session - 1) * self.trials_per_session, session * self.trials_per_session)
            in_test = shared[rows]
            n_block = int((~in_test).sum())
            train_betas[n_train : n_train + n_block] = block[~in_test]
            n_train += n_block
            np.add.at(test_sum, test_row[rows][in_test], block[in_test])
        test_betas = (test_sum / repeats[:, None]).astype(np.float32)
        return SubjectData(
            subject=subject,
            rois=rois,
            train_betas=train_betas,
            train_ids=ids[~shared],
            test_betas=test_betas,
            test_ids=test_ids,
            test_repeats=repeats,
            roi_of_voxel=roi_of_voxel,
        )

    # ------------------------------------------------------------ identity
    @property
    def design_files(self) -> tuple[Path, Path]:
        """The design and the stimulus table: what the rest of a subject's list of files is derived from (the
        sessions there are, the COCO splits of the captions)."""
        return self.expdesign_path, self.stim_info_path

    @property
    def caption_splits(self) -> tuple[str, ...]:
        """The COCO splits (``train2017``, ``val2017``) the stimuli come from: one caption file each."""
        return tuple(sorted(set(self.stim_info["cocoSplit"])))

    def optional_files(self, subject: str) -> tuple[Path, ...]:
        """Files read where present and not needed otherwise: the behaviour file, checked against the design."""
        return (self.behaviour_path(subject),)

    def files_needed(self, subject: str, n_sessions: int, betas_suffix: str | None = None) -> list[Path]:
        """Every file this reader reads for ``subject``'s first ``n_sessions`` sessions, there or not, in a fixed
        order, the optional ones last; only the design files must be there. The betas in ``betas_suffix``
        (None: the format present, else HDF5). The one list of what a subject needs: the fetcher and the checker
        of a tree (:mod:`recon.nsd_fetch`, :mod:`recon.nsd_check`) read it."""
        self.check_sessions(subject, n_sessions)
        files = [*self.design_files, self.stimuli_path, self.ctab_path("streams"), self.roi_path(subject, "streams")]
        files += [self.betas_file(subject, session, betas_suffix) for session in range(1, n_sessions + 1)]
        files += [self.captions_path(split) for split in self.caption_splits]
        return files + list(self.optional_files(subject))

    def files_used(self, subject: str, n_sessions: int) -> list[Path]:
        """Every file this reader reads for ``subject``'s first ``n_sessions`` sessions (those present of the
        optional ones), in a fixed order; fails naming the first that is missing."""
        optional = set(self.optional_files(subject))
        files = [f for f in self.files_needed(subject, n_sessions) if f not in optional or f.is_file()]
        for file in files:
            self._require(file, "a file of the NSD layout")
        return files

    def fingerprint(self, subject: str, n_sessions: int, memo_dir: Path | None = None) -> str:
        """What ``subject``'s data are, independent of where the tree lies: a hash of each used file's path
        inside the tree, size and sha256. A cache keyed by it stays warm when the tree or the cache moves,
        and goes cold when a file's content changes.

        Hashing reads every byte once (NSD: ~75 GB a subject with the stimuli, about a minute at 1.5 GB/s);
        the digests are remembered in ``.recon-digests.json`` at the root (or, where the tree is read-only,
        in ``memo_dir``) by path, size and modification time, so later calls only ``stat`` the files."""
        memo_file = self._memo_file(memo_dir)
        memo = _read_memo(memo_file)
        listing, changed = [], False
        for file in self.files_used(subject, n_sessions):
            name = file.relative_to(self.root).as_posix()
            stat = file.stat()
            known = memo.get(name)
            if not (isinstance(known, dict) and known.get("size") == stat.st_size
                    and known.get("mtime_ns") == stat.st_mtime_ns):
                known = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _file_sha256(file)}
                memo[name], changed = known, True
            listing.append([name, known["size"], known["sha256"]])
        if changed:
            _write_memo(memo_file, memo)
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:24]

    def _memo_file(self, memo_dir: Path | None = None) -> Path:
        if not os.access(self.root, os.W_OK) and memo_dir is not None:
            return Path(memo_dir) / f"{hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:24]}.json"
        return self.root / DIGEST_MEMO

    def digest_memo(self, memo_dir: Path | None = None) -> dict[str, dict]:
        """The digest memo: path inside the tree -> ``{"size", "mtime_ns", "sha256"}`` as last hashed."""
        return _read_memo(self._memo_file(memo_dir))

    def remember_digests(self, digests: dict[Path, str], memo_dir: Path | None = None) -> None:
        """Put sha256 digests computed elsewhere (the fetcher hashes what it downloads) in the memo, with each
        file's size and modification time now, so that :meth:`fingerprint` need not read the files again."""
        memo_file = self._memo_file(memo_dir)
        memo = _read_memo(memo_file)
        for file, sha256 in digests.items():
            stat = Path(file).stat()
            memo[Path(file).relative_to(self.root).as_posix()] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                                                  "sha256": sha256}
        _write_memo(memo_file, memo)

    # --------------------------------------------------------------- stimuli
    @cached_property
    def _stimuli_shape(self) -> tuple[int, ...]:
        path = self._require(self.stimuli_path, "HDF5 file with dataset 'imgBrick' (n, H, W, 3) uint8")
        try:
            with h5py.File(path, "r") as f:
                if "imgBrick" not in f:
                    raise NSDFileError(f"{path} has no dataset 'imgBrick'")
                shape, dtype = f["imgBrick"].shape, f["imgBrick"].dtype
        except NSDFileError:
            raise
        except Exception as err:
            raise NSDFileError(f"cannot read {path} (truncated or corrupt?): {err}") from err
        if len(shape) != 4 or shape[-1] != 3 or dtype != np.uint8:
            raise NSDFileError(f"{path}: imgBrick is {shape} {dtype}, expected (n, H, W, 3) uint8")
        return shape

    @property
    def n_stimuli(self) -> int:
        return self._stimuli_shape[0]

    def images(self, nsd_ids) -> np.ndarray:
        """(n, H, W, 3) uint8 stimuli for 0-based 73k ids, read one sorted fancy-index at a time."""
        nsd_ids = np.asarray(nsd_ids, dtype=np.int64).ravel()
        if nsd_ids.size and (nsd_ids.min() < 0 or nsd_ids.max() >= self.n_stimuli):
            raise IndexError(f"73k ids must be in 0..{self.n_stimuli - 1}, got range {nsd_ids.min()}..{nsd_ids.max()}")
        unique, inverse = np.unique(nsd_ids, return_inverse=True)
        try:
            with h5py.File(self.stimuli_path, "r") as f:
                block = f["imgBrick"][unique] if unique.size else np.zeros((0, *self._stimuli_shape[1:]), np.uint8)
        except Exception as err:
            raise NSDFileError(f"cannot read {self.stimuli_path} (truncated or corrupt?): {err}") from err
        return block[inverse]

    @cached_property
    def _captions_by_coco_id(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for split in self.caption_splits:
            path = self._require(self.captions_path(split), "COCO-style caption annotations")
            try:
                annotations = json.loads(path.read_text())["annotations"]
            except Exception as err:
                raise NSDFileError(f"cannot read {path}: expected COCO JSON with 'annotations': {err}") from err
            for entry in annotations:
                out.setdefault(int(entry["image_id"]), []).append(entry["caption"].strip())
        return out

    def captions(self, nsd_ids) -> list[list[str]]:
        """The COCO captions of each 0-based 73k id."""
        info = self.stim_info
        by_coco = self._captions_by_coco_id
        out = []
        for nsd_id in np.asarray(nsd_ids).ravel():
            coco_id = int(info.loc[int(nsd_id), "cocoId"])
            if coco_id not in by_coco:
                raise NSDFileError(f"no caption for nsdId {nsd_id} (cocoId {coco_id}) in the annotations")
            out.append(by_coco[coco_id])
        return out


def _read_memo(memo_file: Path) -> dict:
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _write_memo(memo_file: Path, memo: dict) -> None:
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_name(f".{memo_file.name}.{os.getpid()}")
        tmp.write_text(json.dumps(memo, indent=0, sort_keys=True))
        os.replace(tmp, memo_file)
    except OSError:
        pass  # a read-only place: the digests are computed again next time


def zscore_in_place(block: np.ndarray, ddof: int = 0) -> None:
    """Z-score each column of one session's (trials, voxels) float block in place; a constant voxel
    becomes 0. ``ddof=1`` divides by the unbiased sd, as NSD's MATLAB code does for its ncsnr."""
    mean = block.mean(axis=0, keepdims=True)
    std = block.std(axis=0, keepdims=True, ddof=ddof) if len(block) > ddof else np.zeros_like(mean)
    std[std == 0] = 1.0
    block -= mean
    block /= std


def _zyx_to_xyz_rank(mask: np.ndarray) -> np.ndarray:
    """For voxels listed in (Z, Y, X) C order, their rank in (X, Y, Z) C order."""
    xyz_index = np.zeros(mask.shape, dtype=np.int64)
    xyz_index[mask] = np.arange(int(mask.sum()))
    return xyz_index.T[mask.T]
