"""The Snakemake workflow: the nsd graph planned without data (locally and through the SLURM
profile), and a real local run on the smoke profile whose cache a notebook then reads without
computing anything."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from recon import cli, stages
from recon.config import REPO_ROOT
from recon.sphinx_substitutions import WORKFLOW_ONLY_RULES, workflow_counts
from recon.stages import Job

SNAKEFILE = REPO_ROOT / "workflow" / "Snakefile"
SLURM_PROFILE = REPO_ROOT / "workflow" / "profiles" / "slurm"


def snakemake(workdir: Path, *args, timeout=600) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir)]
    return subprocess.run([*command, *map(str, args)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def planned_jobs(output: str) -> list[dict]:
    """Every job block of a dry run: rule, wildcards, threads, resources."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", output)[1:]:
        job = {"rule": block.split(":", 1)[0].removeprefix("rule "), "threads": 1, "resources": {}}
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("threads:"):
                job["threads"] = int(line.split()[1])
            elif line.startswith("resources:"):
                job["resources"] = dict(item.split("=", 1) for item in line.removeprefix("resources:").split(", "))
            elif line.startswith("wildcards:"):
                job["wildcards"] = line.removeprefix("wildcards:").strip()
        jobs.append(job)
    return jobs


def check_plan(jobs: list[dict], slurm: bool) -> None:
    graph = stages.jobs()  # 4 subjects
    assert Counter(j["rule"] for j in jobs) == Counter([job.stage for job in graph] + list(WORKFLOW_ONLY_RULES))
    for job in jobs:
        if job["rule"] in WORKFLOW_ONLY_RULES:
            continue
        expected = stages.resources(job["rule"], "nsd")
        r = job["resources"]
        assert (int(r["gpu"]), int(r["mem_mb"]), int(r["runtime"])) == (expected["gpu"], expected["mem_mb"],
                                                                         expected["runtime"]), job
        assert job["threads"] == expected["cpus"], job
        if slurm:
            assert r["slurm_partition"] == ("cpu" if expected["gpu"] == 0 else "gpu"), job


def test_the_workflow_passes_snakemakes_lint(tmp_path):
    """Every rule with a log of its own and the project's conda environment, its shell reading only params."""
    done = snakemake(tmp_path, "--lint", "--config", "profile=smoke", f"cache={tmp_path / 'cache'}")
    assert done.returncode == 0 and "Congratulations, your workflow is in a good condition" in done.stdout + done.stderr, \
        (done.stdout + done.stderr)[-3000:]


def test_the_nsd_graph_is_planned_for_four_subjects_without_data(tmp_path):
    done = snakemake(tmp_path, "-n", "-p", "--cores", 64, "--config", "profile=nsd", f"cache={tmp_path / 'cache'}",
                     f"nsd_root={tmp_path / 'no-nsd-here'}")
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    jobs = planned_jobs(output)
    counts = workflow_counts()  # what the book's cluster page states
    total = counts["workflow_jobs"]
    assert len(jobs) == total == (1 + 4 * counts["subject_jobs"] + counts["oracle_jobs"] + counts["swap_jobs"] +
                                  len(WORKFLOW_ONLY_RULES))
    assert re.search(rf"total\s+{total}", output)
    check_plan(jobs, slurm=False)
    commands = re.findall(r"recon run (\w+) .*--profile nsd .*--done", output)  # every job is one `recon run`
    assert Counter(commands) == Counter(job.stage for job in stages.jobs())
    assert not (tmp_path / "cache").exists()  # planned, nothing written


def test_the_documented_job_counts_are_the_workflows():
    """The cluster page takes its counts from the workflow's job list at build time; the README, which GitHub
    shows as written, and the page's resource table are checked against it here."""
    counts = workflow_counts()
    readme = (REPO_ROOT / "README.md").read_text()
    assert re.findall(r"profile=nsd --dry-run\s+# plans (\d+) jobs", readme) == [str(counts["workflow_jobs"])]
    page = (REPO_ROOT / "book" / "cluster.md").read_text()
    assert "{{ workflow_jobs }} jobs" in page and f"{counts['workflow_jobs']} jobs" not in page
    config = yaml.safe_load((REPO_ROOT / "book" / "_config.yml").read_text())
    assert "recon.sphinx_substitutions" in config["sphinx"]["extra_extensions"]
    assert "substitution" in config["parse"]["myst_enable_extensions"]
    table = dict(re.findall(r"^\| (\w+) \| (\d+)", page, flags=re.M))
    per_stage = Counter(job.stage for job in stages.jobs())
    assert table and {rule: int(n) for rule, n in table.items() if rule in per_stage} == {
        rule: per_stage[rule] for rule in table if rule in per_stage}


def test_the_slurm_profile_submits_the_same_graph_with_partitions(tmp_path):
    # --cores only so that the plan shows each job's threads (a dry run caps them at --cores, 1 by default;
    # a real submission does not)
    done = snakemake(tmp_path, "--profile", SLURM_PROFILE, "--dry-run", "--cores", 64, "--config", "profile=nsd",
                     f"cache={tmp_path / 'cache'}")
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "Using profile" in output and re.search(rf"total\s+{workflow_counts()['workflow_jobs']}", output)
    check_plan(planned_jobs(output), slurm=True)


def test_the_slurm_profile_states_the_budget_of_every_rule():
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert set(profile["set-resources"]) == set(stages.STAGES) == set(profile["set-threads"])
    for stage in stages.STAGES:
        budget = stages.resources(stage, "nsd")
        assert {k: profile["set-resources"][stage][k] for k in ("gpu", "mem_mb", "runtime")} == {
            k: budget[k] for k in ("gpu", "mem_mb", "runtime")}, stage
        assert profile["set-threads"][stage] == budget["cpus"]


# ------------------------------------------------------------------ a real local run, smoke profile
SUBJECT = "subj07"
#: what the depth section reads; with their inputs, one job of every stage
TARGETS = [Job("identification", SUBJECT, method="+T+G", variant="sd"),
           Job("identification", SUBJECT, method="+T+G+D", variant="sd"), Job("features", SUBJECT, target="dpt"),
           # and the oracle's: a run for all subjects (read through SUBJECT's test images) and one swap
           Job("oracle", method="+T+G", variant="sd", true=("caption", "gan")),
           Job("swap", SUBJECT, method="+T+G+D", variant="sd", true=("depth",)),
           Job("text2img")]  # the claims page's text-to-image reference


def closure(jobs) -> set[Job]:
    from recon.profiles import get_profile

    generator = get_profile("smoke").generator  # what the Snakefile passes
    out, todo = set(), list(jobs)
    while todo:
        job = todo.pop()
        if job not in out:
            out.add(job)
            todo += stages.needs(job, generator, reader=SUBJECT)
    return out


def cache_files(root: Path) -> dict[str, bytes]:
    """Every file of every entry (not the simulated tree, locks or markers)."""
    out = {}
    for stage in stages.STAGES.values():
        folder = root / str(stage.folder)
        if stage.folder and folder.is_dir():
            for entry in folder.iterdir():
                if not entry.name.startswith("."):
                    out |= {str(f.relative_to(root)): f.read_bytes() for f in entry.iterdir()}
    return out


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("workflow")
    cache = work / "cache"
    markers = cache / "workflow" / "smoke"
    targets = [markers / job.marker() for job in TARGETS]
    done = snakemake(work, *targets, "--cores", 2, "--config", "profile=smoke", f"subjects={SUBJECT}", f"cache={cache}",
                     timeout=900)
    return {"work": work, "cache": cache, "markers": markers, "done": done}


def test_a_local_run_fills_the_cache_one_job_per_stage(workflow_run):
    done = workflow_run["done"]
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = closure(TARGETS)
    assert {job.stage for job in jobs} == set(stages.STAGES)  # every stage ran as its own `recon run`
    assert re.search(rf"{len(jobs)} of {len(jobs)} steps \(100%\) done", done.stderr)
    from recon.profiles import get_profile
    from recon.experiment import Experiment

    exp = Experiment(get_profile("smoke", cache_dir=workflow_run["cache"]), SUBJECT, progress=False)
    for job in jobs:
        marker = json.loads((workflow_run["markers"] / job.marker()).read_text())
        assert marker["job"] == str(job)
        if job.stage != "dataset":
            assert marker["entry"] == str(stages.entry_path(exp, job))
            exp.cache.load(Path(marker["entry"]))  # whole
    again = snakemake(workflow_run["work"], *[workflow_run["markers"] / j.marker() for j in TARGETS], "-n",
                      "--config", "profile=smoke", f"subjects={SUBJECT}", f"cache={workflow_run['cache']}")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_warm_cache_without_markers_plans_nothing(workflow_run, tmp_path):
    """Markers are a record of the cache, not a second truth: lost (or never written, after a book build), a dry
    run leaves the cached jobs out of its plan and writes nothing; a real run writes them back from the entries,
    dated like the entries, and runs nothing."""
    assert workflow_run["done"].returncode == 0
    markers = workflow_run["markers"]
    kept = tmp_path / "markers"
    shutil.copytree(markers, kept)
    shutil.rmtree(markers)
    config = ["--config", "profile=smoke", f"subjects={SUBJECT}", f"cache={workflow_run['cache']}"]
    try:
        # the whole graph of SUBJECT: only what the run above did not compute is planned (a dry run wrote every
        # cached job's marker into the cache before)
        plan = snakemake(workflow_run["work"], "-n", *config)
        assert plan.returncode == 0, plan.stderr[-3000:]
        uncached = [job.stage for job in stages.jobs([SUBJECT]) if job not in closure(TARGETS)]
        assert Counter(j["rule"] for j in planned_jobs(plan.stdout + plan.stderr)) == Counter(
            uncached + list(WORKFLOW_ONLY_RULES))
        assert not markers.exists()
        again = snakemake(workflow_run["work"], *[markers / j.marker() for j in TARGETS], "--cores", 1, *config)
        assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
        for job in closure(TARGETS):
            assert json.loads((markers / job.marker()).read_text())["from"] == "recon status --write-markers"
    finally:
        shutil.rmtree(markers, ignore_errors=True)
        shutil.copytree(kept, markers)


def test_the_depth_section_reads_the_warm_cache_without_computing(workflow_run, tmp_path, monkeypatch):
    assert workflow_run["done"].returncode == 0
    cache = workflow_run["cache"]
    before = cache_files(cache)
    monkeypatch.setenv("RECON_CACHE", str(cache))
    monkeypatch.setenv("RECON_CACHE_REQUIRE_WARM", "1")  # a cache miss would fail the notebook, naming the entry
    out = tmp_path / "depth.ipynb"
    papermill.execute_notebook(REPO_ROOT / "notebooks" / "depth.ipynb", out,
                               parameters={"subject": SUBJECT, "profile": "smoke", "n_samples": 2},
                               kernel_name="python3", progress_bar=False, cwd=REPO_ROOT)
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and f'subject = "{SUBJECT}"' in injected[0].source  # papermill -p subject
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    # figures are glued for a numbered {glue:figure}: myst-nb stores them under a papermill.record mime type
    assert any(o.get("output_type") == "display_data" and any(k.endswith("image/png") for k in o.get("data", {}))
               for o in outputs)
    assert cache_files(cache) == before  # not one entry added or changed


def test_a_stage_run_again_writes_byte_identical_entries(workflow_run, tmp_path):
    """Entries the workflow wrote (in their own processes) are moved away and computed again here:
    same folders, same bytes, down to the diffusion samples and the +G optimisation."""
    assert workflow_run["done"].returncode == 0
    cache = workflow_run["cache"]
    from recon.profiles import get_profile
    from recon.experiment import Experiment

    exp = Experiment(get_profile("smoke", cache_dir=cache), SUBJECT, progress=False)
    again = [Job("features", SUBJECT, target="dpt"), Job("gan", SUBJECT), Job("depth", SUBJECT),
             Job("reconstruct", SUBJECT, method="+T+G+D", variant="sd"),
             Job("identification", SUBJECT, method="+T+G+D", variant="sd")]
    first = {}
    for job in again:
        entry = stages.entry_path(exp, job)
        first[job] = {f.name: f.read_bytes() for f in entry.iterdir()}
        shutil.move(entry, tmp_path / job.stage)
    for job in again:
        assert cli.main([*job.argv(), "--profile", "smoke", "--cache", str(cache)]) == 0
        entry = stages.entry_path(exp, job)
        assert {f.name: f.read_bytes() for f in entry.iterdir()} == first[job], job
