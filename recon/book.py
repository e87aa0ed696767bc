"""What every notebook of the book does first, and small helpers for its figures, tables and glued numbers.

Figures and tables reach the page once, numbered and captioned: a notebook glues them with
:func:`glue_figure` and :func:`glue_table` in a cell tagged ``remove-output``, and the page's
Markdown places them with ``{glue:figure}`` or a ``{table}`` wrapping ``{glue:md}``. The glued
output stays in the notebook, so a section run with papermill and opened in Jupyter shows them.
"""

from __future__ import annotations

import ast
import logging
import math
import re
import warnings

import numpy as np
import pandas as pd

from . import preflight
from .config import SUBJECTS, ConfigError, check_subject

from .profiles import get_profile
from .errors import ReconError
from .experiment import Experiment
from .threads import pin_threads


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


def short_errors() -> None:
    """In a notebook, show an error ``recon`` names (:class:`recon.errors.ReconError`) as its one line, not as a
    wall of traceback; the cell still fails, so papermill and the book build stop there."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebook tools
        return
    shell = get_ipython()
    if shell is None:
        return

    def one_line(shell, etype, value, tb, tb_offset=None):
        stb = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, stb)  # the kernel's error output (IPython leaves display to the handler)
        return stb

    shell.set_custom_exc((ReconError,), one_line)


#: the first line of the cell papermill injects after a notebook's parameters cell
PAPERMILL_HEADER = "# Parameters\n"


def _assigned_names(source: str) -> list[str]:
    """The names a cell assigns at its top level, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def check_injected_parameters(executed: list[str] | None = None) -> None:
    """Fail, naming it, on a parameter papermill injected that the notebook's parameters cell does not define
    (``papermill ... -p strength 2``): papermill only warns and the section would run with its defaults.

    ``executed`` is the source of the cells run so far, in order (default: the kernel's ``In``); papermill's
    cell follows the parameters cell it adds to. Outside a kernel, or without papermill, there is nothing to check.
    """
    if executed is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
        executed = list(shell.user_ns.get("In", [])) if shell is not None else []
    for before, cell in zip(executed, executed[1:]):
        if cell.lstrip().startswith(PAPERMILL_HEADER):
            known = _assigned_names(before)
            unknown = [name for name in _assigned_names(cell) if name not in known]
            if unknown:
                raise ConfigError(f"unknown parameter{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}: "
                                  f"this notebook takes {', '.join(known) or 'none'}")


def start(profile: str = "toy", subject: str = "subj01", *, n_samples: int = 5, seed: int = 0, device: str = "cpu",
          progress: bool = False, **overrides) -> Experiment:
    """Check every papermill parameter (failing at once, naming it) and open the experiment."""
    short_errors()
    check_injected_parameters()
    check_subject(subject)
    quiet_libraries()
    config = get_profile(profile, n_samples=n_samples, seed=seed, device=device, **overrides)
    config = preflight.prepare(config)  # the device and the authors' +G files checked first
    pin_threads(config.compute_threads)  # what the section computes outside the cache too
    return Experiment(config, subject, progress=progress)


def experiments(first: Experiment) -> dict[str, Experiment]:
    """The same analysis for all four subjects, sharing the first one's profile."""
    return {s: first if s == first.subject else Experiment(first.profile, s, progress=first.progress) for s in SUBJECTS}


def glue_scores(prefix: str, scores: dict[str, float]) -> None:
    """Glue each metric as ``{prefix}_{metric}`` (e.g. ``baseline_CLIP(Late)``) for the prose."""
    from myst_nb import glue

    for metric, value in scores.items():
        glue(f"{prefix}_{metric}", float(value), display=False)


def glue_decoding(exp: Experiment, target: str) -> dict[str, np.ndarray]:
    """Decode ``target`` (cached) and glue, for the prose, its mean test correlation as ``r_{target}`` and the shape
    of its features per image as ``{target}_shape`` (e.g. ``577 × 48``); returns the decoded entry."""
    from myst_nb import glue

    decoded = exp.decoded(target)
    glue(f"r_{target}", float(decoded["test_r"].mean()), display=False)
    glue(f"{target}_shape", " × ".join(str(n) for n in decoded["predicted"].shape[1:]), display=False)
    return decoded


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


def mean_sd(table: pd.DataFrame, *, level: str = "method", digits: int = 3) -> pd.DataFrame:
    """Mean ± population sd over subjects for each ``level`` value (rows indexed by subject and
    ``level``), written as Table 1's last rows are: ``0.759 ± 0.027``."""
    grouped = table.groupby(level=level, sort=False)
    mean, sd = grouped.mean(), grouped.std(ddof=0)
    return pd.DataFrame({column: [f"{m:.{digits}f}\u00a0±\u00a0{s:.{digits}f}" for m, s in zip(mean[column], sd[column])]
                         for column in mean.columns}, index=mean.index)  # no-break spaces: one value per line


def beside_paper(frame: pd.DataFrame) -> pd.DataFrame:
    """A (metric, source) frame as flat columns for a table: each metric's reproduced value,
    then the paper's in a column headed "paper"."""
    return frame.set_axis([metric if source != "paper" else "paper" for metric, source in frame.columns], axis=1)


def glue_figure(name: str, fig, *, dpi: int = 144) -> None:
    """Glue a matplotlib figure for a ``{glue:figure}`` directive and close it, so that the inline
    backend does not show it a second time. The cell's own output (the notebook's copy) is for
    Jupyter: tag the cell ``remove-output`` so that the book shows only the numbered figure.
    ``dpi`` is twice the inline backend's, so that figures stay sharp at the width of the text."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    fig.set_dpi(dpi)
    glue(name, fig)
    plt.close(fig)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|$])")


def _cell(value, digits: int, spec: str | None = None) -> str:
    if isinstance(value, (float, np.floating)) and not math.isnan(value):
        text = format(value, spec or f".{digits}f")
    elif isinstance(value, tuple):
        text = " ".join(str(v) for v in value)
    else:
        text = str(value)  # a missing value stays visible ("nan"): the browser test looks for it
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def markdown_table(frame: pd.DataFrame | pd.Series, *, digits: int = 3, index: bool = True,
                   formats: dict[str, str] | None = None) -> str:
    """``frame`` as a Markdown pipe table: floats to ``digits`` places (or a column's format spec in
    ``formats``, e.g. ``{"median alpha": ".3g"}``), numbers right-aligned, multi-level column names
    joined by spaces, and a repeated leading row label left blank."""
    frame = frame.to_frame() if isinstance(frame, pd.Series) else frame
    columns = [" ".join(str(c) for c in col) if isinstance(col, tuple) else str(col) for col in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes]
    index_names = [str(n) if n is not None else "" for n in frame.index.names] if index else []
    specs = [(formats or {}).get(c) for c in columns]
    # a header may wrap before "(": CLIP(Middle) takes two short lines instead of one wide column
    header = [_cell(n, digits).replace("(", "\u200b(") for n in index_names + columns]
    rule = ["---"] * len(index_names) + ["---:" if num else "---" for num in numeric]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    previous = None
    for label, row in zip(frame.index, frame.itertuples(index=False)):
        labels = list(label) if isinstance(label, tuple) else [label]
        repeated = len(labels) > 1 and previous is not None and labels[0] == previous[0]
        shown = [("" if k == 0 and repeated else _cell(v, digits)) for k, v in enumerate(labels)] if index else []
        previous = labels
        lines.append("| " + " | ".join(shown + [_cell(v, digits, spec) for v, spec in zip(row, specs)]) + " |")
    return "\n".join(lines)


def glue_table(name: str, frame: pd.DataFrame | pd.Series, *, digits: int = 3, index: bool = True,
               formats: dict[str, str] | None = None) -> None:
    """Glue ``frame`` as Markdown for a numbered table: ``{table}`` wrapping ``{glue:md}`` with
    ``:format: myst``. As for figures, tag the cell ``remove-output``."""
    from IPython.display import Markdown
    from myst_nb import glue

    glue(name, Markdown(markdown_table(frame, digits=digits, index=index, formats=formats)))
