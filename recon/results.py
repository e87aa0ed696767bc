"""Result tables the book writes and the repository commits, so that CI notices a changed number.

The book build writes each table to ``results/<profile>/<name>.csv`` (the profile's
``results_dir``; the ``smoke`` profile writes none). ``python -m recon.results check`` compares the
freshly written files with the versions committed at ``HEAD``: text columns must be equal,
numbers within ``--tolerance``. A change that is intended is committed together with its tables.

The default tolerance is 1e-6. Every toy number is a mean of per-image identification accuracies
(multiples of 1/99 on 100 test images), a bootstrap percentile or a zoo quality fraction, and a
rebuild in the same environment reproduces them exactly; the tolerance only absorbs the decimal
rounding of the CSV. Another CPU (its kernels round differently) or other library versions do not:
the build also writes ``environment.json`` (:func:`environment`), and where the committed one
differs from the build's, the check allows :data:`OTHER_ENVIRONMENT_TOLERANCE` and says so; a claim's verdict may
then change only to one its committed interval gives with its ends moved by that much (an end within it of the
edge of the "borderline" band). Where the numbers differ (or the environment does), the check also compares the
build's ``stages.json`` with the committed one and names the first stage whose product differs while its inputs
agree (:mod:`recon.stage_digests`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import claims, stage_digests
from .config import METHODS, REPO_ROOT, Profile
from .evaluate import METRICS, PIXEL_METRICS

#: How the peers' identification columns are labelled (Brain-Diffuser / MindEye: one generation,
#: the reconstruction as anchor); Table 1's own columns use the Takagi protocol.
RECONSTRUCTION_ANCHOR = "reconstruction anchor, 1 sample"

TOLERANCE = 1e-6
#: Between environments: another CPU, whose kernels round differently. The measured spread and its derivation
#: are at :data:`recon.claims.BORDERLINE`, the band that makes a claim's verdict borderline. Other library
#: versions can move numbers further; that is a change to commit, and the check names it.
OTHER_ENVIRONMENT_TOLERANCE = claims.BORDERLINE
FLOAT_FORMAT = "%.10g"
ENVIRONMENT = "environment.json"
_LIBRARIES = ("torch", "numpy", "scipy", "diffusers", "transformers", "himalaya", "scikit-image", "scikit-learn")


def _cpu() -> str:
    """The CPU's vendor, family and model (what decides its kernels), from /proc/cpuinfo where there is one."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
    except OSError:
        return platform.processor() or platform.machine()
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return " ".join(fields.get(k, "?") for k in ("vendor_id", "cpu family", "model"))


def environment() -> dict:
    """What a result table's last digits depend on: the CPU, PyTorch's kernel level, MKL's branch where one was asked
    for (``MKL_CBWR``; ``default``: MKL's own choice by CPU), threads, library versions."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"machine": platform.machine(), "cpu": _cpu(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_branch": os.environ.get("MKL_CBWR", "default"),
            "torch_threads": torch.get_num_threads()} | {f"{name} version": installed(name) for name in _LIBRARIES}


def arithmetic(profile: Profile) -> dict:
    """The profile's choices that make its numbers the same on every CPU (and so are part of its cache keys): the
    decoders' and +G's precision, +G's grid, the threads each product is computed on."""
    p = profile
    return {"decoder_dtype": p.decoder_dtype, "generator_dtype": p.generator_dtype,
            "generator_code_quantum": p.generator_code_quantum, "compute_threads": p.compute_threads}


def _write_atomically(profile: Profile, filename: str, write_to) -> Path | None:
    """``write_to(path)`` into ``<results_dir>/<filename>``, through a partial file beside it renamed over it, so a
    reader never sees half a file; None for a profile without a results folder."""
    if profile.results_dir is None:
        return None
    folder = Path(profile.results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path, partial = folder / filename, folder / f".{filename}.partial"
    write_to(partial)
    os.replace(partial, path)
    return path


def write_environment(profile: Profile) -> Path | None:
    """Write :func:`environment` and the profile's :func:`arithmetic` beside its result tables; None for a profile
    without them."""
    text = json.dumps(environment() | arithmetic(profile), indent=1, sort_keys=True) + "\n"
    return _write_atomically(profile, ENVIRONMENT, lambda path: path.write_text(text))


def write_stage_digests(exp) -> Path | None:
    """Write the digests of ``exp``'s subject's products, stage by stage (:mod:`recon.stage_digests`), beside the
    profile's result tables: what ``check`` reads to name the first stage whose product differs."""
    if exp.profile.results_dir is None:
        return None
    record = {"subject": exp.subject, "stages": stage_digests.stage_digests(exp)}
    text = json.dumps(record, indent=1) + "\n"
    return _write_atomically(exp.profile, stage_digests.FILENAME, lambda path: path.write_text(text))


def write(frame: pd.DataFrame, profile: Profile, name: str) -> Path | None:
    """Write ``frame`` (index dropped) as ``<results_dir>/<name>.csv``, atomically; None for a profile without one."""
    return _write_atomically(profile, f"{name}.csv", lambda path: frame.to_csv(
        path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n"))


def table1(experiments, methods=METHODS, protocol: str = "takagi") -> pd.DataFrame:
    """Table 1: two-way identification of each method for each subject (rows indexed by subject and method), the
    seven metrics as columns. The one place it is assembled: the book, ``recon table1`` and the committed CSV."""
    rows = {(subject, method): exp.scores(method, protocol=protocol)
            for subject, exp in experiments.items() for method in methods}
    index = pd.MultiIndex.from_tuples(list(rows), names=["subject", "method"])
    return pd.DataFrame([[scores[m] for m in METRICS] for scores in rows.values()], index=index, columns=list(METRICS))


def table1_frame(experiments, methods=METHODS, protocol: str = "takagi") -> pd.DataFrame:
    """Table 1 as the committed CSV holds it: ``subject``, ``method``, then the seven metrics."""
    return table1(experiments, methods, protocol).reset_index()


def peers_frame(experiments, methods=METHODS) -> pd.DataFrame:
    """The peers' evaluation of the same reconstructions: PixCorr and SSIM (first generation, 425 px)
    and two-way identification anchored on the reconstruction, each column naming its protocol."""
    rows = []
    for subject, exp in experiments.items():
        for method in methods:
            pixels = {name: float(values.mean()) for name, values in exp.pixel_metrics(method).items()}
            anchored = exp.scores(method, protocol="reconstruction_anchor")
            rows.append(dict(subject=subject, method=method, **pixels,
                             **{f"{metric}, {RECONSTRUCTION_ANCHOR}": v for metric, v in anchored.items()}))
    return pd.DataFrame(rows, columns=["subject", "method", *PIXEL_METRICS,
                                       *(f"{metric}, {RECONSTRUCTION_ANCHOR}" for metric in METRICS)])


def oracle_frame(experiments) -> pd.DataFrame:
    """The oracle's Table 1 as ``results/<profile>/oracle.csv`` holds it: ``subject`` (``all`` for the oracle runs,
    which every subject shares; the first subject for its swaps), ``method``, ``variant``, ``inputs`` (those taken
    from the seen image; the rest decoded), then the seven metrics (Takagi protocol)."""
    from .stages import ORACLE_RUNS, SWAP_RUNS

    subject, exp = next(iter(experiments.items()))
    runs = [("all", run) for run in ORACLE_RUNS] + [(subject, run) for run in SWAP_RUNS]
    rows = [dict(subject=who, method=method, variant=variant, inputs=inputs_label(true),
                 **exp.scores(method, variant, true=true)) for who, (method, variant, true) in runs]
    return pd.DataFrame(rows, columns=["subject", "method", "variant", "inputs", *METRICS])


def inputs_label(true) -> str:
    """``("z", "c")`` -> ``true z, c``; no true input -> ``decoded``."""
    return "true " + ", ".join(true) if true else "decoded"


def zoo_quality_frame(manifest: dict) -> pd.DataFrame:
    """Every number under each zoo model's ``quality`` in the manifest, one row per (model, measure)."""
    rows = []

    def walk(model: str, prefix: str, value) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                walk(model, f"{prefix}.{key}" if prefix else key, value[key])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append(dict(model=model, measure=prefix, value=float(value)))

    for model in sorted(manifest["models"]):
        walk(model, "", manifest["models"][model].get("quality", {}))
    return pd.DataFrame(rows, columns=["model", "measure", "value"])


def differences(committed: pd.DataFrame, current: pd.DataFrame, tolerance: float = TOLERANCE,
                label: str = "table") -> list[str]:
    """Every way ``current`` differs from ``committed``: columns, row count, text cells, numbers."""
    if list(committed.columns) != list(current.columns):
        return [f"{label}: columns {list(current.columns)}, committed {list(committed.columns)}"]
    if len(committed) != len(current):
        return [f"{label}: {len(current)} rows, committed {len(committed)}"]
    found = []
    for column in committed.columns:
        old, new = committed[column], current[column]
        if pd.api.types.is_numeric_dtype(old) and pd.api.types.is_numeric_dtype(new):
            old_values, new_values = old.to_numpy(float), new.to_numpy(float)
            same_nan = np.isnan(old_values) & np.isnan(new_values)
            bad = ~same_nan & ~(np.abs(new_values - old_values) <= tolerance)
        else:
            bad = (old.astype(str) != new.astype(str)).to_numpy().copy()
            if column == "verdict" and tolerance > TOLERANCE:
                bad &= ~_verdict_within_tolerance(committed, current, tolerance)
        for row in np.flatnonzero(bad):
            found.append(f"{label}: row {row} ({_row_label(committed.iloc[row])}), {column}: "
                         f"{new.iloc[row]}, committed {old.iloc[row]}")
    return found


def _verdict_within_tolerance(committed: pd.DataFrame, current: pd.DataFrame, tolerance: float) -> np.ndarray:
    """Per row of a claims table: whether the current verdict is one that the committed interval gives with its
    ends moved by ``tolerance`` at most (:func:`recon.claims.verdicts_within`). The ends may move that far on
    another CPU, so a verdict whose end lay that close to the edge of the borderline band may cross it; any
    other change of verdict is a difference."""
    explained = np.zeros(len(committed), dtype=bool)
    for i, (row, now) in enumerate(zip(committed.itertuples(), current["verdict"])):
        kind = claims.kind_of(getattr(row, "claim", None))
        if kind is not None:
            explained[i] = now in claims.verdicts_within(kind, row.ci_low, row.ci_high, tolerance)
    return explained


def _row_label(row: pd.Series) -> str:
    text = [f"{k}={v}" for k, v in row.items() if not pd.api.types.is_number(v)]
    return ", ".join(text[:3]) or "numbers only"


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def environment_changes(folder: Path, ref: str = "HEAD", repo: Path = REPO_ROOT) -> list[str]:
    """How the build's ``environment.json`` under ``folder`` differs from the one committed at ``ref`` (empty
    when they agree, or when either is missing)."""
    folder, relative = _in_repo(folder, repo)
    written = folder / ENVIRONMENT
    if not written.exists() or not _has_tree(ref, f"{relative}/{ENVIRONMENT}", repo):
        return []
    committed, current = json.loads(_git("show", f"{ref}:{relative}/{ENVIRONMENT}", cwd=repo)), json.loads(written.read_text())
    return [f"{key}: {current.get(key)}, committed {committed.get(key)}"
            for key in sorted(set(committed) | set(current)) if committed.get(key) != current.get(key)]


def check(folder: Path, ref: str = "HEAD", tolerance: float = TOLERANCE, repo: Path = REPO_ROOT) -> list[str]:
    """Compare every CSV under ``folder`` with its version at ``ref``; returns the differences.

    A committed table that the build no longer writes, and a written table that was never
    committed, are differences too."""
    folder, relative = _in_repo(folder, repo)
    committed = {Path(p).name for p in _git("ls-tree", "--name-only", f"{ref}:{relative}", cwd=repo).split()
                 if p.endswith(".csv")} if _has_tree(ref, relative, repo) else set()
    written = {p.name for p in folder.glob("*.csv")}
    found = [f"{relative}/{name}: committed at {ref} but not written by this build" for name in committed - written]
    found += [f"{relative}/{name}: written by this build but not committed" for name in written - committed]
    for name in sorted(committed & written):
        old = pd.read_csv(io.StringIO(_git("show", f"{ref}:{relative}/{name}", cwd=repo)))
        found += differences(old, pd.read_csv(folder / name), tolerance, f"{relative}/{name}")
    return found


def stage_report(folder: Path, ref: str = "HEAD", repo: Path = REPO_ROOT) -> list[str]:
    """How the build's stage digests under ``folder`` compare with those committed at ``ref``
    (:func:`recon.stage_digests.describe`); empty when either is missing or they are of different subjects."""
    folder, relative = _in_repo(folder, repo)
    written, committed_path = folder / stage_digests.FILENAME, f"{relative}/{stage_digests.FILENAME}"
    if not written.exists() or not _has_tree(ref, committed_path, repo):
        return []
    committed, current = json.loads(_git("show", f"{ref}:{committed_path}", cwd=repo)), json.loads(written.read_text())
    if committed.get("subject") != current.get("subject"):
        return []
    return stage_digests.describe(committed["stages"], current["stages"])


def _in_repo(folder: Path, repo: Path) -> tuple[Path, str]:
    """``folder`` resolved, and its path inside ``repo`` as git names it."""
    folder = Path(folder).resolve()
    return folder, folder.relative_to(repo.resolve()).as_posix()


def _has_tree(ref: str, relative: str, repo: Path) -> bool:
    probe = subprocess.run(["git", "cat-file", "-e", f"{ref}:{relative}"], cwd=repo, capture_output=True)
    return probe.returncode == 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recon.results", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    checker = sub.add_parser("check", help="compare the written tables with the committed ones")
    checker.add_argument("--profile", default="toy", help="results/<profile>/ is checked (default toy)")
    checker.add_argument("--ref", default="HEAD", help="git revision holding the committed tables")
    checker.add_argument("--tolerance", type=float, help=f"largest allowed |difference| (default {TOLERANCE:g}, or "
                         f"{OTHER_ENVIRONMENT_TOLERANCE:g} where the build's environment.json differs from the committed one)")
    args = parser.parse_args(argv)
    folder = REPO_ROOT / "results" / args.profile
    if not folder.is_dir():
        print(f"no results in {folder}: build the book on the {args.profile} profile first", file=sys.stderr)
        return 1
    if args.tolerance is None:
        changed = environment_changes(folder, args.ref, repo=REPO_ROOT)
        args.tolerance = OTHER_ENVIRONMENT_TOLERANCE if changed else TOLERANCE
        if changed:
            print(f"this build's environment differs from the one the committed tables came from "
                  f"({'; '.join(changed)}): numbers may differ by up to {args.tolerance:g}")
    found = check(folder, args.ref, args.tolerance, repo=REPO_ROOT)
    for line in found:
        print(line, file=sys.stderr)
    if found or args.tolerance > TOLERANCE:  # where the numbers part, stage by stage
        for line in stage_report(folder, args.ref, repo=REPO_ROOT):
            print(line, file=sys.stderr if found else sys.stdout)
    if found:
        print(f"{len(found)} difference(s) from the tables committed at {args.ref}; if the change is intended, "
              "commit the new tables with it", file=sys.stderr)
        return 1
    print(f"{folder.relative_to(REPO_ROOT)}: every table equals the committed one (tolerance {args.tolerance:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
