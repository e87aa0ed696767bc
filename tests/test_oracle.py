"""The oracle: each method on the seen images' own inputs (once for all subjects) and one input swapped at a time.

Each true input is checked against an independent computation from the test images with the same feature code,
and an oracle run against img2img called directly on those inputs."""

import numpy as np
import pytest

from recon import evaluate, stages
from recon.config import PEER_RESOLUTION, TRUE_INPUTS, ConfigError
from recon.profiles import get_profile
from recon.experiment import Experiment, all_true, check_true_inputs, is_oracle
from recon.stages import Job
from recon.threads import fixed_threads


# ------------------------------------------------------------------------------------ the input names
def test_every_true_input_has_a_file_name_and_every_run_its_oracle():
    assert tuple(stages.INPUT_SLUGS) == TRUE_INPUTS and stages.INPUT_SLUGS["coco caption"] == "coco"
    assert all(" " not in slug and "+" not in slug for slug in stages.INPUT_SLUGS.values())
    assert {(m, v) for m, v, _ in stages.ORACLE_RUNS} == set(stages.RUNS)
    for method, variant, true in stages.ORACLE_RUNS:
        assert is_oracle(method, true) and check_true_inputs(method, true) == true
    assert len(stages.ORACLE_RUNS) == 5 + 3  # every run; the three with a caption again on a COCO caption
    assert len(stages.SWAP_RUNS) == 2 + 2 + 2 + 3  # one per input of each method of Table 1


@pytest.mark.parametrize("method, true, message", [
    ("[30]", ["caption"], "[30] reads z, c; it has no input 'caption'"),
    ("+T", ["clip"], "unknown true input 'clip'"),
    ("+T+G", ["caption", "coco caption"], "not both"),
    ("+X", [], "unknown method '+X'"),
])
def test_a_true_input_the_method_does_not_read_fails_naming_it(method, true, message):
    with pytest.raises((ValueError, KeyError), match=message.replace("[", r"\[").replace("+", r"\+")):
        check_true_inputs(method, true)


def test_an_oracle_replaces_every_input():
    assert all_true("+T+G+D") == ("caption", "gan", "depth")
    assert all_true("+T", "coco caption") == ("z", "coco caption")
    assert is_oracle("+T", ("z", "coco caption")) and not is_oracle("+T", ("z",))


def test_oracle_and_swap_jobs_name_themselves_back_and_fail_on_the_wrong_inputs():
    graph = stages.jobs()
    assert len(graph) == 1 + 4 * 26 + 4 + 8 + 9 and len(set(graph)) == len(graph)  # 4: true inputs, text2img
    order = {job: i for i, job in enumerate(graph)}
    assert all(order[need] < order[job] for job in graph for need in stages.needs(job))
    for job in graph:
        assert Job.from_marker_wildcards(job.stage, job.subject, job.part) == job
    oracle = Job("oracle", method="+T+G", variant="sd", true=("gan", "caption"))
    assert oracle.part == "TG-sd-caption+gan" and oracle.argv()[-2:] == ["--true", "caption+gan"]
    assert stages.needs(oracle) == [Job("dataset"), Job("true_captions"), Job("true_gan")]
    swap = Job("swap", "subj02", method="+T", variant="sd", true=("caption",))
    assert stages.needs(swap) == [Job("decoded", "subj02", target="z"), Job("true_captions"),
                                  Job("evaluation", "subj02")]
    with pytest.raises(ConfigError, match="takes the true inputs caption\\+gan or coco\\+gan; got 'gan'"):
        Job("oracle", method="+T+G", variant="sd", true=("gan",))
    with pytest.raises(ConfigError, match="once per profile; it takes no subject"):
        Job("oracle", "subj01", method="[30]", variant="sd", true=("z", "c"))
    with pytest.raises(ConfigError, match="has no run of \\[30\\] sd2; its runs are"):
        Job("swap", "subj01", method="[30]", variant="sd2", true=("z",))
    with pytest.raises(ConfigError, match="takes no true inputs"):
        Job("reconstruct", "subj01", method="[30]", variant="sd", true=("z",))
    with pytest.raises(ConfigError, match="unknown true inputs 'z\\+clip'"):
        stages.inputs_from_slug("z+clip")


# ------------------------------------------------------------------------------- computed on smoke
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    cache = tmp_path_factory.mktemp("oracle")
    return {s: Experiment(get_profile("smoke", cache_dir=cache), s, progress=False) for s in ("subj01", "subj02")}


def test_true_inputs_are_the_test_images_own_by_the_same_code(smoke):
    from recon import features, methods, models, recipes

    exp = smoke["subj01"]
    p = exp.profile
    model, processor = models.blip(p)
    assert exp.true_captions == methods.captions_from_vision_features(
        model, processor, exp.stimulus_features("blip"), repetition_penalty=p.repetition_penalty,
        num_beams=p.caption_beams, max_length=p.caption_max_length, min_length=p.caption_min_length,
        prompt=p.caption_prompt, progress=False)
    assert exp.coco_captions == [c[0] for c in exp.reader.captions(exp.test_ids)]
    np.testing.assert_array_equal(exp.true_depth, methods.depth_from_hidden_states(
        models.dpt(p)[0], exp.stimulus_features("dpt"), p.image_size, progress=False))
    vgg = models.vgg19_features(p)
    widths = features.vgg_layer_widths(vgg, p.vgg_layers, p.vgg_pool, p.generator_size)
    targets = features.split_vgg_matrix(exp.stimulus_features("vgg"), widths)  # not rescaled: no shrinkage
    np.testing.assert_array_equal(exp.true_gan_images, methods.images_from_vgg_features(
        models.gan_generator(p), vgg, targets, **recipes.feature_matching_options(p), progress=False))


def test_an_oracle_run_is_img2img_on_the_true_latent_and_embedding(smoke):
    from recon import methods, models

    exp = smoke["subj01"]
    p = exp.profile
    pipe = models.img2img(p)
    init = methods.init_images_from_latents(pipe.vae, exp.stimulus_features("z"), p.image_size, progress=False)
    expected = methods.img2img(pipe, None, init_images=init, prompt_embeds=exp.stimulus_features("c"),
                               **p.generation_settings, progress=False)
    run = exp.true_run("[30]", "sd", "all")
    np.testing.assert_array_equal(run["first generation"], expected[:, 0])
    R = exp._identify(expected, "[30]")  # the decoded runs' scoring, on these generations
    for name, values in R.items():
        np.testing.assert_array_equal(run[name], values)
    with fixed_threads(p.compute_threads):  # the thread count the cache computes on
        pixels = evaluate.pixel_metrics(exp.test_images, expected[:, 0], PEER_RESOLUTION)
    for name, values in pixels.items():
        np.testing.assert_array_equal(exp.pixel_metrics("[30]", true="all")[name], values)


def test_an_oracle_run_is_computed_once_for_every_subject(smoke, monkeypatch):
    run = ("+T+G", "sd", all_true("+T+G"))
    first = smoke["subj01"].identification(*run)
    monkeypatch.setattr(smoke["subj02"].cache, "require_warm", True)  # a computation would fail
    second = smoke["subj02"].identification(*run)
    assert smoke["subj02"].entry_path("oracle", *run) == smoke["subj01"].entry_path("oracle", *run)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    assert set(smoke["subj02"].scores("+T+G", "sd", true=run[2])) == set(evaluate.METRICS)


def test_a_swap_replaces_one_input_and_keeps_the_subjects_others(smoke):
    exp = smoke["subj01"]
    swapped = exp.first_generations("+T+G", true=("caption",))
    decoded = exp.first_generations("+T+G")
    assert swapped.shape == decoded.shape
    assert exp.entry_path("swap", "+T+G", "sd", ("caption",)) != \
        smoke["subj02"].entry_path("swap", "+T+G", "sd", ("caption",))  # the decoded +G is the subject's
    if exp.true_captions != exp.decoded_captions:
        assert not np.array_equal(swapped, decoded)


def test_on_a_simulated_tree_without_an_overlap_list_every_claim_but_the_overlap_runs(smoke):
    """As on nsd (NSD ships no overlap list): the simulated tree's experiments, judged with the profile's list
    removed, report the overlap claim as not run and judge every other claim, the oracle's differences included."""
    from recon import claims, control

    profile = smoke["subj01"].profile.replace(overlap_list=None)
    overlap_ids = control.overlap_ids_if_given(profile)
    assert overlap_ids is None
    table = claims.judge(smoke, overlap_ids, n_boot=200, seed=0, oracle=True)
    overlap = table.claim == "excluding overlapping images changes nothing"
    assert overlap.any() and set(table.verdict[overlap]) == {claims.NOT_RUN}
    assert table.loc[overlap, ["difference", "ci_low", "ci_high"]].isna().all().all()
    others = table[~overlap]
    assert set(others.subject) == {"subj01", "subj02"} and claims.NOT_RUN not in set(others.verdict)
    assert others[["difference", "ci_low", "ci_high"]].notna().all().all()
    assert others[list(claims.ORACLE_COLUMNS)].notna().all().all()


def test_the_ledger_answers_every_statement_from_the_simulated_trees_cache(smoke):
    """Issue 48's ledger on two smoke subjects: every paired comparison of recon.claims.LEDGER_KINDS per subject,
    finite and judged; the captions' scores, caption identification and heterogeneity tests as measures; one row
    per statement of the ledger, none "not computed" without its reason."""
    import pandas as pd

    from recon import claims, control, ledger, statements

    rows, measured, tests = ledger.compute(smoke, n_boot=200, seed=0)
    assert list(rows.columns) == list(claims.COLUMNS + claims.ORACLE_COLUMNS)
    assert set(zip(rows.claim, rows.subject)) == {(n, s) for n in claims.LEDGER_KINDS for s in smoke}
    assert rows[["difference", "ci_low", "ci_high"]].notna().all().all()
    assert (rows.ci_low <= rows.difference).all() and (rows.difference <= rows.ci_high).all()
    assert set(rows.verdict) <= set(claims.VERDICTS)
    # the seen images' own BLIP captions can only be as good as chance or better at naming their images: the
    # identification's three accuracies are in [0, 1], chance near 0.5 on average
    assert list(measured.columns) == list(ledger.MEASURE_COLUMNS)
    accuracy = measured[measured.measure.str.endswith(" accuracy")]
    assert len(accuracy) == 3 * len(smoke) and accuracy.value.between(0, 1).all()
    assert {"decoded captions BLEU-4", "BLIP's captions CIDEr", "decoded captions CLIP-score"} <= set(measured.measure)
    assert list(tests.columns) == list(ledger.MEASURE_COLUMNS) and not set(tests.measure) & set(measured.measure)
    assert len(tests[tests.statement == "depth_stable"]) == 3 * len(smoke)  # the slope and its interval
    across = tests[tests.subject == "all"]
    assert len(across) == 3 * 7 * 4 and across[across.measure.str.endswith("p_value")].value.between(0, 1).all()
    judged = claims.judge(smoke, control.overlap_ids_if_given(smoke["subj01"].profile), claims.ALL_CLAIMS, n_boot=200,
                          oracle=True)
    table = ledger.summary(pd.concat([judged, rows]), measured, tests, list(smoke))
    assert len(table) == len(statements.LEDGER) and set(smoke) <= set(table.columns)
    assert not (table[list(smoke)] == "not computed").any().any()
    heterogeneity = table.set_index("statement", append=True).xs("2", level="section")["subj01"].iloc[1]
    assert "/21 method-metric cells improve" in heterogeneity and "for " in heterogeneity  # 3 methods x 7 metrics
    assert (table["not computed"] == "—").all()  # the smoke tree has an overlap list
    by_key = table.set_index(pd.Index([s.key for s in statements.LEDGER]))
    assert by_key.loc["improves_baseline", "oracle"].endswith(")") and "/21" in by_key.loc["improves_baseline", "oracle"]
    assert by_key.loc["retains_semantics", "oracle"] == "—"  # a comparison of the ledger's own, without an oracle
    without_list = ledger.summary(pd.concat([claims.judge(smoke, None, claims.ALL_CLAIMS, n_boot=50), rows]), measured,
                                  tests, list(smoke))
    assert (without_list["not computed"] != "—").sum() == 2  # the overlap's two statements, where none is given
