"""``recon``: the analysis from the command line, one stage at a time, into the shared cache.

    recon run decoded --profile toy --subject subj01 --target z
    recon run reconstruct --profile nsd --subject subj07 --method +T+G --variant sd
    recon status --profile toy
    recon table1 --profile toy

``recon run`` computes one stage (:mod:`recon.stages`) and everything it needs that is not cached
yet; the Snakemake workflow (``workflow/Snakefile``) calls it once per job. Bad arguments exit with
status 2 before anything is written; a failure while computing exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from . import stages
from .config import METHODS, PROFILES, SUBJECTS, ConfigError, get_profile
from .stages import RUNS, STAGES, TARGETS, VARIANTS, Job

EXIT_USAGE = 2
EXIT_FAILED = 1


def _profile_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("profile")
    group.add_argument("--profile", default="toy", choices=list(PROFILES),
                       help="toy (simulated NSD, CPU), smoke (tiny, for tests) or nsd (the real data; GPU)")
    group.add_argument("--cache", type=Path, metavar="DIR",
                       help="cache folder (default: $RECON_CACHE, else .cache/recon in the repository)")
    group.add_argument("--nsd-root", type=Path, metavar="DIR",
                       help="NSD tree of the nsd profile (default: $RECON_NSD_ROOT)")
    group.add_argument("--n-samples", type=int, metavar="N", help="generations per test image (default: the profile's)")
    group.add_argument("--seed", type=int, help="seed (default: the profile's)")
    group.add_argument("--device", help="torch device, e.g. cpu or cuda (default: the profile's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recon",
                                     description="The analysis from the command line, one stage at a time, into the "
                                                 "shared cache.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stage_list = "\n".join(f"  {s.name:<15} {s.help}" for s in STAGES.values())
    run = commands.add_parser(
        "run", help="compute one stage into the cache", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Compute one stage for one subject into the cache (what it needs is computed too if "
                    f"missing).\n\nstages:\n{stage_list}\n\nruns (--method --variant): "
                    + ", ".join(f"{m} {v}" for m, v in RUNS) + "; methods may be written " + ", ".join(
                        f"{slug} for {m}" for m, slug in stages.METHOD_SLUGS.items()))
    run.add_argument("stage", choices=list(STAGES), metavar="STAGE", help="one of " + ", ".join(STAGES))
    run.add_argument("--subject", choices=SUBJECTS, help="subject (every stage but dataset)")
    run.add_argument("--target", choices=TARGETS, help="decoding target (features, decoded)")
    run.add_argument("--method", help="reconstruction method (reconstruct, identification): " + ", ".join(METHODS))
    run.add_argument("--variant", choices=VARIANTS, help="model variant of the run (default sd)")
    run.add_argument("--done", type=Path, metavar="FILE", help="write this marker file (JSON) when the stage is cached")
    run.add_argument("--progress", action="store_true", default=None,
                     help="show progress bars (default: on a terminal)")
    _profile_options(run)
    run.set_defaults(subparser=run)

    status = commands.add_parser("status", help="list what is cached and what is missing, per subject and stage")
    status.add_argument("--subject", action="append", choices=SUBJECTS, help="only this subject (repeatable)")
    _profile_options(status)
    status.set_defaults(subparser=status)

    table = commands.add_parser("table1", help="print Table 1 from the cached identification entries")
    table.add_argument("--subject", action="append", choices=SUBJECTS, help="only this subject (repeatable)")
    table.add_argument("--protocol", default="takagi", choices=["takagi", "reconstruction_anchor"],
                       help="identification protocol (default: the paper's)")
    _profile_options(table)
    table.set_defaults(subparser=table)
    return parser


def _profile(args):
    overrides = {"cache_dir": args.cache, "nsd_root": args.nsd_root, "n_samples": args.n_samples, "seed": args.seed,
                 "device": args.device}
    if args.profile != "nsd" and args.nsd_root is not None:
        raise ConfigError(f"--nsd-root is for the nsd profile; the {args.profile} profile simulates its own tree")
    return get_profile(args.profile, **overrides)


def _flags(args) -> str:
    """The profile options as given, to repeat in a suggested command."""
    out = ["--profile", args.profile]
    for flag, value in (("--cache", args.cache), ("--nsd-root", args.nsd_root), ("--n-samples", args.n_samples),
                        ("--seed", args.seed), ("--device", args.device)):
        if value is not None:
            out += [flag, str(value)]
    return shlex.join(out)


def _command(job: Job, args) -> str:
    return f"recon {shlex.join(job.argv())} {_flags(args)}"


def _job(args, parser) -> Job:
    method = None
    if args.method is not None:
        try:
            method = stages.method_from_slug(args.method)
        except ConfigError as err:
            parser.error(str(err))
    variant = args.variant
    if method is not None and variant is None:
        variant = "sd"
    try:
        return Job(args.stage, args.subject, target=args.target, method=method, variant=variant)
    except ConfigError as err:
        parser.error(str(err))


def _quiet() -> None:
    from .book import quiet_libraries

    quiet_libraries()


# ------------------------------------------------------------------------------ run
def cmd_run(args, parser) -> int:
    job = _job(args, parser)
    try:
        profile = _profile(args)
    except ConfigError as err:
        parser.error(str(err))
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    start = time.perf_counter()
    _quiet()
    from .experiment import Experiment, ensure_dataset

    if job.stage == "dataset":
        from .nsd import NSDReader

        root = ensure_dataset(profile, progress=progress)
        reader = NSDReader(root, profile.trials_per_session)
        reader.expdesign, reader.stim_info  # noqa: B018 - fail now, naming a missing file, not in every job
        entry = root
    else:
        exp = Experiment(profile, job.subject, progress=progress)
        entry = stages.compute(exp, job)
    seconds = time.perf_counter() - start
    print(f"{job}: {entry} ({seconds:.1f} s)")
    if args.done is not None:
        _write_marker(args.done, {"job": str(job), "profile": profile.name, "entry": str(entry),
                                  "seconds": round(seconds, 2)})
    return 0


def _write_marker(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(content, indent=1) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- status
def _state(cache, path: Path) -> str:
    from .cache import CacheError

    if not path.is_dir():
        return "missing"
    try:
        cache.load(path)
    except CacheError:
        return "corrupt"
    return "cached"


def _experiments(profile, subjects):
    """One experiment per subject, or None when the dataset is not there (nothing is simulated here)."""
    from .experiment import Experiment
    from .nsd import NSDFileError

    if not profile.nsd_root.is_dir():
        return None
    try:
        return {s: Experiment(profile, s, progress=False) for s in subjects}
    except NSDFileError:
        return None


def _open(args, parser):
    """(profile, subjects, experiments or None) for the read-only commands; a bad profile is a usage error."""
    try:
        profile = _profile(args)
    except ConfigError as err:
        parser.error(str(err))
    subjects = args.subject or list(SUBJECTS)
    _quiet()
    return profile, subjects, _experiments(profile, subjects)


def cmd_status(args, parser) -> int:
    profile, subjects, experiments = _open(args, parser)
    print(f"profile {profile.name}; cache {profile.cache_dir}; NSD {profile.nsd_root}: "
          f"{'present' if experiments else 'missing'}")
    rows, missing, n_cached = [], [], 0
    for row, job in enumerate(stages.subject_jobs(subjects[0])):
        cells = []
        for column, subject in enumerate(subjects):
            this = Job(job.stage, subject, job.target, job.method, job.variant)
            if experiments is None:
                state = "missing"
            else:
                exp = experiments[subject]
                state = _state(exp.cache, stages.entry_path(exp, this))
            n_cached += state == "cached"
            if state != "cached":
                missing.append((column, row, this))
            cells.append(state)
        rows.append((job.stage, job.part or "", cells))
    width = max(len(s) for s in subjects) + 2
    print(f"{'stage':<16}{'part':<8}" + "".join(f"{s:<{max(width, 9)}}" for s in subjects))
    for stage, part, cells in rows:
        print(f"{stage:<16}{part:<8}" + "".join(f"{c:<{max(width, 9)}}" for c in cells))
    total = len(rows) * len(subjects)
    print(f"{n_cached} of {total} entries cached")
    if experiments is None:
        print(f"the dataset is missing: {_command(Job('dataset'), args)}")
    if missing:
        print(f"missing, e.g.: {_command(min(missing)[2], args)}")
        print(f"all of them: snakemake --cores 2 --config profile={profile.name} (workflow/Snakefile)")
    return 0


# --------------------------------------------------------------------------- table 1
def cmd_table1(args, parser) -> int:
    profile, subjects, experiments = _open(args, parser)
    needed = [Job("identification", s, method=m, variant="sd") for s in subjects for m in METHODS]
    if experiments is None:
        missing = needed
    else:
        missing = [job for job in needed if _state(experiments[job.subject].cache,
                                                   stages.entry_path(experiments[job.subject], job)) != "cached"]
    if missing:
        print(f"Table 1 needs {len(missing)} identification entries that are not in the cache {profile.cache_dir}; "
              "compute them with:", file=sys.stderr)
        for job in missing:
            print(f"  {_command(job, args)}", file=sys.stderr)
        print(f"or all at once: snakemake --cores 2 --config profile={profile.name}", file=sys.stderr)
        return EXIT_FAILED

    import pandas as pd

    from .evaluate import METRICS, paper_table, side_by_side, summarise

    for exp in experiments.values():
        exp.cache.require_warm = True  # a table from the cache; never a computation
    table = pd.DataFrame(
        {(s, m): experiments[s].scores(m, protocol=args.protocol) for s in subjects for m in METHODS}
    ).T.rename_axis(["subject", "method"])[list(METRICS)]
    protocol = (f"Takagi: original anchors, r averaged over {profile.n_samples} samples" if args.protocol == "takagi"
                else "the peers': reconstruction anchors, first sample")
    with pd.option_context("display.width", 250, "display.max_columns", None):
        print(f"Table 1, two-way identification ({protocol}); profile {profile.name}; subjects {', '.join(subjects)}")
        print()
        if args.protocol == "takagi":
            summary = pd.concat({"reproduced": summarise(table), "paper": summarise(paper_table())}, axis=1)
            print("mean ± sd over subjects")
            print(summary.swaplevel(0, 1, axis=1).reindex(columns=list(METRICS), level=0).to_string())
            print()
            print("per subject")
            print(side_by_side(table).round(3).to_string())
        else:
            print(summarise(table).to_string())
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {"run": cmd_run, "status": cmd_status, "table1": cmd_table1}[args.command]
    from .cache import ColdCacheError
    from .nsd import NSDFileError

    try:
        return command(args, args.subparser)
    except (NSDFileError, ColdCacheError, FileNotFoundError, FileExistsError) as err:
        print(f"recon: error: {err}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
