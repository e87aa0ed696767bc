"""Per-stage digests of one subject's products: where two builds' numbers part.

A result table that moves on another machine says only *that* something moved. The build therefore also writes
``results/<profile>/stages.json``: for the first subject, every job of :func:`recon.stages.jobs` (its own and the
shared ones, in the order of the stage graph) with the digest of its cache entries' bytes (the sha256 of each array
that ``entry.json`` records) and the jobs it reads. ``python -m recon.results check`` compares the committed file
with the one written and names the first job whose product differs while everything it reads agrees: the stage
whose arithmetic differs between the two machines, rather than the stages that inherit the difference.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import stages
from .cache import MANIFEST, digest

FILENAME = "stages.json"


def entry_digest(folder: Path) -> str | None:
    """A digest of a cache entry's arrays (names and bytes), from its ``entry.json``; None where the entry is missing
    or was written before the cache recorded checksums."""
    try:
        listing = json.loads((Path(folder) / MANIFEST).read_text())["arrays"]
    except (OSError, ValueError, KeyError):
        return None
    if any("sha256" not in meta for meta in listing.values()):
        return None
    text = json.dumps({name: listing[name]["sha256"] for name in sorted(listing)})
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def stage_digests(exp, oracle: bool = True) -> dict[str, dict]:
    """``{job: {"digest": ..., "needs": [job, ...]}}`` for every job of ``exp``'s subject (and, with ``oracle``, the
    shared jobs and the subject's swaps) whose product is in the cache, in the graph's order. The dataset's digest is
    that of the subject's files as the cache keys them (their content, not their paths)."""
    out = {}
    for job in stages.jobs([exp.subject], oracle=oracle):
        if job.stage == "dataset":
            value = digest("dataset", exp.dataset_fingerprint)
        else:
            parts = [entry_digest(path) for path in stages.entry_paths(exp, job)]
            if None in parts:
                continue
            value = parts[0] if len(parts) == 1 else digest(*parts)
        needs = stages.needs(job, exp.profile.generator, reader=exp.subject)
        out[str(job)] = {"digest": value, "needs": [str(need) for need in needs]}
    return out


def first_differences(committed: dict[str, dict], current: dict[str, dict]) -> list[str]:
    """The jobs whose digests differ while every job they read agrees (or is not recorded in both), in the graph's
    order, each with what it reads: where the two builds' arithmetic parts. Empty when no digest differs."""
    def same(name: str) -> bool:
        return name not in committed or name not in current or \
            committed[name]["digest"] == current[name]["digest"]

    found = []
    for name, entry in committed.items():
        if same(name):
            continue
        if all(same(need) for need in entry["needs"]):
            reads = ", ".join(entry["needs"]) or "nothing computed"
            found.append(f"{name} (its inputs agree: {reads})")
    return found


def describe(committed: dict[str, dict], current: dict[str, dict]) -> list[str]:
    """Lines for ``recon.results check``: how many stages differ and the first ones whose inputs agree."""
    differing = [name for name in committed if name in current and committed[name]["digest"] != current[name]["digest"]]
    if not differing:
        return [f"{FILENAME}: every stage's product equals the committed one's"]
    firsts = first_differences(committed, current)
    lines = [f"{FILENAME}: {len(differing)} of {len(committed)} stages' products differ from the committed ones; "
             f"the first whose inputs agree (where the arithmetic parts):"]
    return lines + [f"  {line}" for line in firsts]
