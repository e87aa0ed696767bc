"""What every notebook of the book does first, and small helpers for its tables and glued numbers."""

from __future__ import annotations

import logging
import warnings

import pandas as pd

from .config import SUBJECTS, check_subject, get_profile
from .experiment import Experiment


def quiet_libraries() -> None:
    """Keep the book's output to the science: no load bars or deprecation chatter from the libraries."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(diffusers|transformers|torch|himalaya)")
    for name in ("diffusers", "transformers", "himalaya"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import diffusers
        import transformers

        diffusers.utils.logging.set_verbosity_error()
        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - both are dependencies
        pass


def start(profile: str = "toy", subject: str = "subj01", *, n_samples: int = 5, seed: int = 0, device: str = "cpu",
          progress: bool = False, **overrides) -> Experiment:
    """Validate the papermill parameters (failing at once on a bad subject) and open the experiment."""
    check_subject(subject)
    quiet_libraries()
    config = get_profile(profile, n_samples=n_samples, seed=seed, device=device, **overrides)
    return Experiment(config, subject, progress=progress)


def experiments(first: Experiment) -> dict[str, Experiment]:
    """The same analysis for all four subjects, sharing the first one's profile."""
    return {s: first if s == first.subject else Experiment(first.profile, s, progress=first.progress) for s in SUBJECTS}


def glue_scores(prefix: str, scores: dict[str, float]) -> None:
    """Glue each metric as ``{prefix}_{metric}`` (e.g. ``baseline_CLIP(Late)``) for the prose."""
    from myst_nb import glue

    for metric, value in scores.items():
        glue(f"{prefix}_{metric}", float(value), display=False)


def glue_paper(subject: str | None = None) -> None:
    """Glue the paper's Table 1 as ``paper_{method}_{metric}``: one subject's values, or with
    ``subject=None`` the means over subjects, so quoted values are never typed by hand."""
    from myst_nb import glue

    from .evaluate import paper_table

    table = paper_table()
    values = table.groupby(level="method").mean() if subject is None else table.xs(subject, level="subject")
    for method, row in values.iterrows():
        for metric, value in row.items():
            glue(f"paper_{method}_{metric}", float(value), display=False)


def scores_frame(scores: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Rows per method, columns per metric."""
    return pd.DataFrame(scores).T.rename_axis("method")
