"""The ledger of the paper's statements and its computations, each on constructed data with a known answer."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from recon import claims, statements
from recon.evaluate import METRICS

PAPER = Path("/work/shared/paper/takagi-nishimoto-2023-multiple-decoded-inputs.txt")
N_BOOT = 1000


# ------------------------------------------------------------------------------------------- the ledger
def _words(text: str) -> str:
    return " ".join(text.split())


def test_every_quote_is_the_papers_own_words():
    if not PAPER.exists():
        pytest.skip(f"the paper's text is not here ({PAPER})")
    paper = _words(PAPER.read_text())
    for statement in statements.LEDGER:
        for part in statement.quote.split(" … "):
            assert _words(part) in paper, (statement.key, part)


def test_every_statement_names_claims_and_computations_that_exist():
    import importlib

    import recon

    keys = [s.key for s in statements.LEDGER]
    assert len(keys) == len(set(keys))
    for module in {dotted.split(".")[0] for s in statements.LEDGER for dotted in s.computations}:
        importlib.import_module(f"recon.{module}")
    for statement in statements.LEDGER:
        for name in statement.claims:  # a claim judge() computes, or one of the ledger's paired comparisons
            assert claims.kind_of(name) is not None, name
        for dotted in statement.computations:
            module, function = dotted.split(".")
            assert callable(getattr(getattr(recon, module), function)), dotted
        assert statement.computations or statement.needs, f"{statement.key}: neither computed nor a reason"
    table = statements.ledger_table()
    assert list(table.index) == keys


def test_the_existing_claims_enter_by_reference_and_the_new_ones_cover_all_seven_metrics():
    named = {name for s in statements.LEDGER for name in s.claims}
    assert {c.name for c in claims.CLAIMS} <= named
    assert claims.ALL_CLAIMS[:len(claims.CLAIMS)] == claims.CLAIMS
    assert len({c.name for c in claims.ALL_CLAIMS}) == len({c.key for c in claims.ALL_CLAIMS}) \
        == len(claims.ALL_CLAIMS)
    for claim in claims.METHOD_CLAIMS + claims.CONTROL_CLAIMS:
        assert claim.metrics == METRICS
    assert [c.b[0] for c in claims.METHOD_CLAIMS] == ["+T", "+T+G", "+T+G+D"]
    assert {c.a for c in claims.METHOD_CLAIMS} == {("[30]", "sd")}


def test_judge_computes_the_new_claims(monkeypatch):
    rng = np.random.default_rng(0)
    gains = {"[30]": 0.0, "+T": 0.1, "+T+G": 0.1, "+T+G+D": -0.1}
    base = rng.uniform(0.4, 0.6, 60)

    class Exp:
        data = type("D", (), {"test_ids": np.arange(60)})

        def per_image_scores(self, method, variant="sd", exclude_ids=None, **kw):
            return {m: base + gains[method] + rng.normal(0, 0.01, 60) for m in METRICS}

    table = claims.judge({"subj01": Exp()}, claims=claims.METHOD_CLAIMS + claims.CONTROL_CLAIMS, n_boot=200)
    verdicts = table.groupby("claim")["verdict"].agg(set)
    assert verdicts["+T > [30] (all metrics)"] == {"reproduced"}
    assert verdicts["+T+G+D > [30] (all metrics)"] == {"reversed"}
    assert verdicts["SD 1.4 ≈ SD 2.0 (all metrics)"] == {"reproduced"}
    assert verdicts["excluding overlapping images changes nothing (all metrics)"] == {claims.NOT_RUN}
    cells = statements.cell_verdicts(table, "+T+G+D > [30] (all metrics)")
    assert list(cells.columns) == list(METRICS) and cells.loc["subj01"].eq("reversed").all()
    assert cells.loc["all subjects", "CLIP(Late)"] == "reversed 1/1"


# ------------------------------------------------------------------------------------------- paired rows
def test_above_chance_and_the_low_level_contrast():
    rng = np.random.default_rng(1)
    assert statements.above_chance(rng.uniform(0.6, 0.9, 200), n_boot=N_BOOT)["verdict"] == "reproduced"
    assert statements.above_chance(0.5 + rng.normal(0, 0.1, 200),
                                   n_boot=N_BOOT)["verdict"] == "not reproduced"
    a = {m: rng.uniform(0.5, 0.8, 200) for m in METRICS}
    b = {m: a[m] + (0.08 if m in statements.LOW_LEVEL else 0.01) + rng.normal(0, 0.02, 200) for m in METRICS}
    row = statements.metric_contrast(a, b, n_boot=N_BOOT)
    assert row["difference"] == pytest.approx(0.07, abs=0.01) and row["verdict"] == "reproduced"


# ------------------------------------------------------------------------------------------- heterogeneity
def test_heterogeneity_is_cochrans_q_for_independent_effects():
    d, var = np.array([0.1, 0.2, 0.3]), np.array([0.01, 0.01, 0.04])
    w = 1 / var
    pooled = (w * d).sum() / w.sum()
    q = (w * (d - pooled) ** 2).sum()
    h = statements.heterogeneity(d, var)
    assert h.pooled == pytest.approx(pooled) and h.q == pytest.approx(q) and h.df == 2
    assert h.i2 == 0.0 and h.tau2 == 0.0  # q < df: no spread beyond the intervals'
    assert statements.heterogeneity(d, np.diag(var)) == h
    with pytest.raises(ValueError):
        statements.heterogeneity(d[:1], var[:1])
    with pytest.raises(ValueError, match="positive variance"):
        statements.heterogeneity(d, np.array([0.01, 0.0, 0.01]))


def _subjects(effects, rng, n=300):
    out = {}
    for k, effect in enumerate(effects):
        a = rng.uniform(0.4, 0.8, n)
        out[f"subj0{k + 1}"] = (a, a + effect + rng.normal(0, 0.05, n))
    return out


def test_subject_heterogeneity_detects_planted_differences_between_subjects():
    rng = np.random.default_rng(2)
    table, same = statements.subject_heterogeneity(_subjects([0.05] * 4, rng), n_boot=N_BOOT)
    assert list(table.index) == ["subj01", "subj02", "subj03", "subj04"]
    assert (table["verdict"] == "reproduced").all() and table["se"].between(0.002, 0.004).all()
    assert same.verdict() == "not reproduced" and same.pooled == pytest.approx(0.05, abs=0.005)
    _, differ = statements.subject_heterogeneity(_subjects([0.0, 0.03, 0.06, 0.09], rng), n_boot=N_BOOT)
    assert differ.verdict() == "reproduced" and differ.p_value < 1e-6 and differ.i2 > 0.9 and differ.tau2 > 0


def test_metric_heterogeneity_accounts_for_correlated_metrics():
    rng = np.random.default_rng(3)
    n = 300
    shared = rng.normal(0, 0.05, n)  # one image noise common to every metric, as on the same images
    a = {m: rng.uniform(0.5, 0.8, n) for m in METRICS}
    same = {m: a[m] + 0.04 + shared + rng.normal(0, 0.01, n) for m in METRICS}
    h = statements.metric_heterogeneity(a, same, n_boot=N_BOOT)
    assert h.df == len(METRICS) - 1 and h.verdict() == "not reproduced"
    differ = {m: a[m] + 0.01 * k + shared + rng.normal(0, 0.01, n) for k, m in enumerate(METRICS)}
    assert statements.metric_heterogeneity(a, differ, n_boot=N_BOOT).p_value < 1e-6


def test_bootstrap_means_draws_the_claims_resamples():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(size=50), rng.uniform(size=50)
    means = statements.bootstrap_means(np.stack([a, b], 1), n_boot=500, seed=7)
    _, low, high = claims.bootstrap_difference(a, b, n_boot=500, seed=7)
    assert np.percentile(means[:, 1] - means[:, 0], [2.5, 97.5]) == pytest.approx([low, high])


# ------------------------------------------------------------------------------------------- sharpness
def _scene(rng, size=64):
    image = np.zeros((size, size, 3))
    for _ in range(12):  # hard-edged rectangles: high frequencies at every edge
        y, x = rng.integers(0, size - 8, 2)
        h, w = rng.integers(4, 24, 2)
        image[y:y + h, x:x + w] = rng.uniform(0, 255, 3)
    return image


def _blur(image, sigma):
    return np.clip(ndimage.gaussian_filter(image, (sigma, sigma, 0)), 0, 255).round().astype(np.uint8)


def test_blurring_lowers_sharpness_in_order():
    rng = np.random.default_rng(5)
    scene = _scene(rng)
    images = np.stack([_blur(scene, s) for s in (0.0, 0.5, 1.0, 1.5)])
    for measure in (statements.high_frequency_share, statements.laplacian_variance):
        values = measure(images)
        assert values.shape == (4,) and np.all(np.diff(values) < 0), measure.__name__
    # past that, uint8 rounding (white noise of 1/12 grey level squared) is a floor the share cannot fall below
    floor = statements.high_frequency_share(np.stack([_blur(scene, s) for s in (3.0, 6.0)]))
    assert floor.max() < 1e-4
    flat = np.full((1, 2, 16, 16, 3), 128, np.uint8)  # any leading axes; a constant image has no high frequency
    assert statements.high_frequency_share(flat).shape == (1, 2) and (statements.high_frequency_share(flat) == 0).all()
    # a share does not change with contrast; the Laplacian's variance grows with its square
    half = (images[0].astype(float) * 0.5).round().astype(np.uint8)[None]
    assert statements.high_frequency_share(half)[0] == pytest.approx(statements.high_frequency_share(images[:1])[0],
                                                                     rel=0.02)
    assert statements.laplacian_variance(half)[0] == pytest.approx(statements.laplacian_variance(images[:1])[0] / 4,
                                                                   rel=0.05)
    with pytest.raises(ValueError, match="uint8"):
        statements.high_frequency_share(images.astype(float))


def test_compare_sharpness_finds_the_blurred_side():
    rng = np.random.default_rng(6)
    scenes = [_scene(rng, 48) for _ in range(30)]
    sharp = np.stack([[_blur(s, 0.0), _blur(s, 0.3)] for s in scenes])  # (n, samples, H, W, 3)
    blurred = np.stack([[_blur(s, 2.0), _blur(s, 2.5)] for s in scenes])
    row = statements.compare_sharpness(blurred, sharp, n_boot=N_BOOT)
    assert row["difference"] > 0 and row["verdict"] == "reproduced"
    assert statements.compare_sharpness(sharp, blurred, n_boot=N_BOOT)["verdict"] == "reversed"


# ------------------------------------------------------------------------------------------- captions
def test_caption_identification_is_one_on_the_right_captions_and_a_half_when_shuffled():
    rng = np.random.default_rng(7)
    n = 200
    similarity = rng.normal(0, 1, (n, n)) + 10 * np.eye(n)  # each image's own caption is the most similar
    assert (statements.caption_identification(similarity) == 1).all()
    assert (statements.caption_identification(similarity, anchor="caption") == 1).all()
    shuffled = similarity[:, statements.derangement(n, seed=0)]
    assert statements.caption_identification(shuffled).mean() == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError):
        statements.caption_identification(similarity, anchor="text")


def test_caption_identification_rows_ceiling_decoded_and_chance():
    rng = np.random.default_rng(8)
    n, d = 150, 32
    images = rng.normal(size=(n, d))
    reference = images + rng.normal(0, 0.3, (n, d))  # the seen image's own caption: close
    decoded = images + rng.normal(0, 2.0, (n, d))  # decoded from the brain: noisier, still nearer its own image
    rows = statements.caption_identification_rows(images, decoded, reference, seed=1)
    assert rows["ceiling"].mean() > rows["decoded"].mean() > 0.7
    assert rows["chance"].mean() == pytest.approx(0.5, abs=0.05)
    assert statements.paired(rows["chance"], rows["decoded"], n_boot=N_BOOT)["verdict"] == "reproduced"
    assert not (statements.derangement(n, 3) == np.arange(n)).any()
    assert (statements.derangement(n, 3) == statements.derangement(n, 3)).all()


def test_clip_score():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(5, 8))
    assert statements.clip_score(x, 3 * x) == pytest.approx(np.full(5, 100.0))
    assert statements.clip_score(x, -x) == pytest.approx(np.zeros(5))  # negative cosine floors at 0
    orthogonal = np.eye(8)[:5], np.eye(8)[3:]
    assert statements.clip_score(*orthogonal) == pytest.approx(np.zeros(5))


def test_tokenize():
    assert statements.tokenize("A dog, running on the Grass.  ") == "a dog running on the grass"


def test_caption_scores_are_highest_for_identical_captions_and_near_zero_for_unrelated_ones():
    pytest.importorskip("pycocoevalcap")
    objects = ["dog", "cat", "train", "pizza", "horse", "boat", "clock", "kite", "bus", "bird"]
    places = ["on a beach", "in a kitchen", "near the station", "on a table", "in a field"]
    references = [[f"a {o} {p} in the morning", f"the {o} is {p}"] for o in objects for p in places]
    identical = [refs[0] for refs in references]
    identical_all = [[refs[0]] * 2 for refs in references]
    corpus, per_image = statements.caption_scores(identical, identical_all)
    assert corpus["BLEU-4"] == pytest.approx(1.0, abs=1e-6) and corpus["ROUGE-L"] == pytest.approx(1.0)
    assert corpus["CIDEr"] == pytest.approx(10.0, abs=1e-6)  # CIDEr-D's scale: 10 for a perfect match
    assert set(per_image) == set(statements.CAPTION_SCORES) and len(per_image["CIDEr"]) == len(references)
    unrelated = ["zebra xylophone quantum vortex" for _ in references]
    corpus, per_image = statements.caption_scores(unrelated, references)
    assert corpus["BLEU-4"] < 1e-6 and corpus["ROUGE-L"] == 0 and corpus["CIDEr"] == 0
    # a caption of the right image scores above the caption of another image, on every score
    right, _ = statements.caption_scores([f"a {refs[0].split()[1]} outdoors" for refs in references], references)
    wrong, _ = statements.caption_scores([f"a {refs[0].split()[1]} outdoors" for refs in references[1:] +
                                          references[:1]], references)
    assert all(right[s] >= wrong[s] for s in statements.CAPTION_SCORES)
    with pytest.raises(ValueError):
        statements.caption_scores(["a"], [])


# ------------------------------------------------------------------------------------------- depth
def test_generation_spread_of_known_generations():
    rng = np.random.default_rng(10)
    n, samples, d = 40, 5, 500
    base = rng.normal(size=(n, 1, d))
    identical = np.repeat(base, samples, axis=1)
    assert statements.generation_spread(identical) == pytest.approx(np.zeros(n), abs=1e-12)
    unrelated = rng.normal(size=(n, samples, d))
    assert statements.generation_spread(unrelated) == pytest.approx(np.ones(n), abs=0.1)
    # equal-variance noise on a common signal: r = 1 / (1 + noise variance), so the spread is its complement
    noisy = base + rng.normal(0, 1, (n, samples, d))
    assert statements.generation_spread(noisy).mean() == pytest.approx(0.5, abs=0.03)
    row = statements.compare_spread(features_without=noisy, features_with=base + rng.normal(0, 0.3, (n, samples, d)),
                                    n_boot=N_BOOT)
    assert row["difference"] == pytest.approx(0.5 - 0.09 / 1.09, abs=0.03) and row["verdict"] == "reproduced"
    with pytest.raises(ValueError):
        statements.generation_spread(base)


def test_depth_quality_is_the_per_image_correlation():
    rng = np.random.default_rng(11)
    true = rng.normal(size=(3, 8, 8))
    decoded = np.stack([2 * true[0] + 1, -true[1], np.zeros((8, 8))])
    assert statements.depth_quality(decoded, true) == pytest.approx([1.0, -1.0, 0.0])


def test_a_gain_planted_in_the_well_decoded_quartiles_gives_a_positive_halves_gain_and_no_worst_quartile_gain():
    rng = np.random.default_rng(12)
    n = 400
    quality = rng.uniform(0, 1, n)
    well = quality > np.quantile(quality, 0.25)
    gain = np.where(well, 0.05, 0.0) + rng.normal(0, 0.02, n)
    result = statements.gain_against_quality(gain, quality, n_boot=N_BOOT)
    assert result["slope"] > 0 and result["slope_ci_low"] > 0
    # the verdict's statistic: the better-decoded half gains 0.05, the worse half 0.025 on average (its lower
    # quarter nothing, its upper quarter the planted gain)
    assert result["halves"] == pytest.approx(0.025, abs=0.01) and result["halves_ci_low"] > 0
    assert result["halves_verdict"] == "reproduced"
    assert result["worst_n"] == n // 4
    assert result["worst_gain"] == pytest.approx(0, abs=0.01) and result["worst_ci_low"] < 0 < result["worst_ci_high"]
    assert result["worst_verdict"] == "not reproduced"
    harmed = np.where(well, 0.05, -0.05) + rng.normal(0, 0.02, n)  # a negative effect where depth is decoded worst
    result = statements.gain_against_quality(harmed, quality, n_boot=N_BOOT)
    assert result["worst_gain"] == pytest.approx(-0.05, abs=0.01) and result["worst_verdict"] == "reproduced"
    flat = statements.gain_against_quality(rng.normal(0, 0.02, n), quality, n_boot=N_BOOT)
    assert flat["slope_ci_low"] < 0 < flat["slope_ci_high"]
    assert flat["halves_ci_low"] < 0 < flat["halves_ci_high"] and flat["halves_verdict"] == "not reproduced"
    assert statements.gain_against_quality(gain, quality, n_boot=N_BOOT) == \
        statements.gain_against_quality(gain, quality, n_boot=N_BOOT)  # seeded


def test_equal_captions_get_bit_equal_similarities_wherever_they_stand():
    """A repeated decoded caption must tie with itself exactly, on any CPU: its columns are one product's."""
    rng = np.random.default_rng(3)
    images, texts = rng.normal(size=(37, 64)), rng.normal(size=(5, 64))
    order = rng.integers(0, 5, size=37)
    similarity = statements.cosine_similarity(images, texts[order])
    for k in range(5):
        columns = similarity[:, order == k]
        assert (columns == columns[:, :1]).all()
    np.testing.assert_allclose(similarity, images / np.linalg.norm(images, axis=1, keepdims=True)
                               @ (texts[order] / np.linalg.norm(texts[order], axis=1, keepdims=True)).T, atol=1e-12)
