"""``recon nsd check``: whether a tree holds, whole, every file a run reads for some subjects.

Each file of the reader's list (:meth:`recon.nsd.NSDReader.files_needed`) is checked for being there, having
the size and sha256 recorded when it was fetched (``.recon-fetch.json``; for a tree copied from elsewhere, those
the digest memo ``.recon-digests.json`` last recorded), and being readable by the reader's own checks: the
design and stimulus table parsed, the stimulus brick's shape, the ROI colour table and volume, each session's
betas against the ROI grid from the file's header, the captions' JSON, the behaviour file against the design.
A gzip file's stream is checked to its end (its CRC) while its sha256 is computed: one read of every byte.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ReconError
from .nsd import NSDReader
from .nsd_fetch import human, read_manifest

_CHUNK = 1 << 20


class TreeError(ReconError, OSError):
    """A tree that lacks a file a run reads, or holds a damaged one."""


@dataclass(frozen=True)
class Finding:
    """One file of a subject's list: what was found, and what is wrong with it (None: it is whole)."""

    path: Path
    size: int | None = None
    sha256: str | None = None
    problem: str | None = None
    note: str = ""


def check_tree(root, subjects, n_sessions: int, trials_per_session: int = 750,
               progress: bool = False) -> dict[str, list[Finding]]:
    """The findings of every file each subject's run reads, in the reader's order (see the module's text)."""
    reader = NSDReader(root, trials_per_session)
    recorded = {**{k: v for k, v in reader.digest_memo().items() if isinstance(v, dict)}, **read_manifest(root)}
    seen: dict[Path, Finding] = {}
    design = [_finding(reader, path, recorded, _design_check(reader, path), seen) for path in reader.design_files]
    if any(f.problem for f in design):  # the rest of the list is derived from these two
        return {subject: design for subject in subjects}
    out = {}
    for subject in subjects:
        checks = _checks(reader, subject, n_sessions)
        optional = set(reader.optional_files(subject))
        findings = []
        for path in reader.files_needed(subject, n_sessions):
            if path in optional and not path.is_file():
                findings.append(Finding(path, note="optional, absent: the reader goes without it"))
            else:
                findings.append(_finding(reader, path, recorded, checks.get(path), seen, progress))
        out[subject] = findings
    return out


def first_problem(findings: dict[str, list[Finding]]) -> Finding | None:
    return next((f for listed in findings.values() for f in listed if f.problem), None)


def report(findings: dict[str, list[Finding]], root: Path, say: Callable[[str], None] = print) -> None:
    for subject, listed in findings.items():
        say(f"{subject}:")
        for f in listed:
            state = "MISSING" if f.problem and f.size is None else "DAMAGED" if f.problem else "ok"
            digest = f"  sha256 {f.sha256[:16]}" if f.sha256 else ""
            detail = f": {f.problem}" if f.problem else f"  ({f.note})" if f.note else ""
            size = human(f.size) if f.size is not None else "-"
            say(f"  {state:<8}{size:>10}  {f.path.relative_to(root).as_posix()}{digest}{detail}")


def require_whole(findings: dict[str, list[Finding]], root: Path) -> None:
    bad = {f.path: f for listed in findings.values() for f in listed if f.problem}
    if bad:
        first = first_problem(findings)
        raise TreeError(f"{len(bad)} file(s) of {root} missing or damaged; the first: "
                        f"{first.path.relative_to(root).as_posix()}: {first.problem}")


# ------------------------------------------------------------------------------------------ checks
def _design_check(reader: NSDReader, path: Path) -> Callable[[], object]:
    return {reader.expdesign_path: lambda: reader.expdesign, reader.stim_info_path: lambda: reader.stim_info}[path]


def _checks(reader: NSDReader, subject: str, n_sessions: int) -> dict[Path, Callable[[], object]]:
    """Each file's readability check: the reader's own, which fail naming the file and what was expected."""
    grid = {}

    def roi():
        grid["shape"] = reader.roi_volume(subject, "streams").shape

    def betas(session):  # against the ROI grid; where the ROI volume did not read, only that the header reads
        reader.check_betas(subject, session, grid.get("shape"))

    checks = {reader.stimuli_path: lambda: reader.n_stimuli,
              reader.ctab_path("streams"): lambda: reader.roi_labels("streams"),
              reader.roi_path(subject, "streams"): roi,
              reader.behaviour_path(subject): lambda: reader.trials(subject, n_sessions)}
    for session in range(1, n_sessions + 1):
        checks[reader.betas_file(subject, session)] = lambda session=session: betas(session)
    for split in reader.caption_splits:
        checks[reader.captions_path(split)] = lambda path=reader.captions_path(split): _captions(path)
    return checks


def _captions(path: Path) -> None:
    try:
        for entry in json.loads(path.read_text())["annotations"]:
            int(entry["image_id"]), str(entry["caption"])
    except Exception as err:
        raise ValueError(f"cannot read {path}: expected COCO JSON with 'annotations' (image_id, caption): "
                         f"{type(err).__name__}: {err}") from err


def _finding(reader: NSDReader, path: Path, recorded: dict, check, seen: dict, progress: bool = False) -> Finding:
    if path in seen:  # a file every subject reads: checked once
        return seen[path]
    rel = path.relative_to(reader.root).as_posix()
    expected = recorded.get(rel, {})
    if not path.is_file():
        finding = Finding(path, problem="missing")
    else:
        size = path.stat().st_size
        sha256, gzip_problem = _digest(path, progress)
        readable = _readable(check)  # always: a later file's check may need what it reads (the ROI grid)
        if "size" in expected and expected["size"] != size:
            problem = f"{size:,} bytes, {expected['size']:,} recorded when it was fetched (truncated?)"
        elif "sha256" in expected and expected["sha256"] != sha256:
            problem = f"its sha256 {sha256[:16]}… differs from the {expected['sha256'][:16]}… recorded for it"
        else:
            problem = gzip_problem or readable
        note = "" if "sha256" in expected else "no digest recorded to compare"
        finding = Finding(path, size, sha256, problem, note)
    seen[path] = finding
    return finding


def _readable(check) -> str | None:
    if check is None:
        return None
    try:
        check()
    except Exception as err:  # the reader's NSDFileError, or a parser's own error
        return str(err).splitlines()[0]
    return None


def _digest(path: Path, progress: bool) -> tuple[str, str | None]:
    """(sha256, what is wrong with its gzip stream or None), in one read of the file."""
    from tqdm.auto import tqdm

    sha256 = hashlib.sha256()
    gzip = _GzipCheck() if path.name.endswith(".gz") else None
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, leave=False,
                                      disable=not progress, desc=path.name) as bar:
        while block := f.read(_CHUNK):
            sha256.update(block)
            bar.update(len(block))
            if gzip is not None:
                gzip.feed(block)
    return sha256.hexdigest(), gzip.problem() if gzip is not None else None


class _GzipCheck:
    """Inflates a gzip stream fed in blocks, keeping nothing, to find a corrupt or cut one (zlib checks each
    member's CRC and length)."""

    def __init__(self):
        self.inflate = zlib.decompressobj(wbits=31)
        self.error: str | None = None

    def feed(self, block: bytes) -> None:
        try:
            while block and self.error is None:
                if self.inflate.eof:  # another member follows
                    self.inflate = zlib.decompressobj(wbits=31)
                self.inflate.decompress(block, _CHUNK)
                block = self.inflate.unused_data if self.inflate.eof else self.inflate.unconsumed_tail
        except zlib.error as err:
            self.error = f"its gzip stream is corrupt: {err}"

    def problem(self) -> str | None:
        if self.error is None and not self.inflate.eof:
            return "its gzip stream ends early (truncated?)"
        return self.error
