"""The ledger of the paper's statements computed on the experiments (issue 48): every statement of
:data:`recon.statements.LEDGER` answered per subject from the products Table 1 already caches.

:func:`compute` gives three tables: the statements that are paired comparisons over test images, in the claims
table's columns (``results/<profile>/claims.csv``), each row's name one of :data:`recon.claims.LEDGER_KINDS`, judged
by the claims' bootstrap and verdict rule; what has no verdict of that kind (``results/<profile>/ledger.csv``): the
captioning scores, the caption identification's three accuracies, the depth maps' decoding quality; and the tests
whose statistics amplify a CPU's rounding too far to be locked (:data:`AMPLIFYING`: the heterogeneity tests, the
slope of +D's gain on depth quality), shown on the page. :func:`summary` reads them with the claims table into the
claims page's first table, one row per statement.

Nothing here makes a new generation: the sharpness and spread read the cached reconstructions and the text-to-image
reference (:attr:`recon.experiment.Experiment.text_to_image`, a stage of its own), the captions and depth maps are
the cached ones (decoded and from the seen images), and the two computations made here are light (CLIP's text
tower on the captions; AlexNet's CNN(Middle) on every generation of two methods).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from . import claims, statements
from .config import METRICS
from .evaluate import EvaluationFeatures

#: the columns of ``results/<profile>/ledger.csv``
MEASURE_COLUMNS = ("statement", "subject", "measure", "value")
#: the p-value below which a heterogeneity test says the effects differ
HETEROGENEITY_LEVEL = 0.05
#: Why the third table of :func:`compute` is not locked: measured between this toy build on PyTorch's AVX2 and its
#: AVX512 kernels (2026-12-06), where one image's identification moved by one comparison (1/99) per subject and
#: Table 1 by under 1e-3, the metrics' Wald Q moved by up to 0.4, Cochran's Q by 0.06 and its p by 0.012, the
#: slope of +D's gain on depth quality by 0.007 (quality varies little, sd ~0.02): beyond the 1e-3 that
#: ``recon.results check`` allows another CPU
AMPLIFYING = {"heterogeneity Q": 0.4, "heterogeneity p": 0.012, "slope of gain on depth quality": 0.007}


def _row(name: str, subject: str, metric: str, difference: float, low: float, high: float, verdict: str) -> dict:
    if name not in claims.LEDGER_KINDS:
        raise KeyError(f"{name!r} is not a ledger comparison of recon.claims.LEDGER_KINDS")
    return dict(claim=name, subject=subject, metric=metric, difference=difference, ci_low=low, ci_high=high,
                verdict=verdict)


def _paired(name: str, subject: str, metric: str, a, b, n_boot: int, seed: int) -> dict:
    result = statements.paired(a, b, claims.LEDGER_KINDS[name], n_boot, seed)
    return _row(name, subject, metric, result["difference"], result["ci_low"], result["ci_high"], result["verdict"])


def spread_features(evaluator: EvaluationFeatures, generations: np.ndarray) -> np.ndarray:
    """(n, samples, d) CNN(Middle) features of every generation (n, samples, H, W, 3)."""
    n, samples = generations.shape[:2]
    flat = np.asarray(generations).reshape(n * samples, *generations.shape[2:])
    return evaluator.cnn_middle(flat).reshape(n, samples, -1)


def compute(experiments: Mapping, n_boot: int = 10_000, seed: int = 0) -> tuple[pd.DataFrame, ...]:
    """The ledger on ``experiments`` (subject -> Experiment), in one pass over the subjects, each product read and
    each embedding computed once. Three tables:

    - the paired comparisons per subject as rows of the claims table (:data:`recon.claims.COLUMNS`, oracle columns
      NaN: these have no oracle run of their own);
    - the measures without a paired verdict, one value per row (:data:`MEASURE_COLUMNS`): the captions' scores
      against COCO's references (decoded and BLIP's of the seen images), the caption identification's mean
      accuracies and the depth maps' mean decoding quality;
    - the tests (same columns) whose statistics amplify a CPU's rounding, shown but not locked in ``results/``
      (:data:`AMPLIFYING`): the heterogeneity of each method's improvement over [30] between metrics (per subject)
      and between subjects (per metric), and the slope of +D's gain on depth decoding quality. Their inputs, each
      gain and its interval, are the claims table's rows."""
    evaluator = None
    rows, measured, tests, scores_of = [], [], [], {}

    def add(statement: str, subject: str, measure: str, value: float, table: list = measured) -> None:
        table.append(dict(statement=statement, subject=subject, measure=measure, value=float(value)))

    for subject, exp in experiments.items():
        evaluator = evaluator or EvaluationFeatures(exp.profile)
        scores = scores_of[subject] = {m: exp.per_image_scores(m, "sd") for m in ("[30]", "+T", "+T+G", "+T+G+D")}
        captions = {"decoded": exp.decoded_captions, "BLIP's": exp.true_captions}
        texts = {who: text_embeddings(evaluator, said) for who, said in captions.items()}
        images = exp.original_features()["CLIP(Late)"]
        identified = statements.caption_identification_rows(images, texts["decoded"], texts["BLIP's"], seed)
        quality = statements.depth_quality(exp.decoded_depth, exp.true_depth)
        gain = scores["+T+G+D"]["CLIP(Late)"] - scores["+T+G"]["CLIP(Late)"]  # +D's, against its depth's decoding
        depth = statements.gain_against_quality(gain, quality, n_boot, seed)
        rows += _paired_rows(subject, exp, evaluator, scores, identified, depth, n_boot, seed)

        references = exp.reader.captions(exp.test_ids)
        for who, said in captions.items():
            corpus, _ = statements.caption_scores(said, references)
            for name, value in corpus.items():
                add("captions_represent", subject, f"{who} captions {name}", value)
            add("captions_represent", subject, f"{who} captions CLIP-score",
                statements.clip_score(images, texts[who]).mean())
        for name, values in identified.items():
            add("captions_identify", subject, f"{name} accuracy", values.mean())
        for claim in claims.METHOD_CLAIMS:
            test = statements.metric_heterogeneity(scores["[30]"], scores[claim.b[0]], METRICS, n_boot, seed)
            for name in ("q", "df", "p_value"):
                add("heterogeneous", subject, f"{claim.b[0]} gain across metrics: {name}", getattr(test, name), tests)
        add("depth_harm", subject, "mean r of decoded and seen depth maps", quality.mean())
        for name in ("slope", "slope_ci_low", "slope_ci_high"):
            add("depth_stable", subject, f"+D gain on depth quality: {name}", depth[name], tests)
    if len(experiments) > 1:
        for claim in claims.METHOD_CLAIMS:
            for metric in METRICS:
                per_subject = {s: (scores["[30]"][metric], scores[claim.b[0]][metric])
                               for s, scores in scores_of.items()}
                _, test = statements.subject_heterogeneity(per_subject, n_boot, seed)
                for name in ("q", "df", "p_value", "i2"):
                    add("heterogeneous", "all", f"{claim.b[0]} gain across subjects, {metric}: {name}",
                        getattr(test, name), tests)
    table = pd.DataFrame(rows, columns=list(claims.COLUMNS))
    for column in claims.ORACLE_COLUMNS:
        table[column] = np.nan
    return table, *(pd.DataFrame(values, columns=list(MEASURE_COLUMNS)) for values in (measured, tests))


def _paired_rows(subject: str, exp, evaluator: EvaluationFeatures, scores: Mapping, identified: Mapping,
                 depth: Mapping, n_boot: int, seed: int) -> list[dict]:
    """One subject's paired comparisons (:data:`recon.claims.LEDGER_KINDS`), in the claims table's order."""
    rows = [_paired("[30] retains semantics (above chance)", subject, "CLIP(Late)", np.full(len(exp.test_ids), 0.5),
                    scores["[30]"]["CLIP(Late)"], n_boot, seed)]
    blurred = statements.sharpness_per_image(exp.reconstruct("[30]", "sd"))
    for name, reference in (("[30] blurred: SD's text-to-image sharper", exp.text_to_image["sharpness"]),
                            ("[30] blurred: +T sharper", statements.sharpness_per_image(exp.reconstruct("+T", "sd"))),
                            ("[30] blurred: the seen images sharper", statements.sharpness_per_image(exp.test_images))):
        rows.append(_paired(name, subject, "high-frequency share", blurred, reference, n_boot, seed))
    contrast = statements.metric_contrast(scores["+T"], scores["+T+G"], n_boot=n_boot, seed=seed)
    rows.append(_row("+G gains more on low-level metrics", subject, "low- minus high-level gain",
                     contrast["difference"], contrast["ci_low"], contrast["ci_high"], contrast["verdict"]))
    rows.append(_paired("decoded captions identify their image (above chance)", subject, "CLIP image-text",
                        identified["chance"], identified["decoded"], n_boot, seed))
    rows.append(_paired("BLIP's captions identify their image (above chance)", subject, "CLIP image-text",
                        identified["chance"], identified["ceiling"], n_boot, seed))
    without, with_depth = (spread_features(evaluator, exp.reconstruct(method, "sd")) for method in ("+T+G", "+T+G+D"))
    spread = statements.compare_spread(without, with_depth, n_boot, seed)
    rows.append(_row("+D steadies the generations (spread falls)", subject, "CNN(Middle) spread",
                     spread["difference"], spread["ci_low"], spread["ci_high"], spread["verdict"]))
    rows.append(_row("+D gains more where depth is better decoded (halves)", subject, "CLIP(Late) gain",
                     depth["halves"], depth["halves_ci_low"], depth["halves_ci_high"], depth["halves_verdict"]))
    # the loss (minus the gain) of the worst-decoded quarter, so that "reproduced" reads as the others: above 0
    rows.append(_row("+D harms the worst-decoded quartile (loss)", subject, "CLIP(Late) loss",
                     -depth["worst_gain"], -depth["worst_ci_high"], -depth["worst_ci_low"], depth["worst_verdict"]))
    return rows


def text_embeddings(evaluator: EvaluationFeatures, captions) -> np.ndarray:
    """CLIP text embeddings of ``captions``, each distinct caption embedded once: equal captions (decoded captions
    repeat) get equal embeddings bit for bit, where a batch may round its rows differently by their place, so that
    their similarities tie exactly on every CPU (:func:`recon.statements.cosine_similarity`)."""
    distinct, inverse = np.unique(np.asarray(captions, dtype=str), return_inverse=True)
    return evaluator.clip_text(list(distinct))[inverse.reshape(-1)]


def _verdict_words(verdicts: pd.Series) -> str:
    counts = verdicts.value_counts()
    if len(verdicts) == 1:
        return str(verdicts.iloc[0])
    return ", ".join(f"{v} {counts[v]}/{len(verdicts)}" for v in claims.VERDICTS if v in counts)


def _measure(table: pd.DataFrame, statement: str, subject: str, measure: str) -> float:
    hit = table[(table["statement"] == statement) & (table["subject"] == subject) & (table["measure"] == measure)]
    return float(hit["value"].iloc[0]) if len(hit) else float("nan")


def summary(claims_table: pd.DataFrame, measure_table: pd.DataFrame, test_table: pd.DataFrame,
            subjects) -> pd.DataFrame:
    """One row per statement of the ledger: its section, the quoted words, the test, and per subject what the
    computation says (the verdicts of its rows, counted over metrics; the heterogeneity tests that reject equal
    effects; the captions' scores beside BLIP's), the same test on the oracle's runs where it has one, then what
    is not computed and why."""
    out = []
    for statement in statements.LEDGER:
        row = dict(section=statement.section, statement=statement.quote, test=statement.test)
        rows = claims_table[claims_table["claim"].isin(statement.claims)]
        for subject in subjects:
            row[subject] = _subject_cell(statement, rows[rows["subject"] == subject], measure_table, test_table,
                                         subject)
        row["oracle"] = _oracle_cell(rows)
        row["not computed"] = _not_computed(statement, rows)
        out.append(row)
    return pd.DataFrame(out).set_index("section")


def _oracle_cell(rows: pd.DataFrame) -> str:
    """The statement's test on the seen images' own inputs (the oracle runs, shared by the subjects), where its
    rows have one: the verdicts of the oracle's intervals, one per claim and metric, by the same rule; "—" where
    none has (the ledger's own comparisons, and a claims table judged without the oracle)."""
    if claims.ORACLE_COLUMNS[0] not in rows:
        return "—"
    first = rows.dropna(subset=[claims.ORACLE_COLUMNS[0]]).drop_duplicates(["claim", "metric"])
    if first.empty:
        return "—"
    verdicts = pd.Series([claims.verdict(claims.kind_of(r.claim), r.oracle_ci_low, r.oracle_ci_high)
                          for r in first.itertuples()])
    words = _verdict_words(verdicts)
    return f"{words} (mean {first[claims.ORACLE_COLUMNS[0]].mean():+.3f})"


def _not_computed(statement, rows: pd.DataFrame) -> str:
    """What the statement's test lacks: its ``needs``, but for a test that needs the overlap list only where it was
    not run (a profile with a list, the toy's simulated one, runs it whole)."""
    needs_list = any(claim.b_excludes_overlap for claim in claims.ALL_CLAIMS if claim.name in statement.claims)
    if needs_list and not rows.empty and not rows["verdict"].eq(claims.NOT_RUN).any():
        return "—"
    return statement.needs or "—"


def _subject_cell(statement, rows: pd.DataFrame, measure_table: pd.DataFrame, test_table: pd.DataFrame,
                  subject: str) -> str:
    if statement.key == "heterogeneous":
        tests = test_table[(test_table["statement"] == "heterogeneous") & (test_table["subject"] == subject)
                           & test_table["measure"].str.endswith(": p_value")]
        differ = int((tests["value"] < HETEROGENEITY_LEVEL).sum())
        cells = rows["verdict"].eq("reproduced").sum()
        return (f"{cells}/{len(rows)} method-metric cells improve; the gain differs across metrics "
                f"(p < {HETEROGENEITY_LEVEL}) for {differ}/{len(tests)} methods")
    if statement.key == "captions_represent":
        decoded, theirs = (_measure(measure_table, "captions_represent", subject, f"{who} captions CIDEr")
                           for who in ("decoded", "BLIP's"))
        score = _measure(measure_table, "captions_represent", subject, "decoded captions CLIP-score")
        return f"CIDEr {decoded:.2f} (BLIP's of the seen image {theirs:.2f}); CLIP-score {score:.1f}"
    if statement.key.startswith("figure"):
        return "drawn on the Table 1 page"
    if rows.empty:
        return "not computed"
    return _verdict_words(rows["verdict"])


def heterogeneity_across_subjects(test_table: pd.DataFrame) -> str:
    """How many method-metric gains differ between subjects (Cochran's Q, p < :data:`HETEROGENEITY_LEVEL`)."""
    tests = test_table[(test_table["subject"] == "all") & test_table["measure"].str.endswith(": p_value")]
    return f"{int((tests['value'] < HETEROGENEITY_LEVEL).sum())}/{len(tests)}"
