"""The claims' statistics: paired bootstrap differences, verdicts, and the table built from experiments."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recon import claims


def test_bootstrap_difference_is_the_paired_mean_difference_with_a_covering_interval():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.5, 0.9, 300)
    b = a + 0.05 + rng.normal(0, 0.02, 300)  # paired: b beats a by 0.05 on every image, give or take
    difference, low, high = claims.bootstrap_difference(a, b, n_boot=2000, seed=0)
    assert difference == pytest.approx(b.mean() - a.mean())
    assert low < difference < high
    assert 0.045 < low and high < 0.055  # pairing removes the between-image spread of a
    assert claims.bootstrap_difference(a, b, n_boot=2000, seed=0) == (difference, low, high)  # seeded


def test_bootstrap_ignores_images_absent_from_one_side():
    a = np.array([0.6, 0.7, 0.8, 0.9] * 25)
    b = a.copy()
    b[::4] = np.nan  # the overlap-excluded subset
    difference, low, high = claims.bootstrap_difference(a, b, n_boot=500, seed=3)
    assert difference == pytest.approx(np.nanmean(b) - a.mean())
    assert np.isfinite([low, high]).all() and low <= difference <= high


@pytest.mark.parametrize("a, b", [(np.zeros(3), np.zeros(4)), (np.zeros((2, 2)), np.zeros((2, 2))),
                                  (np.full(3, np.nan), np.zeros(3))])
def test_bootstrap_rejects_unpaired_input(a, b):
    with pytest.raises(ValueError):
        claims.bootstrap_difference(a, b, n_boot=10)


@pytest.mark.parametrize("kind, low, high, expected", [
    ("greater", 0.01, 0.05, "reproduced"),
    ("greater", -0.01, 0.05, "not reproduced"),
    ("greater", -0.05, -0.01, "reversed"),
    ("equal", -0.01, 0.015, "reproduced"),
    ("equal", -0.03, 0.01, "not reproduced"),  # cannot rule out a difference beyond the margin
    ("equal", 0.025, 0.04, "not reproduced"),  # a difference
    # within claims.BORDERLINE of a boundary: another CPU's rounding could decide these
    ("greater", -0.02, -9.8e-05, "borderline"),  # subj05's "+D raises CLIP(Late)" with +G in float32
    ("greater", -0.015, 0.0009, "borderline"),
    ("greater", 0.0005, 0.05, "borderline"),
    ("equal", -0.0195, 0.01, "borderline"),
    ("equal", -0.01, 0.0201, "borderline"),
])
def test_verdicts(kind, low, high, expected):
    assert claims.verdict(kind, low, high, borderline=0.001) == expected
    with pytest.raises(ValueError, match="unknown claim kind"):
        claims.verdict("less", low, high)


def test_a_verdict_outside_the_band_survives_any_move_within_it():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        kind = rng.choice(["greater", "equal"])
        low, high = np.sort(rng.uniform(-0.05, 0.05, 2))
        word = claims.verdict(kind, low, high, borderline=0.001)
        if word != "borderline":
            d_low, d_high = rng.uniform(-0.001, 0.001, 2)
            if low + d_low <= high + d_high:
                assert claims.verdict(kind, low + d_low, high + d_high, borderline=0.0) == word


class FakeExperiment:
    """Per-image scores by (method, variant): +T beats [30] by 0.1 everywhere, SD 2.0 equals SD 1.4."""

    def __init__(self, n=60, seed=0):
        rng = np.random.default_rng(seed)
        self.base = rng.uniform(0.6, 0.8, n)
        self.data = SimpleNamespace(test_ids=np.arange(100, 100 + n))
        self.calls = []

    def per_image_scores(self, method, variant="sd", exclude_ids=None, protocol="takagi"):
        self.calls.append((method, variant, exclude_ids is not None))
        shift = {"[30]": 0.0, "+T": 0.1, "+T+G": 0.05, "+T+G+D": 0.0}[method]
        values = self.base + shift
        if exclude_ids is not None:
            values = values[~np.isin(self.data.test_ids, exclude_ids)]
        return {m: values.copy() for m in ("CLIP(Early)", "CLIP(Middle)", "CLIP(Late)", "CNN(Early)",
                                           "CNN(Middle)", "CNN(Late)", "Inception-v3")}


def test_judge_builds_one_row_per_claim_subject_and_metric():
    experiments = {"subj01": FakeExperiment(seed=0), "subj02": FakeExperiment(seed=1)}
    table = claims.judge(experiments, overlap_ids=[100, 101, 102], n_boot=300, seed=0)
    assert list(table.columns) == list(claims.COLUMNS)
    assert len(table) == 2 * sum(len(c.metrics) for c in claims.CLAIMS)
    by_claim = table.groupby("claim")["verdict"].agg(set)
    assert by_claim["+T > [30]"] == {"reproduced"}
    assert by_claim["+G raises low-level CNN metrics"] == {"reversed"}  # +T+G is 0.05 below +T here
    assert by_claim["+D raises CLIP(Late)"] == {"reversed"}
    assert by_claim["SD 1.4 ≈ SD 2.0"] == {"reproduced"}  # identical values: a zero-width interval
    overlap = table[table.claim == "excluding overlapping images changes nothing"]
    assert (overlap.difference.abs() < 0.02).all()
    assert ("[30]", "sd", True) in experiments["subj01"].calls
    summary = claims.summary(table)
    assert summary.loc[("+T > [30]", "CLIP(Late)"), "verdicts"] == "reproduced 2/2"


def test_without_an_overlap_list_the_overlap_claim_is_not_run_and_the_others_are_judged():
    """NSD ships no overlap list: the claims page stopped with a ConfigError on nsd."""
    experiments = {"subj01": FakeExperiment(seed=0), "subj02": FakeExperiment(seed=1)}
    table = claims.judge(experiments, overlap_ids=None, n_boot=300, seed=0)
    overlap = table[table.claim == "excluding overlapping images changes nothing"]
    assert len(overlap) == 2 and set(overlap.verdict) == {claims.NOT_RUN} and overlap.difference.isna().all()
    others = table[table.claim != "excluding overlapping images changes nothing"]
    assert claims.NOT_RUN not in set(others.verdict) and others.difference.notna().all()
    assert claims.summary(table).loc[("excluding overlapping images changes nothing", "Inception-v3"),
                                     "verdicts"] == f"{claims.NOT_RUN} 2/2"


def test_recon_claims_judges_from_the_cache_with_or_without_an_overlap_list(tmp_path, monkeypatch, capsys):
    from recon import cli

    class Cached(FakeExperiment):
        cache = SimpleNamespace(require_warm=False)

    monkeypatch.setattr(cli, "_experiments", lambda profile, subjects: {s: Cached(seed=i) for i, s in
                                                                         enumerate(subjects)})
    monkeypatch.setattr(cli, "_missing", lambda *args: False)  # every identification entry cached
    common = ["claims", "--profile", "nsd", "--cache", str(tmp_path), "--n-boot", "200"]
    assert cli.main(common) == 0
    out = capsys.readouterr().out
    assert "profile nsd" in out and f"{claims.NOT_RUN} 4/4" in out and "+T > [30]" in out and "reproduced 4/4" in out
    listed = tmp_path / "overlap.csv"
    listed.write_text("nsdId\n100\n101\n102\n")
    assert cli.main(common + ["--overlap-list", str(listed)]) == 0
    assert claims.NOT_RUN not in capsys.readouterr().out
    assert cli.main(common + ["--overlap-list", str(tmp_path / "missing.csv")]) == 1  # given but unreadable
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"overlap_list {tmp_path / 'missing.csv'} does not exist" in err


def test_the_borderline_band_is_stated_against_the_moves_measured():
    """The claims page and the how-built page state the band as a multiple of the largest measured move (they
    said "twice" and "five times"); the subj01 move is the one benchmarks/measured records."""
    import json

    from recon.config import REPO_ROOT

    measured = json.loads((REPO_ROOT / "benchmarks" / "measured" / "cpu_capability-toy-subj01-2026-12-02.json"
                           ).read_text())
    (comparison,) = measured["comparisons"].values()
    assert round(comparison["claim interval ends: largest |d|"], 4) == claims.MEASURED_MOVES["subj01"]
    assert claims.borderline_ratio() == claims.BORDERLINE / max(claims.MEASURED_MOVES.values()) == 2.0
