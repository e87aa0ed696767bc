"""Checks that the (simulated or real) brain carries what it should, by decoding simple stimulus descriptors.

Low-level: the images' 8 x 8 luminance and colour maps. Semantic: which object category and colour words
the captions use. A region "carries" a descriptor when a ridge decoder from its voxels predicts the
descriptor of held-out test images (mean correlation over descriptor dimensions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..decode import RidgeDecoder
from ..nsd import NSDReader, SubjectData
from .scenes import CATEGORIES, COLORS, NOUNS


def low_level_descriptor(images: np.ndarray, grid: int = 8) -> np.ndarray:
    n, h, w, _ = images.shape
    x = images.astype(np.float32).reshape(n, grid, h // grid, grid, w // grid, 3).mean(axis=(2, 4)) / 255
    return x.reshape(n, -1)


def semantic_descriptor(captions: list[list[str]]) -> np.ndarray:
    """Per image, whether any caption names each category (by any of its nouns) and each colour."""
    words = [set(NOUNS[c]) for c in CATEGORIES] + [{c} for c in COLORS]
    used = [set(w for c in group for w in c.split()) for group in captions]
    return np.array([[float(bool(alternatives & u)) for alternatives in words] for u in used])


def roi_probe(reader: NSDReader, data: SubjectData, rois=("early", "ventral"), alphas=(1.0, 10.0, 100.0, 1e3, 1e4),
              backend: str = "numpy") -> pd.DataFrame:
    """Mean test correlation of ridge decoders from each ROI to the low-level and semantic descriptors."""
    train_unique, train_inverse = np.unique(data.train_ids, return_inverse=True)
    targets = {
        "low-level (8x8 colour maps)": (low_level_descriptor(reader.images(train_unique))[train_inverse],
                                        low_level_descriptor(reader.images(data.test_ids))),
        "semantic (category and colour words)": (semantic_descriptor(reader.captions(train_unique))[train_inverse],
                                              semantic_descriptor(reader.captions(data.test_ids))),
    }
    rows = []
    for roi in rois:
        columns = data.columns([roi])
        for name, (y_train, y_test) in targets.items():
            decoder = RidgeDecoder(alphas=alphas, backend=backend).fit(data.train_betas[:, columns], y_train)
            rows.append({"roi": roi, "descriptor": name, "mean test r": decoder.score(data.test_betas[:, columns], y_test)})
    return pd.DataFrame(rows).pivot(index="roi", columns="descriptor", values="mean test r")


def preprocessing_probe(reader: NSDReader, data: SubjectData, subject: str, n_sessions: int, *,
                        roi: str = "early", alphas=(1.0, 10.0, 100.0, 1e3, 1e4), cv: int = 5,
                        backend: str = "numpy") -> pd.Series:
    """Mean test correlation of one ridge decoder from ``roi``'s voxels to the test images' low-level descriptor,
    from betas z-scored per session and from the raw betas (/ 300, as the authors read them; the ridge
    standardises each voxel over all training trials). ``data`` gives the trials' images."""
    train_unique, train_inverse = np.unique(data.train_ids, return_inverse=True)
    y_train = low_level_descriptor(reader.images(train_unique))[train_inverse]
    y_test = low_level_descriptor(reader.images(data.test_ids))
    scores = {}
    for zscore, label in ((True, "z-scored per session"), (False, "raw / 300, as the authors")):
        betas = reader.load_subject(subject, [roi], n_sessions, zscore_per_session=zscore)
        decoder = RidgeDecoder(alphas=alphas, cv=cv, backend=backend).fit(betas.train_betas, y_train)
        scores[label] = decoder.score(betas.test_betas, y_test)
    return pd.Series(scores, name="mean test r").rename_axis("betas")
