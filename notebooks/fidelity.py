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
# the authors' setting and the file it is in, each profile's setting, whether it is the authors', and why
# not where it is not. A test fails if a profile deviates without a reason. Steps whose computation is
# written again from the authors' scripts and compared with `recon`'s are tested in
# `tests/test_authors_pipeline.py` (the decoder, z and the init image of img2img, BLIP's input and caption
# decoding, the overlap list) and `tests/test_community_reader.py` (the betas of `make_subjmri.py`).

# %% tags=["parameters", "hide-input"]
profiles = ["nsd", "toy"]

# %% tags=["hide-input", "remove-output"]
from myst_nb import glue

from recon import book, fidelity

book.short_errors()
book.check_injected_parameters()
table = fidelity.table(profiles)
for name in profiles:
    glue(f"n_deviations_{name}", int((table[f"{name}: authors'?"] == "deviation").sum()), display=False)
glue("n_steps", len(table), display=False)
book.glue_table("tbl_fidelity", fidelity.book_table(profiles))

# %% [markdown]
# :::{table} Every step of the pipeline: the authors' setting — the file it is in, the `nsd` and `toy` profiles' settings, each marked (deviation) where it is not the authors', and why.
# :name: tbl-fidelity
#
# ```{glue:md} tbl_fidelity
# :format: myst
# ```
# :::
#
# Of {glue:text}`n_steps` steps, the `nsd` profile departs from the authors in
# {glue:text}`n_deviations_nsd` and the `toy` profile in {glue:text}`n_deviations_toy`. The `toy`
# profile's departures are those of a world small enough for two CPU cores: tiny models of the same
# classes, fewer sessions, smaller images and fewer denoising steps. The decoders, z, the start of
# img2img and the identification protocol are the authors' on both.
