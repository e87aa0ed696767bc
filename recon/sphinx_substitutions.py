"""A Sphinx extension: the workflow's job counts in the book's prose, taken from the workflow's own job list.

The cluster page states how many jobs the `nsd` graph has; written by hand, it said 107 long after the
oracle's jobs made it 127. Here the counts are computed from :mod:`recon.stages` (the list the Snakefile plans
from) at every build and offered to MyST as substitutions (``{{ workflow_jobs }}`` and the rest), so the text
cannot drift from the graph.

Enabled in ``_config.yml`` (``sphinx: extra_extensions``; MyST's ``substitution`` extension on).
"""

from __future__ import annotations

from . import stages
from .config import SUBJECTS

#: the rules the Snakefile adds to the stages' jobs: Table 1's printout and the final target
WORKFLOW_ONLY_RULES = ("table1", "all")


def workflow_counts(subjects=None) -> dict[str, int]:
    """How many jobs the workflow plans for ``subjects`` (default: all four), in total and by kind."""
    subjects = list(subjects or SUBJECTS)
    jobs = stages.jobs(subjects)
    first = subjects[0]
    return {
        "workflow_jobs": len(jobs) + len(WORKFLOW_ONLY_RULES),  # what `snakemake -n` counts
        "stage_jobs": len(jobs),
        "subject_jobs": len(stages.subject_jobs(first)),
        "oracle_jobs": len(stages.oracle_jobs()),
        "swap_jobs": len(stages.swap_jobs(first)),
    }


def _substitute(app, config) -> None:
    config.myst_substitutions = {**workflow_counts(), **(config.myst_substitutions or {})}


def setup(app):
    app.connect("config-inited", _substitute)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
