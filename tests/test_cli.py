"""The ``recon`` command line: one stage per call into the cache, status, Table 1, and bad arguments."""

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from recon import cli, stages
from recon.cache import Cache
from recon.config import METHODS
from recon.evaluate import METRICS
from recon.stages import Job

from conftest import run_cli

SMOKE = ["--profile", "smoke"]
#: the status rows of the oracle: three true inputs, the oracle runs, the first subject's swaps
ORACLE_ROWS = 4 + len(stages.ORACLE_RUNS) + len(stages.SWAP_RUNS)  # true captions, depth, +G; text2img


# ------------------------------------------------------------------------------- bad arguments
BAD = {
    "no command": ([], "required: COMMAND"),
    "no stage": (["run"], "required: STAGE"),
    "unknown stage": (["run", "decode", "--subject", "subj01"], "invalid choice: 'decode'"),
    "unknown subject": (["run", "gan", "--subject", "subj03"], "invalid choice: 'subj03'"),
    "no subject": (["run", "features", "--target", "z"], "stage 'features' needs a subject (one of subj01"),
    "no target": (["run", "decoded", "--subject", "subj01"], "needs a decoding target, one of z, c, c_sd2"),
    "unknown target": (["run", "decoded", "--subject", "subj01", "--target", "clip"], "invalid choice: 'clip'"),
    "target where none": (["run", "captions", "--subject", "subj01", "--target", "z"], "takes no decoding target"),
    "no method": (["run", "reconstruct", "--subject", "subj01"], "needs one of the runs (method variant) [30] sd"),
    "unknown method": (["run", "reconstruct", "--subject", "subj01", "--method", "+X"], "unknown method '+X'"),
    "not a run": (["run", "identification", "--subject", "subj01", "--method", "+T", "--variant", "sd2"],
                  "got '+T' 'sd2'"),
    "method where none": (["run", "gan", "--subject", "subj01", "--method", "+T"], "takes no method"),
    "subject for dataset": (["run", "dataset", "--subject", "subj01"], "once per profile; it takes no subject"),
    "partial oracle": (["run", "oracle", "--method", "T", "--true", "z"], "takes the true inputs z+caption or z+coco"),
    "unknown true input": (["run", "swap", "--subject", "subj01", "--method", "T", "--true", "clip"],
                           "unknown true inputs 'clip'"),
    "true inputs of a decoded run": (["run", "reconstruct", "--subject", "subj01", "--method", "T", "--true", "z"],
                                     "takes no true inputs"),
    "unknown profile": (["run", "gan", "--subject", "subj01", "--profile", "huge"], "invalid choice: 'huge'"),
    "bad n_samples": (["run", "gan", "--subject", "subj01", "--n-samples", "0"],
                      "n_samples must be an integer >= 1, got 0"),
    "bad n_sessions": (["run", "gan", "--subject", "subj01", "--n-sessions", "0"],
                       "n_sessions must be an integer >= 1, got 0"),
    "no such GPU": (["run", "gan", "--subject", "subj01", "--device", "cuda:99"], "device is 'cuda:99', but torch finds"),
    "nsd root on toy": (["run", "gan", "--subject", "subj01", "--nsd-root", "/data"], "--nsd-root is for the nsd"),
    "n_sessions beyond the simulation": (["run", "gan", "--subject", "subj01", "--n-sessions", "1000"],
                                         "n_sessions must be at most"),
    "verify a cache that is not there": (["verify", "--cache", "no/such/cache"], "no cache folder at no/such/cache"),
    "clean a cache that is not there": (["cache", "clean", "--cache", "no/such/cache"], "no cache folder at no/such"),
    "negative age": (["cache", "clean", "--older-than", "-5"], "--older-than must be a number of hours >= 0, got -5"),
    "status subject": (["status", "--subject", "subj04"], "invalid choice: 'subj04'"),
    "table1 protocol": (["table1", "--protocol", "mindeye"], "invalid choice: 'mindeye'"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_arguments_exit_2_naming_the_value_and_write_nothing(case, tmp_path, monkeypatch):
    monkeypatch.setenv("RECON_CACHE", str(tmp_path / "cache"))
    argv, message = BAD[case]
    code, out, err = run_cli(*argv)
    assert code == 2 and message in err and out == ""
    assert not (tmp_path / "cache").exists()


def test_the_console_entry_point_exits_2_on_bad_arguments(tmp_path):
    done = subprocess.run([sys.executable, "-m", "recon", "run", "decoded", "--subject", "subj01", "--profile", "smoke",
                           "--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "recon run: error: stage 'decoded' needs a decoding target" in done.stderr
    assert not (tmp_path / "cache").exists()


def test_version_and_every_command_described():
    done = subprocess.run([sys.executable, "-m", "recon", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"recon {version('recon')}"
    for command in (["status"], ["verify"], ["table1"], ["cache"], ["compute"], ["run"]):
        code, out, _ = run_cli(*command, "--help")
        usage, description = out.split("\n\n")[:2]
        assert code == 0 and not description.startswith(("positional", "options")), (command, out[:300])


def test_status_into_a_closed_pipe_ends_without_a_traceback(tmp_path):
    """`recon status | head -1`: head leaves before status has written; that ended in a BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "recon", "status", "--profile", "smoke", "--cache", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_the_nsd_profile_without_its_data_says_what_to_set_and_where(tmp_path, monkeypatch):
    """Before: the error named /data/nsd without saying it was a default, status said "present" for an empty root
    and then failed, and the dataset stage (file checks only) refused to run without a GPU."""
    monkeypatch.delenv("RECON_NSD_ROOT", raising=False)
    if Path("/data/nsd").exists():
        pytest.skip("this machine has a /data/nsd")
    code, _, err = run_cli("run", "dataset", "--profile", "nsd", "--cache", tmp_path / "cache")
    assert code == 1 and "NSD root /data/nsd does not exist" in err and "RECON_NSD_ROOT" in err and "default" in err
    empty = tmp_path / "nsd"
    empty.mkdir()
    code, out, err = run_cli("status", "--profile", "nsd", "--nsd-root", empty, "--cache", tmp_path / "cache")
    assert code == 0 and f"NSD {empty}: missing" in out and "is not whole: missing NSD file" in err
    code, _, err = run_cli("run", "dataset", "--profile", "nsd", "--nsd-root", empty, "--cache", tmp_path / "cache")
    assert code == 1 and "missing NSD file" in err and "device" not in err  # no GPU asked of a file check


def test_help_lists_every_stage():
    code, out, _ = run_cli("run", "--help")
    assert code == 0 and all(name in out for name in stages.STAGES)


# -------------------------------------------------------------------------------- the stage list
def test_the_stage_list_matches_the_experiment():
    assert {m for m, _ in stages.RUNS} == set(METHODS) and ("[30]", "sd2") in stages.RUNS
    graph = stages.jobs(oracle=False)  # the oracle's jobs: tests/test_oracle.py
    assert len(graph) == 1 + 4 * 26 and len(set(graph)) == len(graph)
    order = {job: i for i, job in enumerate(graph)}
    assert all(order[need] < order[job] for job in graph for need in stages.needs(job))  # a valid order
    for job in graph:  # each job's command line names it back
        assert Job.from_marker_wildcards(job.stage, job.subject, job.part) == job
    assert stages.needs(Job("gan", "subj01"), generator="vae")[-1] == Job("features", "subj01", target="z")


# ---------------------------------------------------------------- stages computed on the smoke profile
#: the baseline's chain for one subject, in the order the workflow would run it
CHAIN = [Job("dataset"), Job("features", "subj01", target="z"), Job("features", "subj01", target="c"),
         Job("decoded", "subj01", target="z"), Job("decoded", "subj01", target="c"), Job("evaluation", "subj01"),
         Job("reconstruct", "subj01", method="[30]", variant="sd"),
         Job("identification", "subj01", method="[30]", variant="sd"),
         Job("swap", "subj01", method="[30]", variant="sd", true=("c",)),
         Job("oracle", method="[30]", variant="sd", true=("z", "c"))]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Runs CHAIN with ``recon run`` on an empty cache, recording the cache entries each call touches."""
    root = tmp_path_factory.mktemp("cli")
    cache = root / "cache"
    touched, results = {}, {}
    original = Cache._get_or_write

    def recording(self, stage, path, write):
        touched[current].add(path)
        return original(self, stage, path, write)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Cache, "_get_or_write", recording)
        for job in CHAIN:
            current = job
            touched[job] = set()
            results[job] = run_cli(*job.argv(), *SMOKE, "--cache", cache, "--done", root / "done" / job.marker())
    return {"root": root, "cache": cache, "touched": touched, "results": results}


def smoke_experiment(cache, subject="subj01"):
    from recon.profiles import get_profile
    from recon.experiment import Experiment

    return Experiment(get_profile("smoke", cache_dir=cache), subject, progress=False)


def test_run_computes_each_stage_into_the_cache_and_writes_its_marker(smoke):
    exp = smoke_experiment(smoke["cache"])
    for job in CHAIN:
        code, out, err = smoke["results"][job]
        assert code == 0, err
        entry = stages.entry_path(exp, job)
        assert out.startswith(f"{job}: {entry} (")
        marker = json.loads((smoke["root"] / "done" / job.marker()).read_text())
        assert marker["job"] == str(job) and marker["entry"] == str(entry) and marker["profile"] == "smoke"
        if job.stage != "dataset":
            exp.cache.load(entry)  # whole


def test_each_stage_reads_exactly_what_the_graph_says_it_needs(smoke):
    """The workflow's dependencies are the entries ``recon run`` really reads: the graph cannot drift."""
    exp = smoke_experiment(smoke["cache"])
    for job in CHAIN[1:]:
        expected = {stages.entry_path(exp, j) for j in stages.needs(job, exp.profile.generator, reader="subj01")
                    if j.stage != "dataset"}
        expected |= set(stages.entry_paths(exp, job))
        assert smoke["touched"][job] == expected, job


def test_each_product_lives_in_the_folder_named_after_its_stage(smoke):
    """One table of products (stages.STAGES): a job's entry lies in its stage's folder, and every entry that any job
    touched lies in a folder the table declares (a stage's own, or one it also writes)."""
    exp = smoke_experiment(smoke["cache"])
    for job in CHAIN[1:]:
        assert stages.entry_path(exp, job).parent == smoke["cache"] / job.stage, job
    touched = {path.parent.name for paths in smoke["touched"].values() for path in paths}
    assert touched <= set(stages.CACHE_KEYS) and {"reconstruct", "swap", "oracle", "pixel_metrics"} <= touched
    with pytest.raises(KeyError, match="unknown cache folder 'reconstructions'"):
        exp.entry_path("reconstructions", "[30]", "sd")


def test_a_second_run_reads_the_cache(smoke, monkeypatch):
    monkeypatch.setenv("RECON_CACHE_REQUIRE_WARM", "1")  # any computation would fail
    job = CHAIN[-1]
    assert run_cli(*job.argv(), *SMOKE, "--cache", smoke["cache"])[0] == 0
    code, _, err = run_cli("run", "decoded", "--subject", "subj01", "--target", "blip", *SMOKE,
                           "--cache", smoke["cache"])
    assert code == 1 and "recon: error: cache miss: stage 'decoded' entry" in err


def test_a_cache_required_warm_does_not_even_simulate_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("RECON_CACHE_REQUIRE_WARM", "1")
    code, _, err = run_cli("run", "features", "--subject", "subj01", "--target", "z", *SMOKE, "--cache", tmp_path / "c")
    assert code == 1 and "cache miss: the simulated NSD" in err and "`recon run dataset --profile smoke`" in err
    assert not (tmp_path / "c").exists()


def test_status_lists_what_is_cached_and_missing_per_subject_and_stage(smoke):
    code, out, _ = run_cli("status", *SMOKE, "--cache", smoke["cache"])
    assert code == 0
    per_subject, _, oracle = out.partition("\noracle ")
    rows = {(line[:16].strip(), line[16:24].strip()): line[24:].split() for line in per_subject.splitlines()
            if line.startswith(tuple(stages.STAGES))}
    assert len(rows) == 26
    assert rows[("decoded", "z")] == ["cached", "missing", "missing", "missing"]
    assert rows[("identification", "30-sd")][0] == "cached" and rows[("identification", "T-sd")][0] == "missing"
    assert rows[("captions", "")] == ["missing"] * 4
    oracle_rows = [line.split() for line in oracle.splitlines()[1:] if line.startswith(tuple(stages.STAGES))]
    assert len(oracle_rows) == ORACLE_ROWS
    assert {tuple(row[:2]) for row in oracle_rows if row[-1] == "cached"} == {("oracle", "30-sd-z+c"),
                                                                               ("swap", "30-sd-c")}
    # the oracle's runs come after its true inputs and the text-to-image reference
    assert [row[:2] for row in oracle_rows[4:6]] == [["oracle", "30-sd-z+c"], ["oracle", "T-sd-z+caption"]]
    counted = re.search(rf"{len(CHAIN) - 1} of {4 * 26 + ORACLE_ROWS} jobs cached \((\d+) entries of this profile; "
                        r"`recon verify` checks every entry in the cache, of any profile\)", out)
    assert counted, out[-500:]
    # status and verify count the same entries where the cache holds one profile's; they said "entries" of both
    _, checked, _ = run_cli("verify", "--cache", smoke["cache"])
    assert checked.startswith(f"{counted.group(1)} entries checked in "), (counted.group(0), checked)
    assert "recon run features --subject subj01 --target c_sd2 --profile smoke --cache" in out


def test_markers_written_from_the_cache_keep_the_dataset_oldest(tmp_path):
    """The dataset's marker took the NSD folder's time, which moves when a file is written beside the tree's files
    (the digests memo, 0.7 s after the first features): it came out newer than the features' markers, and Snakemake
    then planned every job of a warm cache again."""
    import os

    from recon.profiles import get_profile

    cache = tmp_path / "cache"
    assert run_cli("run", "features", "--subject", "subj01", "--target", "z", *SMOKE, "--cache", cache)[0] == 0
    nsd_root = get_profile("smoke", cache_dir=cache).nsd_root
    later = os.stat(nsd_root).st_mtime + 100
    os.utime(nsd_root, (later, later))  # a file written beside the tree after the features were computed
    code, out, _ = run_cli("status", "--write-markers", *SMOKE, "--cache", cache)
    assert code == 0 and f"snakemake --cores 2 --config profile=smoke cache={cache}" in out  # the options as given
    markers = stages.marker_folder(get_profile("smoke", cache_dir=cache))
    dataset, features = markers / "dataset.done", markers / "subj01" / "features-z.done"
    assert dataset.stat().st_mtime <= features.stat().st_mtime


def test_status_of_an_empty_cache_simulates_nothing(tmp_path):
    code, out, _ = run_cli("status", *SMOKE, "--cache", tmp_path / "cache", "--subject", "subj02")
    assert code == 0 and f"0 of {26 + ORACLE_ROWS} jobs cached (0 entries" in out and "recon run dataset --profile smoke" in out
    assert not (tmp_path / "cache").exists()


def test_table1_names_the_commands_that_fill_what_is_missing(smoke):
    code, out, err = run_cli("table1", *SMOKE, "--cache", smoke["cache"])
    assert code == 1 and out == ""
    assert f"Table 1 needs {4 * len(METHODS) - 1} identification entries" in err
    command = "recon run identification --subject subj01 --method T --variant sd --profile smoke --cache"
    assert f"{command} {smoke['cache']}" in err
    assert "--subject subj01 --method 30 " not in err  # that one is cached


def test_table1_prints_the_table_from_cached_identification_entries(smoke, tmp_path):
    """Identification entries whose correlations are known (each original best matches its own
    reconstruction for every metric but CLIP(Late), where it never does) give known scores."""
    cache = tmp_path / "cache"
    shutil.copytree(smoke["cache"], cache)
    exp = smoke_experiment(cache)
    n = len(exp.test_ids)
    for method in METHODS:
        R = {}
        for metric in METRICS:
            matrix = np.eye(n, dtype=np.float32) * (-1 if metric == "CLIP(Late)" else 1)
            R |= {f"mean {metric}": matrix, f"first {metric}": matrix}
        exp.cache.save(exp.entry_path("identification", method, "sd"), R)
    code, out, err = run_cli("table1", *SMOKE, "--cache", cache, "--subject", "subj01")
    assert code == 0, err
    assert "Table 1, two-way identification" in out and "profile smoke; subjects subj01" in out
    per_subject = out[out.index("per subject"):]
    row = next(line for line in per_subject.splitlines() if "+T+G+D" in line).split()
    assert [float(v) for v in row[1::2]] == [1, 1, 0, 1, 1, 1, 1]  # reproduced; the paper's beside each
    assert float(row[2]) == pytest.approx(0.901)  # the paper's CLIP(Early) for subj01, +T+G+D


def test_test_ids_from_the_design_alone_are_those_of_the_loaded_betas(smoke):
    """`recon status` keys features by the test ids read from the design, without loading betas."""
    exp = smoke_experiment(smoke["cache"], "subj02")
    design = exp.test_ids.copy()
    assert "data" not in exp.__dict__
    assert np.array_equal(design, exp.data.test_ids) and design.dtype == exp.data.test_ids.dtype


def test_image_scores_identify_intermediate_images_against_the_originals(smoke, tmp_path):
    """Experiment.image_scores (the gan page's +G image row): the presented images identify themselves on every
    metric; the same images in reversed order do not."""
    cache = tmp_path / "cache"
    shutil.copytree(smoke["cache"], cache)
    exp = smoke_experiment(cache)
    themselves = exp.image_scores(exp.test_images, "originals again")
    assert set(themselves) == set(METRICS) and all(v == 1.0 for v in themselves.values()), themselves
    shuffled = exp.image_scores(exp.test_images[::-1].copy(), "originals reversed")
    assert all(v < 1.0 for v in shuffled.values()), shuffled
    with pytest.raises(ValueError, match="image_scores: 1 images for"):
        exp.image_scores(exp.test_images[:1], "too few")
