"""Every stage of several subjects computed into the cache by a few worker processes at once.

On a small CPU, two one-thread processes get more from two cores than one two-thread process: a
diffusion step of the toy's tiny UNet or a +G step of its narrowed VGG19 is too small to keep two
threads busy (``benchmarks/threads.py``: img2img 1.21 times, +G 1.17 times the work done in the same
time). :func:`compute` hands the jobs of :mod:`recon.stages` to ``workers`` processes, each job once
all it :func:`~recon.stages.needs` is cached, and the book then reads the warm cache. Each process
keeps its experiments (and so its loaded models) from job to job, so it pays its start-up once, not
once per job as a Snakemake job does.

The products do not depend on how they were computed: the same entries, bytes and all, as one
process computing them in turn (``tests/test_parallel.py``), because the profile fixes the threads each
product is computed on (:mod:`recon.threads`).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from . import stages
from .config import SUBJECTS, Profile
from .stages import Job

#: the worker's experiments by subject, kept from job to job (models load once per process)
_experiments: dict = {}
_profile: Profile | None = None
#: the subject whose test images a job for all subjects (the oracle's) reads
_reader_subject: str | None = None


def _start_worker(profile: Profile, threads: int, reader_subject: str) -> None:
    global _profile, _reader_subject
    import torch

    from .book import quiet_libraries

    torch.set_num_threads(threads)
    quiet_libraries()
    _profile = profile
    _reader_subject = reader_subject


def _run(job: Job) -> tuple[str, float]:
    from .experiment import Experiment

    start = time.perf_counter()
    subject = job.subject or _reader_subject
    if subject not in _experiments:
        _experiments[subject] = Experiment(_profile, subject, progress=False)
    entry = stages.compute(_experiments[subject], job)
    return str(entry), time.perf_counter() - start


def plan(subjects: Iterable[str], runs=stages.RUNS, oracle: bool = False) -> list[Job]:
    """The jobs of ``subjects`` (not the dataset, which the parent writes first), ordered stage by stage
    across subjects, so that the workers start on different subjects' long jobs rather than on one
    subject's chain; with ``oracle``, then the oracle's jobs and the first subject's swaps."""
    subjects = list(subjects)
    per_subject = [stages.subject_jobs(s, runs) for s in subjects]
    out = [job for step in zip(*per_subject) for job in step]
    return out + (stages.oracle_jobs() + stages.swap_jobs(subjects[0]) if oracle and subjects else [])


def compute(profile: Profile, jobs: Iterable[Job], workers: int = 2, threads: int | None = None,
            report: Callable[[str], None] | None = print) -> dict[Job, float]:
    """Compute ``jobs`` (for example :func:`plan`'s) into ``profile``'s cache with ``workers`` processes of
    ``threads`` torch threads each (default: the profile's ``compute_threads``, which its products are computed
    on in any case, else the cores shared out). A job starts once those of
    its needs that are among ``jobs`` are done; a need that is not, its job computes itself. Returns each job's
    seconds (a cached job's is the time to read it). A failed job stops the run and raises its error once the
    running jobs end."""
    from .experiment import ensure_dataset

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    threads = threads or profile.compute_threads or max(1, (os.cpu_count() or 1) // workers)
    ensure_dataset(profile, progress=False)  # once, before any worker opens an experiment
    waiting = [job for job in jobs if job.stage != "dataset"]  # a cached job costs its worker a read of the entry
    reader_subject = next((job.subject for job in waiting if job.subject), SUBJECTS[0])
    seconds: dict[Job, float] = {}
    done = {Job("dataset")}

    def ready(job: Job) -> bool:
        return all(need in done or need not in waiting and need not in running.values()
                   for need in stages.needs(job, profile.generator, reader_subject))

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(profile, threads, reader_subject)) as pool:
        running: dict = {}
        while waiting or running:
            for job in [j for j in waiting if ready(j)]:
                if len(running) >= workers:
                    break
                waiting.remove(job)
                running[pool.submit(_run, job)] = job
            if not running:
                raise RuntimeError(f"no job can start: {waiting[0]} needs "
                                   f"{stages.needs(waiting[0], profile.generator, reader_subject)}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                entry, seconds[job] = future.result()  # a job's error is raised here
                done.add(job)
                if report is not None:
                    report(f"{job}: {entry} ({seconds[job]:.1f} s)")
    return seconds
