"""benchmarks/build.py reads a .ci/run log into the how-built page's build-cost tables."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "build.py"

LOG = """== tests (README: make test)
============================= slowest 25 durations =============================
95.51s call     tests/test_notebooks.py::test_sections_run[claims]
12.03s setup    tests/test_methods.py::test_img2img_shapes
======================= 309 passed in 466.64s (0:07:46) ========================
== book
decoded z subj01: /tmp/x/.cache/recon/decoded/abc (30.5 s)
gan subj01: /tmp/x/.cache/recon/gan/def (300.0 s)
gan subj02: /tmp/x/.cache/recon/gan/ghi (290.0 s)
reconstruct TG-sd subj01: /tmp/x/.cache/recon/reconstructions/jkl (59.5 s)
4 jobs of subj01, subj02 cached in 400 s (680 s of job time, 2 processes)
/tmp/x/book/notebooks/claims.ipynb: Executed notebook in 2934.14 seconds [mystnb]
/tmp/x/book/notebooks/baseline.ipynb: Executed notebook in 301.50 seconds [mystnb]
== done: tests 520 s (including set-up), book 3500 s, browser 40 s
"""


@pytest.fixture
def build():
    spec = importlib.util.spec_from_file_location("build_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_the_log_gives_phases_notebooks_and_slowest_tests(build):
    report = build.parse_ci_log(LOG)
    assert report["phases"] == {"tests": 520, "book": 3500, "browser": 40, "whole .ci/run": 4060}
    assert report["pytest"] == {"passed": 309, "seconds": 466.64}
    assert [row["notebook"] for row in report["notebooks"]] == ["claims", "baseline"]
    assert report["compute"] == {"seconds": 400, "jobs": 4, "job_seconds": 680, "workers": 2,
                                 "by_stage": {"gan": 590.0, "reconstruct TG-sd": 59.5, "decoded": 30.5}}
    assert build.parse_ci_log(LOG.replace("4 jobs of", "(no compute) of"))["compute"] is None
    assert report["slowest_tests"][0] == {"test": "tests/test_notebooks.py::test_sections_run[claims]",
                                          "phase": "call", "seconds": 95.51}


def test_an_unfinished_log_is_refused(build):
    with pytest.raises(build.LogError, match="did not finish"):
        build.parse_ci_log(LOG.rsplit("== done", 1)[0])


def test_main_writes_the_report_and_the_tables(build, tmp_path):
    log, stages = tmp_path / "ci.log", tmp_path / "stages.json"
    log.write_text(LOG)
    stages.write_text(json.dumps({"meta": {"profile": "toy", "subject": "subj01"}, "total_seconds": 12.0,
                                  "stages": [{"stage": "+G feature matching", "seconds": 12.0}]}))
    assert build.main([str(log), "--stages", str(stages), "--date", "2026-12-03", "--out-dir", str(tmp_path / "b")]) == 0
    (report_file,) = (tmp_path / "b").glob("*-2026-12-03.json")
    assert json.loads(report_file.read_text())["phases"]["book"] == 3500
    summary = (tmp_path / "b" / "latest.md").read_text()
    assert ":name: tbl-build-cost" in summary and "| book | 58.3 | 15 |" in summary
    assert "| pytest alone | 7.8 | 4 |" in summary and "| set-up and tests | 8.7 | — |" in summary
    assert ":name: tbl-build-jobs" in summary and "| gan | 9.8 | 87% |" in summary
    assert "| claims | 48.9 |" in summary and "| +G feature matching | 12 |" in summary


def test_an_earlier_report_is_shown_beside_with_its_commit(build, tmp_path):
    log = tmp_path / "ci.log"
    log.write_text(LOG)
    assert build.main([str(log), "--date", "2026-12-03", "--commit", "aaa1111", "--out-dir", str(tmp_path / "a")]) == 0
    (earlier,) = (tmp_path / "a").glob("*-2026-12-03-aaa1111.json")
    assert json.loads(earlier.read_text())["meta"]["commit"] == "aaa1111"
    faster = LOG.replace("book 3500 s", "book 1800 s").replace("(300.0 s)", "(200.0 s)").replace(
        "680 s of job time", "580 s of job time")
    log.write_text(faster)
    assert build.main([str(log), "--date", "2026-12-04", "--commit", "bbb2222", "--before", str(earlier),
                       "--out-dir", str(tmp_path / "b")]) == 0
    summary = (tmp_path / "b" / "latest.md").read_text()
    assert "commit bbb2222" in summary and "before: commit aaa1111" in summary
    assert "| phase | minutes | before | target (minutes) |" in summary
    assert "| book | 30.0 | 58.3 | 15 |" in summary and "| browser | 0.7 | 0.7 | — |" in summary
    assert "| gan | 8.2 | 84% | 9.8 |" in summary and "(before: 6.7 for 11.3)" in summary
