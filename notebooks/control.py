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
# # 2.4 Control analysis
#
# About 7% of the NSD test images are in LAION-5B {cite:p}`schuhmann2022laion5b`, on which Stable
# Diffusion was trained. The paper re-evaluates the baseline [30] {cite:p}`takagi2023cvpr` without
# them (Inception-v3 identification, %: {glue:text}`paper_control_all_test_images` vs
# {glue:text}`paper_control_overlap_excluded`), and swaps the SD 1.4 text encoder (CLIP
# {cite:p}`radford2021clip`, whose training data include COCO {cite:p}`lin2014coco`, the source of
# NSD's images) for SD 2.0's OpenCLIP {cite:p}`cherti2023openclip`
# ({glue:text}`paper_control_SD_14` vs {glue:text}`paper_control_SD_20`). Both are repeated here
# for every subject. `subject` is the subject shown in the figure.
#
# On `nsd`, "SD 2.0 trained with OpenCLIP" is `stabilityai/stable-diffusion-2-base`. The authors'
# repository holds no script for this control, so the checkpoint is our choice: the 512 px,
# ε-prediction SD 2.0 base model, the one whose resolution and objective match SD 1.4's (and from which
# the `512-depth-ema` checkpoint of +D was fine-tuned), so that the text encoder (OpenCLIP ViT-H/14) and
# its training data are what changes; `stable-diffusion-2` (768-v) would also change the resolution and
# the prediction target. The overlap list is the `overlap_list` parameter
# (`papermill ... -p overlap_list PATH`): a CSV with an `nsdId` column (NSD's 0-based image index, as in
# `nsd_stim_info_merged.csv`) or a `73KID` column (the same images 1-based). NSD does not ship one: on
# `nsd` without it, this comparison and the claims page's overlap claim say "not run: no overlap list
# given", and everything else runs. A list that is given but unreadable stops the page, naming it.
#
# In the toy profile, the simulator flags about 7% of the shared test images as "seen in training"
# (`toy_extras/overlap_nsd_ids.csv`, a list in the format of the real overlap list; the toy models
# never saw them, so here the exclusion checks the procedure, not a memorisation effect), and the SD 2.0
# stand-in is the toy Stable Diffusion with a differently trained text encoder (see the zoo page).

# %% tags=["parameters", "hide-input"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"
n_sessions = None  # sessions per subject read from NSD (None: the profile's; 37 on nsd)
overlap_list = None  # CSV of the test images in the generator's training data (None: the profile's; see below)

# %% tags=["hide-input"]
from myst_nb import glue

from recon import book, claims, control, figures
from recon.evaluate import METRICS

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device, n_sessions=n_sessions,
                 overlap_list=overlap_list)
subjects = book.experiments(exp)
excluded = control.overlap_ids_if_given(exp.profile)  # None: no list given (NSD ships none)
control.glue_paper_control()
glue("overlap_listed", f"{len(excluded)} test images are on the overlap list." if excluded is not None else
     "No overlap list was given (the overlap_list parameter; NSD ships none), so the comparison without the "
     "overlapping images is not run.", display=False)

# %% [markdown]
# ## Excluding test images that overlap the generator's training data
#
# {glue:text}`overlap_listed` {numref}`tbl-control-overlap` scores the baseline with and without
# them.

# %% tags=["hide-input", "remove-output"]
conditions = {"all test images": {}} | ({} if excluded is None else {"overlap excluded": {"exclude_ids": excluded}})
overlap = control.baseline_scores(subjects, conditions, level="evaluation")
incep = overlap["Inception-v3"].unstack()
glue("overlap_before", control.percent_mean_sd(incep["all test images"]), display=False)
glue("overlap_after", claims.NOT_RUN if excluded is None else control.percent_mean_sd(incep["overlap excluded"]),
     display=False)
book.glue_table("tbl_overlap", overlap)

# %% [markdown]
# :::{table} Two-way identification accuracy of the baseline [30] for each subject, on all test images and without those on the overlap list.
# :name: tbl-control-overlap
#
# ```{glue:md} tbl_overlap
# :format: myst
# ```
# :::
#
# Inception-v3 identification (mean ± sd over subjects, %): {glue:text}`overlap_before` with all
# test images, {glue:text}`overlap_after` without the overlapping ones (paper:
# {glue:text}`paper_control_all_test_images` / {glue:text}`paper_control_overlap_excluded`).
#
# ## SD 1.4 (CLIP text encoder) vs SD 2.0 (OpenCLIP)
#
# c is decoded anew for each model's own text encoder, and the reconstruction uses that model
# ({numref}`tbl-control-versions`, {numref}`fig-control-versions`).

# %% tags=["hide-input", "remove-output"]
versions = control.baseline_scores(subjects, {"SD 1.4": {"variant": "sd"}, "SD 2.0": {"variant": "sd2"}}, level="model")
incep = versions["Inception-v3"].unstack()
glue("sd14", control.percent_mean_sd(incep["SD 1.4"]), display=False)
glue("sd20", control.percent_mean_sd(incep["SD 2.0"]), display=False)
book.glue_table("tbl_versions", versions)
book.glue_figure("fig_versions", figures.reconstructions(
    exp.test_images, {"SD 1.4": exp.reconstruct("[30]", "sd"), "SD 2.0": exp.reconstruct("[30]", "sd2")},
    rows=range(4), samples=(0, 1)))

# %% [markdown]
# :::{table} Two-way identification accuracy of the baseline [30] for each subject, with c decoded for SD 1.4's CLIP text encoder or for SD 2.0's OpenCLIP.
# :name: tbl-control-versions
#
# ```{glue:md} tbl_versions
# :format: myst
# ```
# :::
#
# Inception-v3 identification (%): {glue:text}`sd14` with SD 1.4 and {glue:text}`sd20` with the
# SD 2.0 text encoder (paper: {glue:text}`paper_control_SD_14` / {glue:text}`paper_control_SD_20`).
#
# ```{glue:figure} fig_versions
# :name: fig-control-versions
# :alt: Four test images in red frames, each followed by two baseline reconstructions with Stable Diffusion 1.4 and two with the Stable Diffusion 2.0 stand-in.
#
# The baseline [30] with either text encoder. Left, in red: the presented image; then two
# generations with SD 1.4 and two with SD 2.0, each from c decoded for its own text encoder.
# ```
