# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fidelity to the authors' code
#
# The authors' code (github `yu-takagi/StableDiffusionReconstruction`) is this book's reference: the
# `nsd` profile computes what their scripts compute, except where {numref}`tbl-fidelity` says otherwise.
# The table is generated from the profiles (`recon.fidelity`), so it cannot drift from them. Each row gives
# the authors' setting and the file it is in, each profile's setting, the test that writes the authors' step
# again from their script and checks `recon`'s against it, and why a profile deviates where it does. A
# profile's cell reads as the authors' only where such a test exists. Where the setting is theirs but no
# test re-implements the step (a model id, whose weights cannot be compared here; the resolution) the cell
# says "no test"; where the authors publish no setting (the control analysis) it says so. Tests fail if a
# profile deviates without a reason, or if a row that reads as the authors' names no test or a test that
# does not exist. The re-implementations are in `tests/test_authors_pipeline.py` (the decoder, z, c and the
# init image of img2img, BLIP's input and caption decoding, +G's objective, DPT's input and depth map, the
# evaluation's features and identification), `tests/test_community_reader.py` (the betas of
# `make_subjmri.py`) and `tests/test_sampling.py` (the CompVis DDIM sampler of img2img).

# %% tags=["parameters", "hide-input"]
profiles = ["nsd", "toy"]

# %% tags=["hide-input", "remove-output"]
from myst_nb import glue

from recon import book, fidelity

book.short_errors()
book.check_injected_parameters()
table = fidelity.table(profiles)
for name in profiles:
    verdicts = table[f"{name}: authors'?"]
    glue(f"n_same_{name}", int((verdicts == fidelity.SAME).sum()), display=False)
    glue(f"n_untested_{name}", int((verdicts == fidelity.UNTESTED).sum()), display=False)
    glue(f"n_deviations_{name}", int((verdicts == fidelity.DEVIATION).sum()), display=False)
glue("n_steps", len(table), display=False)
book.glue_table("tbl_fidelity", fidelity.book_table(profiles))

# %% [markdown]
# :::{table} Every step of the pipeline: the authors' setting — the file it is in, the `nsd` and `toy` profiles' settings, each marked where it is not the authors' checked by a test (no test, deviation, no authors' setting), the test that checks it, and why a profile deviates.
# :name: tbl-fidelity
#
# ```{glue:md} tbl_fidelity
# :format: myst
# ```
# :::
#
# Of {glue:text}`n_steps` steps, the `nsd` profile follows the authors in {glue:text}`n_same_nsd` with a
# test, in {glue:text}`n_untested_nsd` by its setting alone, and departs in
# {glue:text}`n_deviations_nsd`; the `toy` profile departs in {glue:text}`n_deviations_toy`. The `toy`
# profile's departures are those of a world small enough for two CPU cores: tiny models of the same
# classes, fewer sessions, smaller images and fewer denoising steps. The decoders, z, the start of
# img2img and the identification protocol are the authors' on both. The last rows are the authors' own
# quirks, each marked kept or departed from: their sampler noises the init latent one step above the
# first step it denoises (kept); the VGG19 features are written under file names that `ridge.py` does not
# read, and its fc layers would meet single-trial betas (a reading, departed from); the VGG19 stimulus
# features are computed from RGB images by a network that takes BGR, and the +G image is saved with its
# channels reversed, which undoes it (both departed from, to the same colours).
