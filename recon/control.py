"""Section 2.4's control analyses: test images also in the generator's training data, SD 1.4 vs 2.0."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import Profile


def overlap_ids(profile: Profile) -> np.ndarray:
    """0-based 73k ids of test images listed as present in the generative model's training data.

    For ``nsd`` this is the authors' NSD/LAION-5B overlap list (a CSV with an ``nsdId`` column,
    path given as ``overlap_list``); the toy tree ships a list of its own.
    """
    path = profile.overlap_list
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"overlap list {path} not found: expected a CSV with an 'nsdId' column (0-based 73k ids); "
            "set the profile's overlap_list"
        )
    frame = pd.read_csv(path)
    if "nsdId" not in frame.columns:
        raise ValueError(f"{path} has columns {list(frame.columns)}, expected an 'nsdId' column")
    return frame["nsdId"].to_numpy(dtype=np.int64)


def mean_sd(values) -> str:
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

