"""A Sphinx extension: the numbers the book's Markdown pages state, taken at build time from where they are
generated or measured, and offered to MyST as substitutions (``{{ workflow_jobs }}`` and the rest).

Written by hand they drifted: the cluster page said 107 jobs long after the oracle's jobs made the graph 127, and
the introduction gave a first build "about 25 minutes" where the build report measured 33. The notebooks glue
theirs (myst-nb); these pages are plain Markdown:

- the workflow's job counts, from :mod:`recon.stages` (the list the Snakefile plans from);
- the first build's minutes, from the build report ``results/build/latest.md`` shows (``benchmarks/build.py``);
- the borderline band of the claims and how many times the largest measured move it is (:mod:`recon.claims`);
- the model ids the `nsd` profile loads from the Hugging Face Hub (:func:`recon.config.nsd`);
- one NSD subject's peak host and GPU memory, disk, GPU hours and the smallest card that fits, from the budget
  report ``results/nsd_scale/latest.json`` (``benchmarks/nsd_scale.py``);
- the size of the NSD files that subject reads, modelled from NSD's published shapes (:mod:`recon.nsd_sizes`).

Enabled in ``_config.yml`` (``sphinx: extra_extensions``; MyST's ``substitution`` extension on).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import claims, stages
from .config import REPO_ROOT, SUBJECTS

#: the fresh-clone build reports (benchmarks/build.py)
BUILD_REPORTS = REPO_ROOT / "results" / "build"

#: the budget report of one NSD subject (benchmarks/nsd_scale.py)
NSD_SCALE_REPORT = REPO_ROOT / "results" / "nsd_scale" / "latest.json"

#: the rules the Snakefile adds to the stages' jobs: Table 1's and the claims' printouts and the final target
WORKFLOW_ONLY_RULES = ("table1", "claims", "all")


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


def build_report(folder: Path = BUILD_REPORTS) -> dict:
    """The build report that ``latest.md`` shows (the one whose commit its caption names)."""
    commit = re.search(r"\(commit (\w+),", (folder / "latest.md").read_text())
    if commit is None:
        raise ValueError(f"{folder / 'latest.md'} names no commit")
    (report,) = [r for r in map(json.loads, map(Path.read_text, sorted(folder.glob("*.json"))))
                 if r["meta"].get("commit") == commit.group(1)]
    return report


def build_facts(folder: Path = BUILD_REPORTS) -> dict[str, str]:
    """What the latest fresh-clone build spent, for the prose."""
    report = build_report(folder)
    return {"build_book_minutes": f"{report['phases']['book'] / 60:.0f}",
            "build_ci_minutes": f"{report['phases']['whole .ci/run'] / 60:.0f}",
            "build_cpu": f"{report['meta']['cpu']}, {report['meta']['torch_cpu_capability']} kernels",
            "build_date": report["meta"]["date"]}


def nsd_scale_facts(report: Path = NSD_SCALE_REPORT) -> dict[str, str]:
    """One NSD subject's budget, as the prose states it."""
    data = json.loads(report.read_text())
    too_small = [plan["gpu_gb"] for plan in data["cards"] if not plan["fits"]]
    # what the first subject computes for all (the oracle's runs, the text-to-image reference) and its swaps
    once = sum(r["gpu_seconds"] for r in data["rows"] if r["first_subject_only"])
    oracle_hours = once / 3600
    return {"nsd_host_gb": f"{data['peak']['host']:.1f}", "nsd_gpu_gb": f"{data['peak']['gpu']:.1f}",
            "nsd_disk_gb": f"{data['peak']['disk']:.1f}", "nsd_gpu_hours": f"{data['gpu_hours']:.1f}",
            "nsd_gpu_hours_other": f"{data['gpu_hours'] - oracle_hours:.1f}",
            "nsd_smallest_card_gb": f"{data['smallest_card_gb']}",
            "nsd_too_small_card_gb": f"{max(too_small)}" if too_small else "none", "nsd_scale_date": data["meta"]["date"]}


def nsd_tree_facts(subject: str = "subj01", n_sessions: int = 37) -> dict[str, str]:
    """The NSD files one subject's sessions are read from, GB, as :mod:`recon.nsd_sizes` models them (the figure
    ``benchmarks/nsd_scale.py`` reports on its ``dataset:`` line)."""
    from . import nsd_sizes

    files = nsd_sizes.subject_files(nsd_sizes.NSD, subject, n_sessions)
    betas = sum(size for path, size in files.items() if "betas_session" in path)
    stimuli = sum(size for path, size in files.items() if path.endswith("nsd_stimuli.hdf5"))
    return {"nsd_tree_sessions": f"{n_sessions}", "nsd_tree_gb": f"{sum(files.values()) / nsd_sizes.GB:.1f}",
            "nsd_tree_betas_gb": f"{betas / nsd_sizes.GB:.1f}", "nsd_tree_stimuli_gb": f"{stimuli / nsd_sizes.GB:.1f}"}


def claims_facts() -> dict[str, str]:
    return {"claims_borderline": f"{claims.BORDERLINE:g}", "claims_borderline_ratio": f"{claims.borderline_ratio():.0f}"}


def nsd_hub_models() -> list[str]:
    """The Hugging Face ids the `nsd` profile loads (the torchvision networks' weights are named by enum)."""
    import dataclasses

    from .profiles import get_profile

    ids = dataclasses.asdict(get_profile("nsd").models).values()
    return list(dict.fromkeys(i for i in ids if isinstance(i, str) and "/" in i))


def substitutions() -> dict[str, str]:
    models = {"nsd_hub_models": ", ".join(f"`{i}`" for i in nsd_hub_models())}
    return {k: str(v) for k, v in (workflow_counts() | build_facts() | claims_facts() | nsd_scale_facts()
                                         | nsd_tree_facts() | models).items()}


def _substitute(app, config) -> None:
    config.myst_substitutions = {**substitutions(), **(config.myst_substitutions or {})}


def setup(app):
    app.connect("config-inited", _substitute)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
