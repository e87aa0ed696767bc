"""``recon``: the analysis from the command line, one stage at a time, into the shared cache.

    recon run decoded --profile toy --subject subj01 --target z
    recon run reconstruct --profile nsd --subject subj07 --method +T+G --variant sd
    recon compute --profile toy --workers 2
    recon status --profile toy [--verify]
    recon verify --profile toy
    recon cache clean --older-than 24
    recon table1 --profile toy
    recon nsd fetch --subject subj01 --dry-run
    recon nsd check --subject subj01

``recon run`` computes one stage (:mod:`recon.stages`) and everything it needs that is not cached
yet; the Snakemake workflow (``workflow/Snakefile``) calls it once per job. Bad arguments exit with
status 2 before anything is written; a failure while computing exits with status 1, and an error that
``recon`` names (:class:`recon.errors.ReconError`) is printed in one line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from . import preflight, stages
from .config import METHODS, SUBJECTS, ConfigError
from .profiles import PROFILES, get_profile
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
    group.add_argument("--n-sessions", type=int, metavar="N",
                       help="sessions per subject read from NSD (default: the profile's; 37 on nsd)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("recon")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recon",
                                     description="The analysis from the command line, one stage at a time, into the "
                                                 "shared cache.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stage_list = "\n".join(f"  {s.name:<15} {s.help}" for s in STAGES.values())
    run = commands.add_parser(
        "run", help="compute one stage into the cache", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Compute one stage for one subject into the cache (what it needs is computed too if "
                    f"missing).\n\nstages:\n{stage_list}\n\nruns (--method --variant): "
                    + ", ".join(f"{m} {v}" for m, v in RUNS) + "; methods may be written " + ", ".join(
                        f"{slug} for {m}" for m, slug in stages.METHOD_SLUGS.items()))
    run.add_argument("stage", choices=list(STAGES), metavar="STAGE", help="one of " + ", ".join(STAGES))
    run.add_argument("--subject", choices=SUBJECTS,
                     help="subject (every stage but dataset); for a stage computed once for all subjects (true_*, "
                          "oracle), whose test images to read (default: the first subject)")
    run.add_argument("--target", choices=TARGETS, help="decoding target (features, decoded)")
    run.add_argument("--method", help="reconstruction method (reconstruct, identification): " + ", ".join(METHODS))
    run.add_argument("--variant", choices=VARIANTS, help="model variant of the run (default sd)")
    run.add_argument("--true", metavar="INPUTS",
                     help="oracle, swap: the decoded inputs replaced by the seen image's own, joined by '+' from "
                          + ", ".join(stages.INPUT_SLUGS.values()) + " (oracle: all of the method's, e.g. z+c for "
                          "[30]; swap: one)")
    run.add_argument("--done", type=Path, metavar="FILE", help="write this marker file (JSON) when the stage is cached")
    run.add_argument("--progress", action="store_true", default=None,
                     help="show progress bars (default: on a terminal)")
    _profile_options(run)
    run.set_defaults(subparser=run)

    compute = commands.add_parser(
        "compute", help="every stage of every subject into the cache, several processes at once",
        description="Compute every stage of the subjects (default: all four) into the cache, WORKERS processes at "
                    "once, each job once all it needs is cached (recon.parallel); a book built afterwards reads "
                    "the warm cache. On 2 cores, two one-thread processes beat one two-thread process.")
    compute.add_argument("--subject", action="append", choices=SUBJECTS, help="only this subject (repeatable)")
    compute.add_argument("--oracle", action="store_true",
                         help="also the oracle runs (once for all subjects) and the first subject's swaps")
    compute.add_argument("--workers", type=int, default=2, metavar="N", help="processes at once (default 2)")
    compute.add_argument("--threads", type=int, metavar="N",
                         help="torch threads per process (default: the CPU's cores shared out)")
    _profile_options(compute)
    compute.set_defaults(subparser=compute)

    status = commands.add_parser("status", help="list what is cached and what is missing, per subject and stage",
                                 description="List what the cache holds and what is missing, per subject and stage, "
                                             "and the command that computes what is missing. Reads only.")
    status.add_argument("--subject", action="append", choices=SUBJECTS, help="only this subject (repeatable)")
    status.add_argument("--write-markers", action="store_true",
                        help="write the Snakemake workflow's marker of every job whose entries are cached (in "
                             "<cache>/workflow/<profile>/), so that the workflow plans only what is missing")
    status.add_argument("--unmarked", action="store_true",
                        help="print only the markers that cached jobs lack, one path per line, and write nothing "
                             "(what a dry run of the workflow reads instead of writing them)")
    status.add_argument("--verify", action="store_true",
                        help="check every entry against its checksums (reads every byte), not only small ones")
    _profile_options(status)
    status.set_defaults(subparser=status)

    verify = commands.add_parser("verify", help="check every cache entry against its checksums; move damaged ones "
                                                "aside so that they are computed again",
                                 description="Read every byte of every cache entry and compare it with the checksums "
                                             "recorded when it was written; a damaged entry is moved aside (computed "
                                             "again when next needed). Exit status 1 when any was damaged.")
    verify.add_argument("--cache", type=Path, metavar="DIR", help="cache folder (default: $RECON_CACHE or .cache/recon)")
    verify.set_defaults(subparser=verify)

    cache = commands.add_parser("cache", help="upkeep of the cache folder",
                                description="Upkeep of the cache folder: `recon cache clean` removes what no reader "
                                            "will use.")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    clean = cache_commands.add_parser("clean", help="remove entries moved aside as corrupt (.corrupt-*) and "
                                                    "temporaries of killed writers")
    clean.add_argument("--cache", type=Path, metavar="DIR", help="cache folder (default: $RECON_CACHE or .cache/recon)")
    clean.add_argument("--older-than", type=float, default=24.0, metavar="HOURS",
                       help="only what was last modified longer ago than this (default 24)")
    clean.add_argument("--dry-run", action="store_true", help="list, do not remove")
    clean.set_defaults(subparser=clean)

    table = commands.add_parser("table1", help="print Table 1 from the cached identification entries",
                                description="Print Table 1 (two-way identification, every method and subject) and "
                                            "the paper's, from the cached identification entries; computes nothing.")
    table.add_argument("--subject", action="append", choices=SUBJECTS, help="only this subject (repeatable)")
    table.add_argument("--protocol", default="takagi", choices=["takagi", "reconstruction_anchor"],
                       help="identification protocol (default: the paper's)")
    _profile_options(table)
    table.set_defaults(subparser=table)

    claims = commands.add_parser("claims", help="judge the paper's claims from the cached identification entries",
                                 description="Judge each of the paper's claims per subject and metric (paired "
                                             "bootstrap over test images; recon.claims) from the cached "
                                             "identification entries; computes nothing. "
                                             "Without --overlap-list on nsd (NSD ships no list) the overlap claim "
                                             "is 'not run' and the others are judged.")
    claims.add_argument("--subject", action="append", choices=SUBJECTS, help="only this subject (repeatable)")
    claims.add_argument("--overlap-list", type=Path, metavar="CSV",
                        help="the test images in the generator's training data: a CSV with an nsdId (0-based) or "
                             "73KID (1-based) column (default: the profile's; toy ships one, nsd none)")
    claims.add_argument("--n-boot", type=int, default=10_000, metavar="N", help="bootstrap resamples (default 10000)")
    _profile_options(claims)
    claims.set_defaults(subparser=claims)
    _nsd_parser(commands)
    return parser


def _nsd_parser(commands) -> None:
    nsd = commands.add_parser("nsd", help="get the real NSD's files for some subjects, and check a tree",
                              description="The files the nsd profile reads, per subject: `recon nsd fetch` downloads "
                                          "them (NSD's public S3 bucket, COCO's caption archive), `recon nsd check` "
                                          "checks a tree holds them whole.")
    actions = nsd.add_subparsers(dest="nsd_command", required=True, metavar="ACTION")
    fetch = actions.add_parser(
        "fetch", help="download exactly the files the reader reads for the subjects (resumable)",
        description="Download exactly the files the reader reads for the subjects' sessions: from NSD's S3 bucket "
                    "(anonymous requests) and, for the captions, COCO's 2017 annotations archive. Prints each "
                    "file's size and the total, and refuses a disk without room, before writing anything; continues "
                    "partial downloads; checks sizes and single-part ETags; records what it fetched in "
                    ".recon-fetch.json and the digests in .recon-digests.json. NSD's terms: accept them at "
                    "https://naturalscenesdataset.org first.")
    check = actions.add_parser(
        "check", help="check a tree holds, whole, every file a run reads for the subjects",
        description="Per subject, every file a run reads: present, of the size and sha256 recorded when it was "
                    "fetched, readable by the reader's checks (reads every byte). Exit status 1 naming the first "
                    "missing or damaged file.")
    from .nsd_servers import COCO_ANNOTATIONS_URL, NSD_BUCKET, NSD_REGION

    for action in (fetch, check):
        action.add_argument("--subject", action="append", choices=SUBJECTS, required=True,
                            help="a subject (repeatable)")
        action.add_argument("--root", type=Path, metavar="DIR",
                            help="the NSD tree (default: $RECON_NSD_ROOT, else the nsd profile's /data/nsd)")
        action.add_argument("--sessions", type=int, metavar="N", help="sessions per subject (default: the nsd "
                                                                       "profile's, 37)")
        action.add_argument("--progress", action="store_true", default=None,
                            help="show a progress bar (default: on a terminal)")
        action.set_defaults(subparser=action)
    fetch.add_argument("--dry-run", action="store_true", help="print the files, their sizes and the total; write "
                                                              "nothing")
    fetch.add_argument("--betas-format", choices=["hdf5", "nii.gz"], default="hdf5",
                       help="the betas' format (default hdf5: the reader reads it in part)")
    fetch.add_argument("--workers", type=int, default=4, metavar="N", help="transfers at once (default 4)")
    fetch.add_argument("--bucket", default=os.environ.get("RECON_NSD_BUCKET", NSD_BUCKET),
                       help=f"S3 bucket (default: $RECON_NSD_BUCKET, else {NSD_BUCKET})")
    fetch.add_argument("--endpoint-url", default=os.environ.get("RECON_NSD_ENDPOINT_URL"), metavar="URL",
                       help="S3 endpoint of a mirror (default: $RECON_NSD_ENDPOINT_URL, else AWS)")
    fetch.add_argument("--region", default=NSD_REGION, help=f"the bucket's region (default {NSD_REGION})")
    fetch.add_argument("--annotations-url", metavar="URL",
                       default=os.environ.get("RECON_COCO_ANNOTATIONS_URL", COCO_ANNOTATIONS_URL),
                       help="COCO's 2017 annotations archive (default: $RECON_COCO_ANNOTATIONS_URL, else "
                            f"{COCO_ANNOTATIONS_URL})")


def _overrides(args) -> dict:
    return {"cache_dir": args.cache, "nsd_root": args.nsd_root, "n_samples": args.n_samples, "seed": args.seed,
            "device": args.device, "n_sessions": args.n_sessions}


def _profile(args, **extra):
    if args.profile != "nsd" and args.nsd_root is not None:
        raise ConfigError(f"--nsd-root is for the nsd profile; the {args.profile} profile simulates its own tree")
    return get_profile(args.profile, **_overrides(args), **extra)


#: the profile options beside --profile, by their argparse names (also the workflow's --config keys)
_PROFILE_OPTIONS = ("cache", "nsd_root", "n_samples", "seed", "device", "n_sessions")


def _given_options(args) -> list[tuple[str, object]]:
    return [(name, getattr(args, name)) for name in _PROFILE_OPTIONS if getattr(args, name) is not None]


def _flags(args) -> str:
    """The profile options as given, to repeat in a suggested command."""
    out = ["--profile", args.profile]
    for name, value in _given_options(args):
        out += ["--" + name.replace("_", "-"), str(value)]
    return shlex.join(out)


def _snakemake(args) -> str:
    """The workflow's command with the profile options as given (as its --config keys)."""
    config = [f"profile={args.profile}"] + [f"{name}={value}" for name, value in _given_options(args)]
    return shlex.join(["snakemake", "--cores", "2", "--config", *config])


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
        true = stages.inputs_from_slug(args.true) if args.true else ()
        # a stage for all subjects reads the test images of --subject's experiment
        subject = None if args.stage in STAGES and STAGES[args.stage].shared else args.subject
        return Job(args.stage, subject, target=args.target, method=method, variant=variant, true=true)
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
        if job.stage != "dataset":  # checking the NSD files needs no GPU and no +G network
            profile = preflight.prepare(profile)
    except ConfigError as err:
        parser.error(str(err))
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    start = time.perf_counter()
    from .experiment import Experiment, ensure_dataset

    if job.stage == "dataset":
        from .nsd import NSDReader

        _quiet()
        root = ensure_dataset(profile, progress=progress)
        reader = NSDReader(root, profile.trials_per_session)
        reader.expdesign, reader.stim_info  # noqa: B018 - fail now, naming a missing file, not in every job
        entry = root
    else:
        exp = Experiment(profile, job.subject or args.subject or SUBJECTS[0], progress=progress)
        entries = stages.entry_paths(exp, job)
        if all(_state(exp.cache, path) == "cached" for path in entries):
            entry = entries[0]  # a hit: neither torch nor a model is loaded
        else:
            _quiet()
            entry = stages.compute(exp, job)
    seconds = time.perf_counter() - start
    print(f"{job}: {entry} ({seconds:.1f} s)")
    if args.done is not None:
        _write_marker(args.done, {"job": str(job), "profile": profile.name, "entry": str(entry),
                                  "seconds": round(seconds, 2)})
    return 0


def cmd_compute(args, parser) -> int:
    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        parser.error(f"--workers and --threads must be at least 1 (got {args.workers} and {args.threads})")
    try:
        profile = preflight.prepare(_profile(args))
    except ConfigError as err:
        parser.error(str(err))
    from . import parallel

    _quiet()
    start = time.perf_counter()
    subjects = args.subject or list(SUBJECTS)
    seconds = parallel.compute(profile, parallel.plan(subjects, oracle=args.oracle), workers=args.workers,
                               threads=args.threads)
    print(f"{len(seconds)} jobs of {', '.join(subjects)} cached in {time.perf_counter() - start:.0f} s "
          f"({sum(seconds.values()):.0f} s of job time, {args.workers} processes)")
    return 0


def _write_marker(path: Path, content: dict, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(content, indent=1) + "\n")
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)


def _marker_from_cache(profile, job: Job, entries: list[Path], write: bool = True) -> Path | None:
    """Write ``job``'s workflow marker from its cached entries, dated like its newest entry (so that Snakemake's
    modification-time rule sees markers in the order the entries were computed); its path, or None if it exists
    already. ``write=False`` only names it."""
    marker = stages.marker_folder(profile) / job.marker()
    if marker.is_file():
        return None
    if not write:
        return marker
    from .cache import MANIFEST

    dated = [e / MANIFEST if (e / MANIFEST).is_file() else e for e in entries]
    _write_marker(marker, {"job": str(job), "profile": profile.name, "entry": str(entries[0]),
                           "from": "recon status --write-markers"}, mtime=max(p.stat().st_mtime for p in dated))
    return marker


# --------------------------------------------------------------------------- status
def _state(cache, path: Path, verify: bool = False) -> str:
    from .cache import CacheError

    if not path.is_dir():
        return "missing"
    try:
        cache.load(path, verify=verify or None)
    except CacheError:
        return "corrupt"
    return "cached"


def _experiments(profile, subjects):
    """One experiment per subject, or None when the dataset is not there or not whole (nothing is simulated here)."""
    from .experiment import Experiment
    from .nsd import NSDFileError

    if not profile.nsd_root.is_dir():
        return None
    try:
        experiments = {s: Experiment(profile, s, progress=False) for s in subjects}
        for exp in experiments.values():
            exp.dataset_fingerprint  # noqa: B018 - reads every file the subject's products are keyed by
        return experiments
    except NSDFileError as err:
        print(f"the dataset at {profile.nsd_root} is not whole: {err}", file=sys.stderr)
        return None


def _open(args, parser):
    """(profile, subjects, experiments or None) for the read-only commands; a bad profile is a usage error."""
    try:
        profile = _profile(args)
    except ConfigError as err:
        parser.error(str(err))
    subjects = args.subject or list(SUBJECTS)  # nothing is computed or loaded: no library to quieten
    return profile, subjects, _experiments(profile, subjects)


def cmd_status(args, parser) -> int:
    profile, subjects, experiments = _open(args, parser)
    if args.unmarked and args.write_markers:
        parser.error("--unmarked writes nothing: give it without --write-markers")
    # --unmarked: the marker paths alone, for the workflow's dry run to read
    say = print if not args.unmarked else (lambda *a, **k: None)
    markers = args.write_markers or args.unmarked
    unmarked: list[Path] = []

    def mark(job: Job, entries: list[Path]) -> None:
        path = _marker_from_cache(profile, job, entries, write=args.write_markers)
        if path is not None:
            unmarked.append(path)

    say(f"profile {profile.name}; cache {profile.cache_dir}; NSD {profile.nsd_root}: "
          f"{'present' if experiments else 'missing'}")
    missing, cached_entries = [], []
    if markers and experiments is not None:
        # dated by the design file, which nothing rewrites: the tree's folder moves whenever a file beside it does
        # (the digests memo), which made the dataset's marker newer than every marker after it, so that Snakemake
        # planned every job again
        from .nsd import NSDReader

        mark(Job("dataset"), [NSDReader(profile.nsd_root).expdesign_path])

    def state_of(job: Job, subject: str, place: tuple[int, int]) -> str:
        """``job``'s state; ``place`` (column, row) orders the missing ones: the first subject's first."""
        if experiments is None:
            state = "missing"
        else:
            exp = experiments[subject]
            entries = stages.entry_paths(exp, job)
            states = [_state(exp.cache, path, verify=args.verify) for path in entries]
            state = next((s for s in states if s != "cached"), "cached")
            if state == "cached":
                cached_entries.append(len(entries))
                if markers:
                    mark(job, entries)
        if state != "cached":
            missing.append((place, job))
        return state

    rows = [(job.stage, job.part or "", [state_of(Job(job.stage, subject, job.target, job.method, job.variant), subject,
                                                  (column, row)) for column, subject in enumerate(subjects)])
            for row, job in enumerate(stages.subject_jobs(subjects[0]))]
    width = max(max(len(s) for s in subjects) + 2, 9)
    say(f"{'stage':<16}{'part':<8}" + "".join(f"{s:<{width}}" for s in subjects))
    for stage, part, cells in rows:
        say(f"{stage:<16}{part:<8}" + "".join(f"{c:<{width}}" for c in cells))
    # the oracle: its runs once for all subjects (read through the first subject's test images), the swaps of the
    # first subject
    oracle = [(job, state_of(job, subjects[0], (0, len(rows) + k)))
              for k, job in enumerate(stages.oracle_jobs() + stages.swap_jobs(subjects[0]))]
    say(f"\n{'oracle':<16}{'part':<26}state (the oracle's runs for all subjects, the swaps for {subjects[0]})")
    for job, state in oracle:
        say(f"{job.stage:<16}{job.part or '':<26}{state}")
    total = len(rows) * len(subjects) + len(oracle)
    # a job can have several entries (identification: its scores and pixel metrics); `recon verify` counts every
    # entry folder of the cache, of every profile and setting
    say(f"{total - len(missing)} of {total} jobs cached ({sum(cached_entries)} entries of this profile; "
        f"`recon verify` checks every entry in the cache, of any profile)")
    if args.write_markers:
        say(f"{len(unmarked)} workflow marker(s) written to {stages.marker_folder(profile)}")
    if args.unmarked:
        for path in unmarked:
            print(path)
    if experiments is None:
        say(f"the dataset is missing: {_command(Job('dataset'), args)}")
    if missing:
        say(f"missing, e.g.: {_command(min(missing)[1], args)}")
        say(f"all of them: {_snakemake(args)} (workflow/Snakefile)")
    return 0


# --------------------------------------------------------------------------- upkeep
def _cache_root(args, parser):
    """The cache to upkeep; a folder that is not there is a usage error (a typo must not report "0 damaged")."""
    from .cache import Cache
    from .config import default_cache_dir

    root = Path(args.cache or default_cache_dir())
    if not root.is_dir():
        parser.error(f"no cache folder at {root} (--cache, else $RECON_CACHE, else .cache/recon in the repository)")
    return Cache(root)


def cmd_verify(args, parser) -> int:
    import warnings

    from .cache import CacheWarning

    cache = _cache_root(args, parser)
    n, damaged = 0, []
    for path in cache.entries():
        n += 1
        reason = cache.check(path)
        if reason is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CacheWarning)  # said below, in one line
                aside = cache.quarantine(path, reason)
            damaged.append(path)
            print(f"damaged: {path.parent.name}/{path.name}: {reason}; moved aside to {aside.name}, computed again "
                  "when next needed")
    print(f"{n} entries checked in {cache.root} (of every profile and setting): {n - len(damaged)} whole, "
          f"{len(damaged)} damaged")
    return EXIT_FAILED if damaged else 0


def cmd_cache(args, parser) -> int:
    if not args.older_than >= 0:
        parser.error(f"--older-than must be a number of hours >= 0, got {args.older_than}")
    cache = _cache_root(args, parser)
    seconds = args.older_than * 3600
    found = cache.leftovers(seconds) if args.dry_run else cache.clean(seconds)
    for folder in found:
        print(f"{'would remove' if args.dry_run else 'removed'} {folder}")
    print(f"{len(found)} folder(s) {'to remove' if args.dry_run else 'removed'} from {cache.root}")
    return 0


# --------------------------------------------------------------------------- table 1
def _missing(profile, experiments, needed: list[Job], what: str, args) -> bool:
    """Say which of the ``needed`` entries the cache lacks and how to compute them; False if none."""
    if experiments is None:
        missing = needed
    else:
        missing = [job for job in needed if _state(experiments[job.subject].cache,
                                                   stages.entry_path(experiments[job.subject], job)) != "cached"]
    if missing:
        print(f"{what} needs {len(missing)} identification entries that are not in the cache {profile.cache_dir}; "
              "compute them with:", file=sys.stderr)
        for job in missing:
            print(f"  {_command(job, args)}", file=sys.stderr)
        print(f"or all at once: {_snakemake(args)}", file=sys.stderr)
    return bool(missing)


def cmd_table1(args, parser) -> int:
    profile, subjects, experiments = _open(args, parser)
    needed = [Job("identification", s, method=m, variant="sd") for s in subjects for m in METHODS]
    if _missing(profile, experiments, needed, "Table 1", args):
        return EXIT_FAILED

    import pandas as pd

    from . import results
    from .evaluate import METRICS, paper_table, side_by_side, summarise

    for exp in experiments.values():
        exp.cache.require_warm = True  # a table from the cache; never a computation
    table = results.table1({s: experiments[s] for s in subjects}, protocol=args.protocol)
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


def cmd_claims(args, parser) -> int:
    if args.n_boot < 1:
        parser.error(f"--n-boot must be at least 1, got {args.n_boot}")
    try:
        profile = _profile(args, overlap_list=args.overlap_list)
    except ConfigError as err:
        parser.error(str(err))
    from . import claims, control

    overlap = control.overlap_ids_if_given(profile)  # a list given but unreadable fails here, naming it
    subjects = args.subject or list(SUBJECTS)
    experiments = _experiments(profile, subjects)
    needed = [j for j in stages.jobs(subjects, oracle=False) if j.stage == "identification"]
    if _missing(profile, experiments, needed, "The claims", args):
        return EXIT_FAILED
    import pandas as pd

    for exp in experiments.values():
        exp.cache.require_warm = True  # claims from the cache; never a computation
    table = claims.judge(experiments, overlap, n_boot=args.n_boot, seed=profile.seed)
    summary = claims.summary(table)
    summary["mean difference"] = summary["mean difference"].map(claims.signed)
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 80):
        print(f"The paper's claims, judged per subject (95% paired bootstrap over test images, {args.n_boot} "
              f"resamples; borderline within {claims.BORDERLINE:g}); profile {profile.name}; subjects "
              f"{', '.join(subjects)}")
        print()
        print(summary.to_string())
    return 0


# ------------------------------------------------------------------------------ nsd
def cmd_nsd(args, parser) -> int:
    try:
        profile = get_profile("nsd", nsd_root=args.root, n_sessions=args.sessions)
    except ConfigError as err:
        parser.error(str(err))
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    subjects = list(dict.fromkeys(args.subject))
    if args.nsd_command == "fetch":
        from .nsd_fetch import fetch
        from .nsd_servers import Servers

        if args.workers < 1:
            parser.error(f"--workers must be at least 1, got {args.workers}")
        servers = Servers(bucket=args.bucket, endpoint_url=args.endpoint_url, region=args.region,
                          annotations_url=args.annotations_url)
        fetch(profile.nsd_root, subjects, profile.n_sessions, servers, dry_run=args.dry_run, workers=args.workers,
              progress=progress, trials_per_session=profile.trials_per_session,
              betas_suffix="." + args.betas_format)
        return 0
    from .nsd_check import check_tree, report, require_whole

    findings = check_tree(profile.nsd_root, subjects, profile.n_sessions, profile.trials_per_session,
                          progress=progress)
    report(findings, profile.nsd_root)
    require_whole(findings, profile.nsd_root)
    files = {f.path for listed in findings.values() for f in listed if f.size is not None}
    print(f"{len(files)} files of {', '.join(subjects)} ({profile.n_sessions} sessions) in {profile.nsd_root}: whole")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {"run": cmd_run, "compute": cmd_compute, "status": cmd_status, "table1": cmd_table1, "verify": cmd_verify,
               "cache": cmd_cache, "claims": cmd_claims, "nsd": cmd_nsd}[args.command]
    from .errors import ReconError

    try:
        code = command(args, args.subparser)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return code
    except (ReconError, FileNotFoundError, FileExistsError) as err:
        print(f"recon: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # `recon status | head`: the reader left; say nothing more (Python's own recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
