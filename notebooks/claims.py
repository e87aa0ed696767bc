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
# # The paper's claims, judged
#
# Table 1 gives one number per method and subject. Whether a method *improves* on another is a
# question about the difference between two columns, and that difference has an uncertainty. Each
# claim of the paper is judged here per subject, on the same test images and reconstructions as
# Table 1:
#
# - **the unit** is a test image and its two-way identification accuracy (the fraction of other
#   test images its reconstructions beat, Takagi protocol);
# - **the statistic** is the paired difference of the two evaluations' means over test images;
# - **its 95% confidence interval** is a percentile bootstrap over test images (the same images
#   resampled for both sides), seeded from the profile;
# - **the verdict**: a claim that B beats A is *reproduced* when the whole interval lies above 0,
#   *reversed* when it lies below, *not reproduced* when it contains 0. A claim that two
#   evaluations agree is *reproduced* when the interval lies within ±0.02 (two points of
#   accuracy, about the paper's between-subject sd in section 2.4), and *not reproduced* otherwise.
#
# The verdicts below are computed, not written: the same code judges the `nsd` profile.

# %% tags=["parameters"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"
n_boot = 10000

# %% tags=["hide-input"]
import pandas as pd
from myst_nb import glue

from recon import book, claims, control, models, results

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device)
subjects = book.experiments(exp)
table = claims.judge(subjects, control.overlap_ids(exp.profile), n_boot=n_boot, seed=exp.profile.seed)
summary = claims.summary(table)
claims.glue_verdicts(table)
glue("equivalence_margin", claims.EQUIVALENCE_MARGIN, display=False)
glue("n_boot", n_boot, display=False)

# %% [markdown]
# ## The claims, over subjects

# %% tags=["hide-input"]
summary.style.format({"mean difference": "{:+.3f}"})

# %% [markdown]
# Each row counts the subjects per verdict; "mean difference" averages the four paired differences.
# The claims and their comparisons:
#
# - **+T > [30]** (section 3.1): decoded captions instead of the decoded text embedding c, on the
#   CLIP metrics and Inception-v3. Here: {glue:text}`verdict_text_CLIP(Late)` on CLIP(Late),
#   {glue:text}`verdict_text_Inception-v3` on Inception-v3.
# - **+G raises the low-level CNN metrics**: +T+G against +T on CNN(Early) and CNN(Middle). Here:
#   {glue:text}`verdict_gan_CNN(Early)` on CNN(Early).
# - **+D raises CLIP(Late)**: +T+G+D against +T+G. Here:
#   {glue:text}`verdict_depth_CLIP(Late)`.
# - **Excluding the test images that overlap the generator's training data changes nothing**
#   (section 2.4, Inception-v3 of [30]): all test images against the overlap-free subset. Here:
#   {glue:text}`verdict_overlap_Inception-v3`.
# - **SD 1.4 ≈ SD 2.0** (section 2.4, Inception-v3 of [30]). Here:
#   {glue:text}`verdict_sd2_Inception-v3`.
#
# ## Per subject, with confidence intervals

# %% tags=["hide-input"]
table.set_index(["claim", "metric", "subject"]).style.format(
    {"difference": "{:+.3f}", "ci_low": "{:+.3f}", "ci_high": "{:+.3f}"})

# %% [markdown]
# ## The committed result tables
#
# On the `toy` profile the build writes Table 1, these claims, the peers' metrics and the zoo's
# quality figures to `results/toy/`, where they are committed. CI rebuilds the book and
# `python -m recon.results check` fails on any number that differs from the committed one, so a
# change in a result is always a visible, deliberate change of these files.

# %% tags=["hide-input"]
written = [results.write(results.table1_frame(subjects), exp.profile, "table1"),
           results.write(table, exp.profile, "claims"),
           results.write(results.peers_frame(subjects), exp.profile, "peers")]
if exp.profile.simulation is not None:  # the toy zoo's held-out checks
    written.append(results.write(results.zoo_quality_frame(models.zoo_manifest(exp.profile)), exp.profile,
                                 "zoo_quality"))
print("\n".join(str(path) for path in written if path is not None) or "this profile writes no result tables")
