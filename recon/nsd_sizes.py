"""How large the NSD files the reader reads are, from the arrays they hold: the size ``recon nsd fetch --dry-run``
measures on the bucket, modelled where no tree or bucket is at hand (``benchmarks/nsd_scale.py`` reports it beside
the cache it budgets, the README quotes it).

The two large kinds of file are HDF5 arrays whose shapes and dtypes NSD's data manual publishes, so their bytes
follow from them: each session's betas, (750 trials, Z, Y, X) int16, stored uncompressed in chunks of one voxel's
750 trials; the stimuli, ``imgBrick`` (73000, 425, 425, 3) uint8. HDF5 adds a header and, for a chunked array, an
index of its chunks, both measured here with h5py (see :data:`HDF5_HEADER_BYTES`, :data:`CHUNK_INDEX_BYTES`). The
rest (the design, the stimulus table, the behaviour file, the ROI atlas and its colour table, COCO's caption files)
is under 0.2% of a subject's bytes; their sizes are stated estimates, each saying where it comes from.

The same model evaluated at the shapes of a small tree gives that tree's sizes (tests/test_nsd_sizes.py checks it
against what ``fetch --dry-run`` reads from test servers holding one), so the arithmetic is checked on real files
before it is trusted at NSD's shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import ConfigError, check_subject
from .nsd import NSDReader

GB = 1e9

#: bytes an HDF5 file of one dataset holds beyond the array's, contiguous or chunked (superblock, root group, the
#: dataset's object header): measured with h5py 3.16 (HDF5 library 2.0, default file format), 2048 for every shape
HDF5_HEADER_BYTES = 2048
#: bytes of the chunk index (the default format's version-1 B-tree) per chunk of a chunked dataset: measured with
#: h5py at NSD's four 1.8-mm grids in chunks of one voxel, 75 to 82 bytes a chunk (subj01 76, subj02 75, subj05 81,
#: subj07 82). An estimate for NSD's own files, assuming they use the default format's index too (the data manual
#: does not say what wrote them); +-4 bytes a chunk is +-0.3% of a session's betas
CHUNK_INDEX_BYTES = 80
#: what a small chunked file may hold beyond the model: the index's first B-tree node is allocated whole (about
#: 3 kB for a 4-D array) however few chunks it indexes, where the per-chunk figure holds for many chunks
SMALL_FILE_SLACK = 4096
#: a NIfTI-1 file's header and extension flag, before the voxels
NIFTI_HEADER_BYTES = 352

# ------------------------------------------------------------------------------------- NSD's shapes
#: NSD data manual, "Technical notes" (https://cvnlab.slite.page/p/h_T_2Djeid/Technical-notes), "Data sizes": the
#: standard-resolution (1.8-mm, func1pt8mm) matrix of each subject, [X Y Z]
NSD_GRIDS = {"subj01": (81, 104, 83), "subj02": (82, 106, 84), "subj05": (79, 97, 78), "subj07": (78, 95, 81)}
#: NSD data manual, "Functional data (NSD)" (https://cvnlab.slite.page/p/6CusMRYfk0/Functional-data-NSD): each
#: session's betas_sessionNN.hdf5 is '/betas', X x Y x Z x 750 trials, int16, "with a specific chunk size of
#: [1 1 1 750]" (one chunk per voxel) and "uncompressed"; h5py reads it as (750, Z, Y, X)
NSD_TRIALS_PER_SESSION = 750
#: "Technical notes", "Final numbers": the sessions each subject completed ([40 40 32 30 40 32 40 30]), the most
#: a subject's betas can be read for; its responses.tsv holds every trial of them whatever the sessions read
NSD_SESSIONS_DONE = {"subj01": 40, "subj02": 40, "subj05": 40, "subj07": 40}
#: nsd_stimuli.hdf5's imgBrick: 73,000 images of 425 x 425 px, RGB uint8 (recon.fidelity.NSD_STIMULUS_PX); its
#: chunking is not documented, so the model counts no chunk index (one chunk per image would add 73,000 x 80 B,
#: 6 MB, under 0.02%)
NSD_STIMULI = (73_000, 425, 425, 3)
#: Estimates of the small files, bytes. The stimulus table and the behaviour file by the bytes a row of the simulated
#: tree's takes (recon.toy.simulate writes NSD's 41 and 19 columns: 1,241,681 bytes for 8,100 rows and 202,035 for
#: 3,300, measured on its default tree), times NSD's rows (73,000 images; 750 trials x the sessions done); the
#: design by the three arrays the reader reads from it as MATLAB doubles (masterordering 30,000, subjectim
#: 8 x 10,000, sharedix 1,000; the file holds a few more variables); the colour table as the simulated tree's (the
#: 7 streams and Unknown); COCO 2017's two caption files at about 92 and 3.9 MB (an estimate, not measured here:
#: the dry run reads their exact sizes from the archive's central directory)
STIM_INFO_BYTES_PER_ROW = 153
BEHAVIOUR_BYTES_PER_ROW = 61
NSD_SMALL_FILES = {
    "expdesign": (30_000 + 8 * 10_000 + 1_000) * 8,
    "stim_info": NSD_STIMULI[0] * STIM_INFO_BYTES_PER_ROW,
    "ctab": 187,
    "behaviour": NSD_SESSIONS_DONE["subj01"] * NSD_TRIALS_PER_SESSION * BEHAVIOUR_BYTES_PER_ROW,  # 40 for all four
    "captions_train2017": 92_000_000,
    "captions_val2017": 3_900_000,
}


@dataclass(frozen=True)
class TreeShapes:
    """What sets the sizes of a tree's files: the arrays' shapes and how they are stored, and the small files'
    bytes (by kind: ``expdesign``, ``stim_info``, ``ctab``, ``behaviour``, ``captions_<split>``)."""

    grids: dict[str, tuple[int, int, int]]  # (X, Y, Z) per subject
    trials_per_session: int
    stimuli: tuple[int, int, int, int]  # imgBrick (n, H, W, 3)
    sessions_done: dict[str, int]  # per subject: the sessions there are to read
    small: dict[str, int]
    betas_chunked_by_voxel: bool = True  # NSD's [1 1 1 750]; False: contiguous
    stimuli_chunks: tuple[int, ...] | None = None  # imgBrick's chunk shape; None: contiguous
    caption_splits: tuple[str, ...] = ("train2017", "val2017")  # NSD's images come from both


NSD = TreeShapes(grids=NSD_GRIDS, trials_per_session=NSD_TRIALS_PER_SESSION, stimuli=NSD_STIMULI,
                 sessions_done=NSD_SESSIONS_DONE, small=NSD_SMALL_FILES)


def hdf5_bytes(shape, dtype, chunks=None) -> int:
    """An HDF5 file of one uncompressed dataset: its array, the header, and the chunk index if chunked."""
    data = math.prod(shape) * np.dtype(dtype).itemsize
    if chunks is None:
        return data + HDF5_HEADER_BYTES
    n_chunks = math.prod(math.ceil(n / c) for n, c in zip(shape, chunks))
    return data + HDF5_HEADER_BYTES + n_chunks * CHUNK_INDEX_BYTES


def betas_shape(shapes: TreeShapes, subject: str) -> tuple[int, int, int, int]:
    """One session's ``betas`` as h5py reads it: (trials, Z, Y, X)."""
    x, y, z = shapes.grids[check_subject(subject)]
    return shapes.trials_per_session, z, y, x


def session_betas_bytes(shapes: TreeShapes, subject: str) -> int:
    shape = betas_shape(shapes, subject)
    chunks = (shape[0], 1, 1, 1) if shapes.betas_chunked_by_voxel else None
    return hdf5_bytes(shape, np.int16, chunks)


def roi_bytes_at_most(shapes: TreeShapes, subject: str) -> int:
    """The ROI atlas (``streams.nii.gz``): at most its uncompressed int16 voxels and header (gzip makes it smaller;
    how much depends on the labels)."""
    return NIFTI_HEADER_BYTES + math.prod(shapes.grids[check_subject(subject)]) * 2


def subject_files(shapes: TreeShapes, subject: str, n_sessions: int) -> dict[str, int]:
    """Path inside the tree -> modelled bytes, for every file the reader reads for ``subject``'s first
    ``n_sessions`` sessions: the list :meth:`recon.nsd.NSDReader.files_needed` gives (its path methods, rooted at
    ``.``, read nothing), the betas as HDF5."""
    subject = check_subject(subject)
    if not 1 <= n_sessions <= shapes.sessions_done[subject]:
        raise ConfigError(f"n_sessions must be in 1..{shapes.sessions_done[subject]} for {subject}, got {n_sessions}")
    paths = NSDReader(Path("."))
    files = {
        paths.expdesign_path: shapes.small["expdesign"],
        paths.stim_info_path: shapes.small["stim_info"],
        paths.stimuli_path: hdf5_bytes(shapes.stimuli, np.uint8, shapes.stimuli_chunks),
        paths.ctab_path("streams"): shapes.small["ctab"],
        paths.roi_path(subject, "streams"): roi_bytes_at_most(shapes, subject),
    }
    session = session_betas_bytes(shapes, subject)
    files |= {paths.betas_file(subject, s, ".hdf5"): session for s in range(1, n_sessions + 1)}
    files |= {paths.captions_path(split): shapes.small[f"captions_{split}"] for split in shapes.caption_splits}
    files[paths.behaviour_path(subject)] = shapes.small["behaviour"]
    return {path.as_posix(): size for path, size in files.items()}


def tree_files(shapes: TreeShapes, subjects, n_sessions: int) -> dict[str, int]:
    """The files of several subjects, each once (the stimuli, design and captions are shared)."""
    files: dict[str, int] = {}
    for subject in subjects:
        files |= subject_files(shapes, subject, n_sessions)
    return files


def tree_bytes(shapes: TreeShapes, subjects, n_sessions: int) -> int:
    return sum(tree_files(shapes, subjects, n_sessions).values())


def breakdown(shapes: TreeShapes, subject: str, n_sessions: int) -> dict[str, int]:
    """Bytes by kind of file (``betas`` summed over sessions), largest first: what a report prints."""
    kinds: dict[str, int] = {}
    for path, size in subject_files(shapes, subject, n_sessions).items():
        name = Path(path).name
        kind = f"betas ({n_sessions} sessions)" if name.startswith("betas_session") else name
        kinds[kind] = kinds.get(kind, 0) + size
    return dict(sorted(kinds.items(), key=lambda item: -item[1]))
