"""Section 2.4's control analyses: test images also in the generator's training data, SD 1.4 vs 2.0."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import ConfigError, Profile


#: The accepted id columns of an overlap list, and what each id must be converted by to a 0-based 73k id.
OVERLAP_COLUMNS = {"nsdId": 0, "73KID": 1}


def overlap_ids_if_given(profile: Profile) -> np.ndarray | None:
    """:func:`overlap_ids`, or None where the profile names no list (``nsd`` without ``-p overlap_list``): the
    comparison that needs it is then reported as not run, and everything else runs."""
    return None if profile.overlap_list is None else overlap_ids(profile)


def overlap_ids(profile: Profile) -> np.ndarray:
    """0-based 73k ids of the test images listed as present in the generative model's training data.

    The list (the profile's ``overlap_list``, the notebooks' ``-p overlap_list PATH``) is a CSV with one
    of two id columns: ``nsdId``, NSD's 0-based image index (as in ``nsd_stim_info_merged.csv``), or
    ``73KID``, the same image 1-based (as NSD's documentation numbers the 73k images). For ``nsd`` it is
    the list of test images found in LAION-5B (section 2.4; NSD does not ship one, so it must be given);
    the toy tree ships a list of its own.
    """
    path = profile.overlap_list
    expected = ("a CSV with an 'nsdId' column (0-based 73k image ids) or a '73KID' column (1-based), "
                "the test images also in the generator's training data (section 2.4)")
    if path is None:
        raise ConfigError(f"overlap_list is not set: pass -p overlap_list PATH, {expected}")
    if not path.is_file():
        raise ConfigError(f"overlap_list {path} does not exist: expected {expected}")
    frame = pd.read_csv(path)
    found = [column for column in OVERLAP_COLUMNS if column in frame.columns]
    if len(found) != 1:
        raise ConfigError(f"overlap_list {path} has columns {list(frame.columns)}: expected {expected}, "
                          "exactly one of them")
    values = pd.to_numeric(frame[found[0]], errors="coerce")
    if values.isna().any() or (values % 1 != 0).any():
        raise ConfigError(f"overlap_list {path}: column {found[0]!r} must hold integer image ids")
    ids = values.to_numpy(dtype=np.int64) - OVERLAP_COLUMNS[found[0]]
    if ids.size and (ids.min() < 0 or ids.max() >= 73_000):
        raise ConfigError(f"overlap_list {path}: {found[0]} ids must lie in NSD's 73,000 images "
                          f"({'0-72999' if found[0] == 'nsdId' else '1-73000'}), got {values.min()}..{values.max()}")
    return ids


def baseline_scores(experiments, conditions: dict[str, dict], level: str) -> pd.DataFrame:
    """The baseline [30]'s two-way identification per subject under each condition of the control analysis: rows
    (subject, condition), one column per metric. Each condition is the keyword arguments of ``Experiment.scores``
    (``exclude_ids``, ``variant``)."""
    rows = {(subject, label): exp.scores("[30]", **kwargs)
            for subject, exp in experiments.items() for label, kwargs in conditions.items()}
    return pd.DataFrame(rows).T.rename_axis(["subject", level])


def percent_mean_sd(values) -> str:
    """Percent mean ± population sd over subjects, as the paper writes them (e.g. 74.3 ± 1.7)."""
    values = 100 * np.asarray(values, dtype=float)
    return f"{values.mean():.1f} ± {values.std():.1f}"


#: The paper's control analysis (section 2.4), Inception-v3 identification of [30], mean ± sd (%) over subjects.
PAPER_CONTROL = {
    "all test images": "74.3 ± 1.7",
    "overlap excluded": "74.3 ± 1.6",
    "SD 1.4": "74.3 ± 1.7",
    "SD 2.0": "74.5 ± 2.7",
}


def glue_paper_control() -> None:
    from myst_nb import glue

    for key, value in PAPER_CONTROL.items():
        glue(f"paper_control_{key.replace(' ', '_').replace('.', '')}", value, display=False)

