"""benchmarks/gpu_check.py on tiny configurations (CI has no GPU): every measurement runs through the
package's functions, and the report and the Markdown the book includes are written."""

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert module.main(["--tiny", "--out-dir", str(tmp_path / "gpu"), "--workdir", str(tmp_path / "work")]) == 0
    finally:
        sys.modules.pop(spec.name, None)
    (report_file,) = (tmp_path / "gpu").glob("cpu-*-tiny.json")
    report = json.loads(report_file.read_text())
    measured = {(row["what"], row["setting"]) for row in report["rows"]}
    assert {what for what, _ in measured} == {"img2img", "depth2img", "BLIP captions", "+G", "eigendecomposition",
                                              "identification"}
    assert {("img2img", "batch 1"), ("img2img", "batch 2"), ("depth2img", "batch 2")} <= measured
    assert all(row["value"] > 0 for row in report["rows"])
    assert report["subject"]["generation_hours"] > 0
    summary = (tmp_path / "gpu" / "latest.md").read_text()
    assert "tiny configurations" in summary and "| img2img | batch 2 |" in summary


def test_the_book_includes_the_committed_figures():
    page = (SCRIPT.parent.parent / "book" / "nsd_scale.md").read_text()
    assert "{include} ../results/gpu/latest.md" in page
    assert (SCRIPT.parent.parent / "results" / "gpu" / "latest.md").is_file()
