"""The fidelity table is generated from the profiles: every deviation from the authors has a reason, every "same"
names a test that exists, and the table moves when a profile does."""

import ast
import dataclasses
from functools import lru_cache
from pathlib import Path

import pytest

from recon import fidelity
from recon.profiles import get_profile

REPO = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=None)
def functions_in(path: str) -> frozenset[str]:
    """The module-level functions of a test file (its tests and their helpers), read with ``ast``; none if the file
    does not exist."""
    file = REPO / path
    if not file.is_file():
        return frozenset()
    tree = ast.parse(file.read_text(), filename=str(file))
    return frozenset(node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


def missing_tests(step: fidelity.Step) -> list[str]:
    """The tests ``step`` names that are not a ``test_`` function of an existing ``tests/`` file."""
    missing = []
    for test in step.tests:
        path, _, function = test.partition("::")
        if not (path.startswith("tests/") and function.startswith("test_") and function in functions_in(path)):
            missing.append(test)
    return missing


def unbacked_same_rows(profile) -> list[str]:
    """The steps that say "same" for ``profile`` without naming a test, or naming one that does not exist."""
    return [step.step for step in fidelity.STEPS
            if step.verdict(profile) == fidelity.SAME and (not step.tests or missing_tests(step))]


@pytest.mark.parametrize("name", ["nsd", "toy", "smoke"])
def test_every_same_row_names_a_test_that_exists(name):
    assert unbacked_same_rows(get_profile(name)) == []


def test_every_named_test_exists_on_any_row():
    assert {step.step: missing_tests(step) for step in fidelity.STEPS if missing_tests(step)} == {}


def test_the_check_fails_on_a_missing_or_invented_test():
    nsd = get_profile("nsd")
    untested = fidelity.Step("x", "no test", "a", "f", lambda p: "a", lambda p: True)
    invented = dataclasses.replace(untested, step="invented test",
                                   checked_by="tests/test_authors_pipeline.py::test_that_was_never_written")
    wrong_file = dataclasses.replace(untested, step="wrong file", checked_by="tests/no_such_file.py::" +
                                     fidelity.AUTHORS_RIDGE.partition("::")[2])
    assert untested.verdict(nsd) == fidelity.UNTESTED  # a row without a test cannot say "same"
    assert invented.verdict(nsd) == fidelity.SAME
    assert missing_tests(invented) == ["tests/test_authors_pipeline.py::test_that_was_never_written"]
    assert missing_tests(wrong_file) == [wrong_file.checked_by]
    real = dataclasses.replace(untested, checked_by=fidelity.AUTHORS_RIDGE)
    assert missing_tests(real) == [] and real.verdict(nsd) == fidelity.SAME


def test_every_deviation_is_explained():
    for name in ("nsd", "toy", "smoke"):
        assert fidelity.unexplained(get_profile(name)) == [], name


def verdicts(profile) -> dict[str, set[str]]:
    table = fidelity.table((profile,))
    column = table[f"{profile.name}: authors'?"]
    return {verdict: set(table["step"][column == verdict]) for verdict in fidelity.VERDICTS}


def test_nsd_deviates_only_where_the_book_says():
    nsd = verdicts(get_profile("nsd"))
    assert nsd[fidelity.DEVIATION] == {
        "training betas of VGG19", "stored features", "BLIP model", "decoded VGG19 maps", "DPT input",
        "depth map", "VGG19 targets' file names"}
    assert {"model arithmetic", "precision"} <= nsd[fidelity.SAME]  # float32 weights, SD 1.4 under autocast
    # the authors' setting, with nothing but its value checked: model ids (no weights to compare here) and the size
    assert nsd[fidelity.UNTESTED] == {"Stable Diffusion", "resolution", "depth model", "depth-conditioned generator",
                                      "networks"}
    assert nsd[fidelity.NO_SETTING] == {"SD 2.0 (OpenCLIP)"}
    table = fidelity.table(("nsd",)).set_index("step")
    assert table.loc["z", "nsd"] == "posterior sample at 320 px for 512 px generation"
    assert table.loc["sampler", "checked by"].startswith(
        "tests/test_sampling.py::test_img2img_follows_the_compvis_sampler_step_for_step")


def test_the_authors_networks_make_their_gan_rows_the_same():
    """nsd's +G is the authors' networks (generator and models.vgg19 'authors', recon.kamitani): its network rows
    are "same", each checked by a test that re-implements the authors' step; the pixel generator and torchvision's
    VGG19, asked for by name, are deviations; their channel order kept, or corrected."""
    theirs = get_profile("nsd")
    assert theirs.generator == theirs.models.vgg19 == "authors"
    table = fidelity.table((theirs,)).set_index("step")
    rows = ["generator", "VGG19 network", "targets rescaled", "colour order around VGG19"]
    assert set(table.loc[rows, "nsd: authors'?"]) == {fidelity.SAME}
    assert all(table.loc[row, "checked by"].startswith("tests/test_authors_gan.py::") for row in rows)
    without_files = theirs.replace(generator="pixels",
                                   models=dataclasses.replace(theirs.models, vgg19="IMAGENET1K_V1"))
    pixels = fidelity.table((without_files,)).set_index("step")
    assert set(pixels.loc[rows, "nsd: authors'?"]) == {fidelity.DEVIATION}
    assert fidelity.unexplained(without_files) == []
    corrected = fidelity.table((theirs.replace(vgg19_channel_order="caffe"),)).set_index("step")
    assert corrected.loc["colour order around VGG19", "nsd: authors'?"] == fidelity.DEVIATION
    assert corrected.loc["VGG19 network", "nsd: authors'?"] == fidelity.SAME


def test_the_table_reads_the_profile():
    half = fidelity.table((get_profile("nsd", dtype="float16"),)).set_index("step")
    assert half.loc["model arithmetic", "nsd: authors'?"] == half.loc["precision", "nsd: authors'?"] == "deviation"
    assert "weights in float16" in half.loc["model arithmetic", "nsd"]
    changed = get_profile("nsd").replace(decoder_intercept=True, z_init="image", caption_prompt=None)
    table = fidelity.table((changed,)).set_index("step")
    assert table.loc["decoder", "nsd: authors'?"] == "deviation"
    assert table.loc["caption decoding", "nsd: authors'?"] == "deviation"
    assert fidelity.unexplained(changed) == ["decoder", "caption decoding"]


def test_a_model_id_is_the_authors_only_if_it_is_their_checkpoints():
    """Any Hub id used to pass as the authors'; now only the id that holds their weights does."""
    nsd = get_profile("nsd")
    other = nsd.replace(models=dataclasses.replace(nsd.models, sd="runwayml/stable-diffusion-v1-5",
                                                   dpt="Intel/dpt-hybrid-midas"))
    table = fidelity.table((nsd, other.replace(name="other"))).set_index("step")
    for step in ("Stable Diffusion", "depth model"):
        assert table.loc[step, "nsd: authors'?"] == fidelity.UNTESTED
        assert table.loc[step, "other: authors'?"] == fidelity.DEVIATION
    assert {"Stable Diffusion", "depth model"} <= set(fidelity.unexplained(other.replace(name="other")))
    assert nsd.models.sd == fidelity.AUTHORS_MODELS["sd"] and nsd.models.dpt == fidelity.AUTHORS_MODELS["dpt"]


def test_vgg19_layer_names_follow_torchvision_indices():
    names = fidelity.vgg19_layer_names()
    assert [names[i] for i in ("2", "3", "16", "34", "35", "36")] == [
        "conv1_2", "relu1_2", "conv3_4", "conv5_4", "relu5_4", "pool5"]


def test_the_book_table_marks_verdicts_in_the_profiles_cells():
    full = fidelity.table(("nsd", "toy")).set_index("step")
    shown = fidelity.book_table(("nsd", "toy")).droplevel("stage")
    assert list(shown.columns) == ["authors (file)", "nsd", "toy", "test", "why"]
    for name in ("nsd", "toy"):
        for verdict, mark in fidelity.CELL_MARKS.items():
            rows = full[f"{name}: authors'?"] == verdict
            if mark:
                assert (shown[name].str.endswith(mark) == rows).all(), (name, verdict)
            else:
                assert (shown[name][rows] == full[name][rows]).all(), name
    assert shown.loc["z", "authors (file)"].endswith(" — " + full.loc["z", "authors' file"])
    # the function's name, not its path, with break opportunities for the page
    assert shown.loc["z", "test"].replace("<wbr>", "") == "test_z_is_the_authors_init_latent"
    assert "None" not in shown.to_string()
