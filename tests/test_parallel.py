"""recon.parallel: jobs computed by several processes give the entries that one process gives, byte for byte,
however many threads the processes were started with: the profile fixes the threads of every product
(recon.threads). Without that, one thread against two moved the smoke profile's decoded features in the last
bit of float16 (up to 0.3% of values), and so its +G images (1.5% of pixels, by up to 2 grey levels) and its
generations (0.03%, by 1): multithreaded reductions sum in another order."""

from pathlib import Path

import pytest

from recon import parallel, stages
from recon.profiles import get_profile
from recon.stages import Job

SUBJECT = "subj01"
#: the baseline's chain and +G (float64, on its grid): the kernels whose thread count could change a sum's order
JOBS = [Job("features", SUBJECT, target="z"), Job("features", SUBJECT, target="c"),
        Job("features", SUBJECT, target="vgg"), Job("decoded", SUBJECT, target="z"),
        Job("decoded", SUBJECT, target="c"), Job("decoded", SUBJECT, target="vgg"), Job("gan", SUBJECT),
        Job("reconstruct", SUBJECT, method="[30]", variant="sd")]


def entries(cache: Path) -> dict[str, bytes]:
    out = {}
    for folder in ("features", "decoded", "gan", "reconstruct"):
        for entry in (cache / folder).iterdir():
            if not entry.name.startswith("."):
                out |= {str(f.relative_to(cache)): f.read_bytes() for f in entry.iterdir()}
    return out


def test_two_one_thread_workers_write_what_one_two_thread_worker_writes(tmp_path):
    reports = []
    two = get_profile("smoke", cache_dir=tmp_path / "two")
    seconds = parallel.compute(two, JOBS, workers=2, threads=1, report=reports.append)
    assert set(seconds) == set(JOBS) and len(reports) == len(JOBS)
    one = get_profile("smoke", cache_dir=tmp_path / "one")
    parallel.compute(one, JOBS, workers=1, threads=2, report=None)
    first, second = entries(tmp_path / "two"), entries(tmp_path / "one")
    assert first.keys() == second.keys() and len(first) >= len(JOBS)
    assert [name for name in first if first[name] != second[name]] == []


def test_a_product_is_computed_on_the_profiles_threads(tmp_path):
    import torch

    from recon.cache import Cache

    seen = []
    cache = Cache(tmp_path, compute_threads=2)
    before = torch.get_num_threads()
    cache.get("probe", ["a"], lambda: seen.append(torch.get_num_threads()) or {"x": torch.zeros(1).numpy()})
    assert seen == [2] and torch.get_num_threads() == before
    assert get_profile("toy").compute_threads == get_profile("smoke").compute_threads == 1
    assert get_profile("nsd").compute_threads is None


def test_the_plan_respects_every_need_and_alternates_subjects():
    jobs = parallel.plan(["subj01", "subj02"])
    assert sorted(jobs) == sorted(stages.subject_jobs("subj01") + stages.subject_jobs("subj02"))
    assert [job.subject for job in jobs[:4]] == ["subj01", "subj02", "subj01", "subj02"]
    position = {job: i for i, job in enumerate(jobs)}
    for job in jobs:
        for need in stages.needs(job, "vae"):
            assert need.stage == "dataset" or position[need] < position[job], (need, job)


def test_bad_arguments_fail_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="workers must be at least 1"):
        parallel.compute(get_profile("smoke", cache_dir=tmp_path), JOBS, workers=0)


def test_a_failing_job_raises_its_error_in_the_caller(tmp_path, monkeypatch):
    from recon.cache import REQUIRE_WARM_ENV, ColdCacheError
    from recon.experiment import ensure_dataset

    profile = get_profile("smoke", cache_dir=tmp_path)
    ensure_dataset(profile, progress=False)
    monkeypatch.setenv(REQUIRE_WARM_ENV, "1")  # the workers inherit it: their first cache miss is an error
    with pytest.raises(ColdCacheError):
        parallel.compute(profile, JOBS[:1], workers=1, report=None)
