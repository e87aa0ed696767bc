"""The paper's claims, each judged per subject by a paired difference over test images.

A claim compares two evaluations of the same test images (two methods, two models, or all test
images against the overlap-free subset) on one Table 1 metric. The unit is the test image: its
two-way identification accuracy (:meth:`recon.experiment.Experiment.per_image_scores`). The
statistic is the difference of the two means, and its 95% confidence interval is a percentile
bootstrap over test images, resampling the same images for both sides (paired), seeded from the
profile.

Verdicts, in words:

- a claim that B beats A is *reproduced* when the whole interval is above 0, *reversed* when it is
  below 0, and *not reproduced* when it contains 0;
- a claim that two evaluations agree is *reproduced* when the interval lies within
  ``± equivalence_margin`` (an equivalence test), and *not reproduced* otherwise: either a
  difference is detected or the data cannot rule one out;
- either is *borderline* when moving an end of the interval by :data:`BORDERLINE` or less could
  change that verdict: an end lies within rounding of its boundary, so another CPU could decide it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from .config import METRICS

#: Columns of the claims table, in order (also those of ``results/<profile>/claims.csv``).
COLUMNS = ("claim", "subject", "metric", "difference", "ci_low", "ci_high", "verdict")
#: with ``judge(oracle=True)``: the same comparison on the oracle runs (every decoded input replaced by the seen
#: image's own; the same for every subject, who saw the same test images)
ORACLE_COLUMNS = ("oracle_difference", "oracle_ci_low", "oracle_ci_high")
#: the verdict of a claim that needs the overlap list where none was given (NSD ships none; section 2.4's list
#: is the authors' own search of LAION-5B)
NOT_RUN = "not run: no overlap list given"
VERDICTS = ("reproduced", "not reproduced", "reversed", "borderline", NOT_RUN)

#: Two points of identification accuracy: about one between-subject sd of the paper's control
#: numbers (74.3 ± 1.7 %), so "no change" means no change larger than the subjects differ.
EQUIVALENCE_MARGIN = 0.02

#: How far a result may move on another CPU, whose kernels round differently: an interval end this close to a
#: verdict's boundary makes the verdict "borderline", and ``recon.results check`` allows numbers built on
#: another CPU to differ by this much. Measured with benchmarks/cpu_capability.py (2026-12-02, toy profile,
#: subj01, one AMD Zen 4 running PyTorch's AVX512 and then its AVX2 kernels, +G in float64): 1 pixel in 1.2
#: million of the +G images and about 1 in 10,000 of each method's generations differ, by one grey level;
#: Table 1's cells moved by at most 1.0e-4 (one image pair of 9,900) and the claims' interval ends by at most
#: 2.0e-4; over all four subjects a later build moved them by 5.0e-4 (:data:`MEASURED_MOVES`). The band is
#: twice that: room for another machine's rounding, not for a stage that amplifies it again (+G in float32
#: moved cells by up to 0.011).
BORDERLINE = 0.001
#: The largest moves of the claims' interval ends measured between builds on different kernels, each with where
#: it was measured. The second is the fresh-clone CI of 9670a9c on an Intel Xeon (AVX512 kernels, MKL's own
#: branch), checked by ``recon.results check`` against the committed build on AVX2 kernels and MKL's AVX2
#: branch (its Table 1 cells moved by at most 0.0004).
MEASURED_MOVES = {
    # subj01, PyTorch's AVX512 against its AVX2 kernels (benchmarks/measured/cpu_capability-toy-subj01-2026-12-02.json)
    "subj01": 2.0e-4,
    # all four subjects, AVX512 kernels and MKL's own branch against the committed AVX2 build (CI of 9670a9c)
    "all subjects": 5.0e-4,
}


def signed(difference: float) -> str:
    """A difference as the tables show it (``+0.012``); "—" where the claim was not run (NaN)."""
    return f"{difference:+.3f}" if np.isfinite(difference) else "—"


def _not_run(claim: Claim, overlap_ids) -> bool:
    """Whether ``claim`` needs the overlap list and none was given."""
    return claim.b_excludes_overlap and overlap_ids is None


def borderline_ratio() -> float:
    """How many times the largest measured move the borderline band is."""
    return BORDERLINE / max(MEASURED_MOVES.values())


@dataclass(frozen=True)
class Claim:
    """``b`` beats ``a`` (``kind="greater"``) or equals it (``kind="equal"``) on each of ``metrics``.

    ``a`` and ``b`` are (method, variant) pairs; ``b_excludes_overlap`` evaluates ``b`` without the
    test images on the overlap list (section 2.4's control)."""

    name: str
    key: str  # a short identifier, for glue names and file names
    metrics: tuple[str, ...]
    a: tuple[str, str]
    b: tuple[str, str]
    kind: str = "greater"
    b_excludes_overlap: bool = False


CLAIMS = (
    Claim("+T > [30]", "text", ("CLIP(Early)", "CLIP(Middle)", "CLIP(Late)", "Inception-v3"), ("[30]", "sd"), ("+T", "sd")),
    Claim("+G raises low-level CNN metrics", "gan", ("CNN(Early)", "CNN(Middle)"), ("+T", "sd"), ("+T+G", "sd")),
    Claim("+D raises CLIP(Late)", "depth", ("CLIP(Late)",), ("+T+G", "sd"), ("+T+G+D", "sd")),
    Claim("excluding overlapping images changes nothing", "overlap", ("Inception-v3",), ("[30]", "sd"), ("[30]", "sd"),
          kind="equal", b_excludes_overlap=True),
    Claim("SD 1.4 ≈ SD 2.0", "sd2", ("Inception-v3",), ("[30]", "sd"), ("[30]", "sd2"), kind="equal"),
)


#: Each method against [30] on all seven Table 1 metrics (section 2: the techniques "generally improved accuracy
#: over the baseline"); the claims page's ledger (recon.statements) judges them beside the five above.
METHOD_CLAIMS = tuple(
    Claim(f"{method} > [30] (all metrics)", f"{key}_vs_baseline", METRICS, ("[30]", "sd"), (method, "sd"))
    for method, key in (("+T", "text"), ("+T+G", "gan"), ("+T+G+D", "depth")))
#: The two control claims on all seven metrics (section 2.4: "no differences in other quantitative measures").
CONTROL_CLAIMS = (
    Claim("excluding overlapping images changes nothing (all metrics)", "overlap_all", METRICS, ("[30]", "sd"),
          ("[30]", "sd"), kind="equal", b_excludes_overlap=True),
    Claim("SD 1.4 ≈ SD 2.0 (all metrics)", "sd2_all", METRICS, ("[30]", "sd"), ("[30]", "sd2"), kind="equal"),
)
#: Every claim :func:`judge` computes for the claims page: the five above and the ledger's.
ALL_CLAIMS = CLAIMS + METHOD_CLAIMS + CONTROL_CLAIMS
#: The ledger's other paired comparisons (recon.ledger computes them, recon.statements declares what each tests), by
#: the name their rows carry in the claims table, with their kind: each a difference B - A per test image, its
#: paired bootstrap interval and the verdict rule of a "greater" claim (the borderline band included)
LEDGER_KINDS = {
    "[30] retains semantics (above chance)": "greater",
    "[30] blurred: SD's text-to-image sharper": "greater",
    "[30] blurred: +T sharper": "greater",
    "[30] blurred: the seen images sharper": "greater",
    "+G gains more on low-level metrics": "greater",
    "decoded captions identify their image (above chance)": "greater",
    "BLIP's captions identify their image (above chance)": "greater",
    "+D steadies the generations (spread falls)": "greater",
    "+D gains more where depth is better decoded (halves)": "greater",
    "+D harms the worst-decoded quartile (loss)": "greater",
}


def resampled_indices(n: int, n_boot: int = 10_000, seed: int = 0, chunk: int = 1000):
    """The bootstrap's resamples of ``n`` test images, ``chunk`` at a time: (rows, n) index arrays drawn with
    replacement from one generator seeded with ``seed``, ``n_boot`` rows in all. Every bootstrap of the claims and
    of the ledger draws them here, so the same seed resamples the same images."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def bootstrap_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 10_000, seed: int = 0,
                         level: float = 0.95, chunk: int = 1000) -> tuple[float, float, float]:
    """mean(b) - mean(a) and its percentile bootstrap CI, resampling image indices for both.

    ``a`` and ``b`` hold one value per test image, in the same order; NaN marks an image absent
    from one side (the overlap-excluded subset), so each resample averages the images it drew
    that are present. Resamples are drawn ``chunk`` at a time to bound memory at NSD's size."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two 1-d arrays of one length, got {a.shape} and {b.shape}")
    if np.isnan(a).all() or np.isnan(b).all():
        raise ValueError("no test image is present on both sides")
    stats = np.concatenate([_present_mean(b[idx]) - _present_mean(a[idx])
                            for idx in resampled_indices(len(a), n_boot, seed, chunk)])
    stats = stats[np.isfinite(stats)]  # a resample that drew no present image on one side
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    # rounded far below any meaningful difference, so that floating-point residue (a percentile
    # interpolated between two equal means gives 3e-18, not 0) can never decide a verdict
    return tuple(round(float(v), 12) for v in (np.nanmean(b) - np.nanmean(a), low, high))


def _present_mean(values: np.ndarray) -> np.ndarray:
    """Row means over the non-NaN entries; NaN for a row with none (no warning, unlike nanmean)."""
    present = ~np.isnan(values)
    counts = present.sum(axis=1)
    sums = np.where(present, values, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(values), np.nan), where=counts > 0)


def verdict(kind: str, low: float, high: float, margin: float = EQUIVALENCE_MARGIN,
            borderline: float = BORDERLINE) -> str:
    """The claim's verdict from its confidence interval (see the module's documentation): ``borderline``
    where moving either end by ``borderline`` or less gives another verdict."""
    # the verdict is monotone in each end, so the corners of the band decide whether one within it differs
    corners = {_strict_verdict(kind, low + d_low, high + d_high, margin)
               for d_low in (-borderline, 0.0, borderline) for d_high in (-borderline, 0.0, borderline)
               if low + d_low <= high + d_high}
    return corners.pop() if len(corners) == 1 else "borderline"


def verdicts_within(kind: str, low: float, high: float, distance: float, steps: int = 21) -> set[str]:
    """The verdicts (borderline included) of the interval with each end moved by ``distance`` at most: what
    another CPU may report for it. The verdict is not monotone in the ends (borderline lies between two
    others), so the ends are moved over a grid of ``steps`` x ``steps``."""
    moves = np.linspace(-distance, distance, steps)
    return {verdict(kind, low + a, high + b) for a in moves for b in moves if low + a <= high + b}


def kind_of(claim_name: str) -> str | None:
    """The kind (``greater`` or ``equal``) of the claim of :data:`ALL_CLAIMS` named ``claim_name``, or of a row of the
    ledger's paired comparisons (:data:`LEDGER_KINDS`); None if none is."""
    return next((claim.kind for claim in ALL_CLAIMS if claim.name == claim_name), LEDGER_KINDS.get(claim_name))


def _strict_verdict(kind: str, low: float, high: float, margin: float) -> str:
    if kind == "greater":
        return "reproduced" if low > 0 else "reversed" if high < 0 else "not reproduced"
    if kind == "equal":
        return "reproduced" if -margin <= low and high <= margin else "not reproduced"
    raise ValueError(f"unknown claim kind {kind!r}; expected 'greater' or 'equal'")


def _paired(per_image: Callable, claim: Claim, test_ids: np.ndarray, overlap_ids) -> tuple[dict, dict]:
    a = per_image(*claim.a)
    if not claim.b_excludes_overlap:
        return a, per_image(*claim.b)
    if overlap_ids is None:
        raise ValueError(f"claim {claim.name!r} needs the overlap list (overlap_ids)")
    keep = ~np.isin(test_ids, np.asarray(overlap_ids))
    subset = per_image(*claim.b, exclude_ids=overlap_ids)
    b = {}
    for metric, values in subset.items():  # back to one slot per test image, NaN where excluded
        b[metric] = np.full(len(test_ids), np.nan)
        b[metric][keep] = values
    return a, b


def judge(experiments: Mapping, overlap_ids=None, claims=CLAIMS, n_boot: int = 10_000, seed: int = 0,
          margin: float = EQUIVALENCE_MARGIN, borderline: float = BORDERLINE, oracle: bool = False) -> pd.DataFrame:
    """One row per (claim, subject, metric) with the columns of :data:`COLUMNS` (and, with ``oracle``, those of
    :data:`ORACLE_COLUMNS`).

    ``experiments`` maps subject -> :class:`~recon.experiment.Experiment` (anything with
    ``per_image_scores`` and ``data.test_ids``); every number comes from their cached R matrices. The oracle's
    runs are shared by the subjects; they are read through the first experiment."""
    rows = []
    for claim in claims:
        if _not_run(claim, overlap_ids):  # every other claim runs
            rows += [dict(claim=claim.name, subject=subject, metric=metric, difference=np.nan, ci_low=np.nan,
                          ci_high=np.nan, verdict=NOT_RUN) for subject in experiments for metric in claim.metrics]
            continue
        for subject, exp in experiments.items():
            a, b = _paired(exp.per_image_scores, claim, exp.data.test_ids, overlap_ids)
            for metric in claim.metrics:
                difference, low, high = bootstrap_difference(a[metric], b[metric], n_boot, seed)
                rows.append(dict(claim=claim.name, subject=subject, metric=metric, difference=difference,
                                 ci_low=low, ci_high=high, verdict=verdict(claim.kind, low, high, margin, borderline)))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if not oracle:
        return table
    exp = next(iter(experiments.values()))

    def on_true_inputs(method, variant, exclude_ids=None):
        return exp.per_image_scores(method, variant, exclude_ids, true="all")

    differences = {}
    for claim in claims:
        if _not_run(claim, overlap_ids):
            differences |= {(claim.name, metric): (np.nan, np.nan, np.nan) for metric in claim.metrics}
            continue
        a, b = _paired(on_true_inputs, claim, exp.data.test_ids, overlap_ids)
        for metric in claim.metrics:
            differences[claim.name, metric] = bootstrap_difference(a[metric], b[metric], n_boot, seed)
    oracle_values = pd.DataFrame([differences[name, metric] for name, metric in zip(table["claim"], table["metric"])],
                                 columns=list(ORACLE_COLUMNS), index=table.index)
    return pd.concat([table, oracle_values], axis=1)


def glue_verdicts(table: pd.DataFrame, claims=CLAIMS) -> None:
    """Glue each claim's verdict counts as ``verdict_<key>_<metric>`` (e.g. ``verdict_text_CLIP(Late)``) and, for a
    table with the oracle's columns, what the pair of differences says as ``oracle_<key>_<metric>``."""
    from myst_nb import glue

    keys = {claim.name: claim.key for claim in claims}
    for (name, metric), row in summary(table).iterrows():
        glue(f"verdict_{keys[name]}_{metric}", row["verdicts"], display=False)
        if "oracle difference" in row:
            sentence = oracle_sentence(row) if np.isfinite(row["oracle difference"]) else NOT_RUN
            glue(f"oracle_{keys[name]}_{metric}", sentence, display=False)


def oracle_sentence(row: pd.Series) -> str:
    """One row of :func:`summary` in words: the difference on the seen images' own inputs, with its interval,
    beside the decoded one."""
    low, high = row["oracle interval"]
    return (f"on the seen images' own inputs the difference is {row['oracle difference']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}]; on decoded inputs {row['mean difference']:+.3f} on average over subjects")


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim and metric: how many subjects got each verdict, e.g. ``reproduced 3/4, not reproduced 1/4``, the
    mean difference over subjects and, where the table has them, the oracle's difference and interval."""
    def words(verdicts: pd.Series) -> str:
        counts = verdicts.value_counts()
        return ", ".join(f"{v} {counts[v]}/{len(verdicts)}" for v in VERDICTS if v in counts)

    grouped = table.groupby(["claim", "metric"], sort=False)
    out = pd.DataFrame({"mean difference": grouped["difference"].mean(), "verdicts": grouped["verdict"].agg(words)})
    if ORACLE_COLUMNS[0] in table:  # one value per claim and metric, repeated in every subject's row
        first = grouped[list(ORACLE_COLUMNS)].first()
        out["oracle difference"] = first["oracle_difference"]
        out["oracle interval"] = list(zip(first["oracle_ci_low"], first["oracle_ci_high"]))
    return out
