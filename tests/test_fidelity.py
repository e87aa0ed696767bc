"""The fidelity table is generated from the profiles: every deviation from the authors has a reason, and
the table moves when a profile does."""

from recon import fidelity
from recon.profiles import get_profile


def test_every_deviation_is_explained():
    for name in ("nsd", "toy", "smoke"):
        assert fidelity.unexplained(get_profile(name)) == [], name


def test_nsd_deviates_only_where_the_book_says():
    table = fidelity.table(("nsd",)).set_index("step")
    deviations = set(table.index[table["nsd: authors'?"] == "deviation"])
    assert deviations == {"generator", "decoded VGG19 maps", "samples and their noise"}
    assert table.loc["z", "nsd"] == "posterior sample at 320 px for 512 px generation"


def test_the_table_reads_the_profile():
    changed = get_profile("nsd").replace(decoder_intercept=True, z_init="image", caption_prompt=None)
    table = fidelity.table((changed,)).set_index("step")
    assert table.loc["decoder", "nsd: authors'?"] == "deviation"
    assert table.loc["caption decoding", "nsd: authors'?"] == "deviation"
    assert fidelity.unexplained(changed) == ["decoder", "caption decoding"]


def test_vgg19_layer_names_follow_torchvision_indices():
    names = fidelity.vgg19_layer_names()
    assert [names[i] for i in ("2", "3", "16", "34", "35", "36")] == [
        "conv1_2", "relu1_2", "conv3_4", "conv5_4", "relu5_4", "pool5"]


def test_the_book_table_marks_deviations_in_the_profiles_cells():
    full = fidelity.table(("nsd", "toy")).set_index("step")
    shown = fidelity.book_table(("nsd", "toy")).droplevel("stage")
    assert list(shown.columns) == ["authors (file)", "nsd", "toy", "why"]
    for name in ("nsd", "toy"):
        marked = shown[name].str.endswith(" (deviation)")
        assert (marked == (full[f"{name}: authors'?"] == "deviation")).all(), name
    assert shown.loc["z", "authors (file)"].endswith(" — " + full.loc["z", "authors' file"])
    assert "None" not in shown.to_string()
