"""What a cold build spends: the tests, the stages that ``recon compute`` runs ahead (by stage), each notebook
of the book, the browser check, from one ``.ci/run`` log; and, when given, one subject's stages from
``benchmarks/stages.py --out``.

    d=$(mktemp -d) && git clone -q . "$d" && (cd "$d" && bash .ci/run) 2>&1 | tee ci.log
    python benchmarks/stages.py --out stages.json          # optional: one subject, stage by stage
    python benchmarks/build.py ci.log --stages stages.json --commit abc1234 --before results/build/OLD.json

It writes ``results/build/<cpu>-<date>[-<commit>].json`` and ``results/build/latest.md`` (numbered tables that
the "How this book is built" page includes); ``--before`` adds an earlier report's minutes beside them. Run
it on the machine that ran the log: it records this machine's CPU and PyTorch kernel level beside the times. Measure on a quiet machine (nothing else running), from a
fresh clone, so the cache is cold.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results" / "build"
#: issue 31's targets on 2 cores (fresh clone, quiet machine), in seconds
TARGETS = {"pytest alone": 240, "book": 15 * 60, "whole .ci/run": 30 * 60}
#: how the table names .ci/run's phases
PHASE_NAMES = {"tests": "set-up and tests"}

_NOTEBOOK = re.compile(r"(?P<path>\S+\.ipynb): Executed notebook in (?P<seconds>[\d.]+) seconds")
_DONE = re.compile(r"== done: tests (?P<tests>\d+) s \(including set-up\), book (?P<book>\d+) s, "
                   r"browser (?P<browser>\d+) s")
_PYTEST = re.compile(r"=+ (?P<passed>\d+) passed.* in (?P<seconds>[\d.]+)s")
_COMPUTED = re.compile(r"^(?P<jobs>\d+) jobs of .* cached in (?P<seconds>\d+) s \((?P<job_seconds>\d+) s of job time, "
                       r"(?P<workers>\d+) processes\)$", re.M)
#: one job's line; the oracle's jobs for all subjects name no subject
_JOB = re.compile(r"^(?P<stage>[a-z_]+)(?: (?P<part>(?!subj\d\d:)\S+))?(?: (?P<subject>subj\d\d))?: \S+ "
                  r"\((?P<seconds>[\d.]+) s\)$", re.M)
_DURATION = re.compile(r"^(?P<seconds>[\d.]+)s (?P<phase>call|setup|teardown) +(?P<test>tests/\S+)$")


class LogError(ValueError):
    """The log is not a complete ``.ci/run`` log."""


def parse_ci_log(text: str) -> dict:
    """The phases, each notebook's execution and the slowest tests of a ``.ci/run`` log."""
    done = _DONE.search(text)
    if done is None:
        raise LogError("no '== done: tests ... s, book ... s, browser ... s' line: the run did not finish")
    pytest_summary = _PYTEST.search(text)
    notebooks = [{"notebook": Path(m["path"]).stem, "seconds": float(m["seconds"])} for m in _NOTEBOOK.finditer(text)]
    if not notebooks:
        raise LogError("no 'Executed notebook in ... seconds' line: the book was not executed")
    slowest = [{"test": m["test"], "phase": m["phase"], "seconds": float(m["seconds"])}
               for m in (_DURATION.match(line.strip()) for line in text.splitlines()) if m]
    phases = {name: int(done[name]) for name in ("tests", "book", "browser")}
    computed = _COMPUTED.search(text)
    compute = None
    if computed is not None:  # make book's `recon compute` before the notebooks: its jobs, by stage
        by_stage: dict[str, float] = {}
        for m in _JOB.finditer(text):
            name = f"{m['stage']} {m['part']}" if m["stage"] == "reconstruct" else m["stage"]
            by_stage[name] = by_stage.get(name, 0.0) + float(m["seconds"])
        compute = {"seconds": int(computed["seconds"]), "jobs": int(computed["jobs"]),
                   "job_seconds": int(computed["job_seconds"]), "workers": int(computed["workers"]),
                   "by_stage": dict(sorted(by_stage.items(), key=lambda kv: -kv[1]))}
    return {"phases": phases | {"whole .ci/run": sum(phases.values())}, "compute": compute,
            "pytest": ({"passed": int(pytest_summary["passed"]), "seconds": float(pytest_summary["seconds"])}
                       if pytest_summary else None),
            "notebooks": sorted(notebooks, key=lambda row: -row["seconds"]),
            "slowest_tests": slowest}


def machine() -> dict:
    from recon.results import environment

    env = environment()
    return {key: env[key] for key in ("cpu", "machine", "torch_cpu_capability", "torch version")}


def _where(meta: dict) -> str:
    commit = f"commit {meta['commit']}, " if meta.get("commit") else ""
    return f"{commit}{meta['cpu']} ({meta['torch_cpu_capability']} kernels), 2 cores, {meta['date']}"


def _phases(report: dict) -> dict[str, float]:
    phases = {PHASE_NAMES.get(name, name): seconds for name, seconds in report["phases"].items()}
    if report.get("pytest"):
        phases = {"pytest alone": report["pytest"]["seconds"]} | phases
    return phases


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f}"


def markdown(report: dict, before: dict | None = None) -> str:
    """The numbered tables the how-built page includes; with ``before``, its minutes in a column beside."""
    phases = _phases(report)
    earlier = _phases(before) if before else {}
    caption = f"What a cold build from a fresh clone spent ({_where(report['meta'])}; `benchmarks/build.py`)"
    if before:
        caption += f", beside an earlier one (before: {_where(before['meta'])})"
    lines = [f":::{{table}} {caption}, against the targets.", ":name: tbl-build-cost", "",
             "| phase | minutes |" + (" before |" if before else "") + " target (minutes) |",
             "| --- | ---: |" + (" ---: |" if before else "") + " ---: |"]
    for name, seconds in phases.items():
        target = f"{TARGETS[name] / 60:.0f}" if name in TARGETS else "—"
        cells = [name, _minutes(seconds)] + ([_minutes(earlier.get(name))] if before else []) + [target]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [":::", "", ":::{table} The book's notebooks, each executed once in that build (minutes).",
              ":name: tbl-build-notebooks", "", "| notebook | minutes |", "| --- | ---: |"]
    lines += [f"| {row['notebook']} | {row['seconds'] / 60:.1f} |" for row in report["notebooks"]]
    lines.append(":::")
    compute = report.get("compute")
    if compute:
        earlier_jobs = (before or {}).get("compute") or {}
        lines += ["", f":::{{table}} Before the notebooks, `recon compute` ran the {compute['jobs']} jobs of the four "
                  f"subjects in {compute['workers']} processes: {compute['seconds'] / 60:.1f} minutes of wall time for "
                  f"{compute['job_seconds'] / 60:.1f} minutes of job time"
                  + (f" (before: {earlier_jobs['seconds'] / 60:.1f} for {earlier_jobs['job_seconds'] / 60:.1f})"
                     if earlier_jobs else "")
                  + ". The job time by stage, summed over subjects (minutes).", ":name: tbl-build-jobs", ""]
        lines += ["| stage | minutes | share |" + (" before |" if earlier_jobs else ""),
                  "| --- | ---: | ---: |" + (" ---: |" if earlier_jobs else "")]
        for name, seconds in compute["by_stage"].items():
            cells = [name, _minutes(seconds), f"{seconds / compute['job_seconds']:.0%}"]
            cells += [_minutes(earlier_jobs["by_stage"].get(name))] if earlier_jobs else []
            lines.append("| " + " | ".join(cells) + " |")
        lines.append(":::")
    if report.get("stages"):
        stages = report["stages"]
        lines += ["", f":::{{table}} One subject ({stages['meta']['subject']}, profile {stages['meta']['profile']}) "
                  "from an empty cache, stage by stage (`benchmarks/stages.py`; seconds).",
                  ":name: tbl-build-stages", "", "| stage | seconds |", "| --- | ---: |"]
        lines += [f"| {row['stage']} | {row['seconds']:.0f} |" for row in stages["stages"]]
        lines += [f"| total | {stages['total_seconds']:.0f} |", ":::"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path, help="the output of a fresh-clone .ci/run")
    parser.add_argument("--stages", type=Path, help="benchmarks/stages.py --out JSON for one subject")
    parser.add_argument("--date", default=datetime.date.today().isoformat(), help="when the log was taken")
    parser.add_argument("--commit", help="the commit the log built (recorded, and in the report's name)")
    parser.add_argument("--before", type=Path, help="an earlier report (JSON) to show beside this one")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="default results/build/")
    args = parser.parse_args(argv)
    report = parse_ci_log(args.log.read_text(errors="replace"))
    report["meta"] = machine() | {"date": args.date} | ({"commit": args.commit} if args.commit else {})
    if args.stages:
        report["stages"] = json.loads(args.stages.read_text())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", report["meta"]["cpu"].lower()).strip("-")
    name = f"{slug}-{args.date}" + (f"-{args.commit}" if args.commit else "")
    (args.out_dir / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    summary = markdown(report, json.loads(args.before.read_text()) if args.before else None)
    (args.out_dir / "latest.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
