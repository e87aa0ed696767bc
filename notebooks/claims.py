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
# - **borderline**, whatever the claim, when moving an end of the interval by
#   {glue:text}`claims_borderline` or less could change its verdict. That is how far the ends may move
#   when the same build runs on another CPU, whose kernels round differently
#   ({glue:text}`claims_borderline_ratio:.0f` times the largest move measured; see the last section):
#   the data cannot decide such a verdict, rounding could.
#
# The verdicts below are computed, not written: the same code judges the `nsd` profile.
# {numref}`tbl-ledger` first goes through every statement of the paper, each with its test;
# then the five claims the paper makes of Table 1: {numref}`tbl-claims-summary` counts their verdicts
# over subjects, {numref}`fig-claims-intervals` shows every interval and {numref}`tbl-claims` lists them.

# %% tags=["parameters", "hide-input"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"
n_sessions = None  # sessions per subject read from NSD (None: the profile's; 37 on nsd)
n_boot = 10000
overlap_list = None  # CSV of the test images in the generator's training data (None: the profile's; see the control page)

# %% tags=["hide-input", "remove-output"]
import numpy as np
from myst_nb import glue

import pandas as pd

from recon import book, claims, control, figures, ledger, models, results

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device, n_sessions=n_sessions,
                 overlap_list=overlap_list)
subjects = book.experiments(exp)
# without an overlap list (NSD ships none) the overlap claim is "not run" and every other claim runs
every_claim = claims.judge(subjects, control.overlap_ids_if_given(exp.profile), claims.ALL_CLAIMS, n_boot=n_boot,
                           seed=exp.profile.seed, oracle=True)
table1_claims = [claim.name for claim in claims.CLAIMS]  # the five the paper makes of Table 1
table = every_claim[every_claim["claim"].isin(table1_claims)]
judged = table[table["verdict"] != claims.NOT_RUN]
claims.glue_verdicts(table)
glue("claims_borderline", claims.BORDERLINE, display=False)
glue("claims_borderline_ratio", claims.borderline_ratio(), display=False)
glue("claims_move_subj01", claims.MEASURED_MOVES["subj01"], display=False)
glue("claims_move_all", claims.MEASURED_MOVES["all subjects"], display=False)
summary = claims.summary(table)
summary["mean difference"] = summary["mean difference"].map(claims.signed)  # "—": not run
summary["oracle difference"] = [f"{claims.signed(d)} [{low:+.3f}, {high:+.3f}]" if np.isfinite(d) else "—"
                                for d, (low, high) in zip(summary["oracle difference"], summary.pop("oracle interval"))]
book.glue_table("tbl_claims_summary", summary.rename(columns={"oracle difference": "oracle difference [95% CI]"}))
book.glue_figure("fig_claims_intervals", figures.claim_intervals(judged))
book.glue_table("tbl_claims", judged.set_index(["claim", "metric", "subject"])[list(claims.COLUMNS[3:])],
                formats={"difference": "+.3f", "ci_low": "+.3f", "ci_high": "+.3f"})

# %% tags=["hide-input", "remove-output"]
# every other statement of the paper (recon.statements.LEDGER), from the same cached products
ledger_rows, measured, tests = ledger.compute(subjects, n_boot=n_boot, seed=exp.profile.seed)
all_rows = pd.concat([every_claim, ledger_rows], ignore_index=True)
book.glue_table("tbl_ledger", ledger.summary(all_rows, measured, tests, list(subjects)))
glue("ledger_subject_heterogeneity", ledger.heterogeneity_across_subjects(tests), display=False)
more = all_rows[~all_rows["claim"].isin(table1_claims)]
book.glue_table("tbl_ledger_rows", more.set_index(["claim", "metric", "subject"])[list(claims.COLUMNS[3:])],
                formats={"difference": "+.3f", "ci_low": "+.3f", "ci_high": "+.3f"})
book.glue_table("tbl_ledger_measures", pd.concat([measured, tests]).set_index(["statement", "measure", "subject"]),
                digits=3)

# %% [markdown]
# ## Every statement of the paper
#
# ::::{div} full-width
# :::{table} Each statement of the paper (its section and its words), the test that answers it here, and per subject what the test says: the verdicts of its rows (counted over metrics where it has several, with the same bootstrap, verdict words and borderline band as the claims below), the heterogeneity tests that find the gain differs between metrics, the captioning scores beside those of BLIP's captions of the seen images. "oracle": the same test on the seen images' own inputs (the oracle runs, shared by all subjects), its verdicts and mean difference, where the statement compares runs that have one. The last column says what is not computed, and why.
# :name: tbl-ledger
#
# ```{glue:md} tbl_ledger
# :format: myst
# ```
# :::
# ::::
#
# How each is tested (`recon.statements`, where every choice is argued; `recon.ledger` computes them):
#
# - **Every method against [30] on all seven metrics**, and whether the gains differ: per subject, a
#   Wald test of the seven gains' equality on their joint bootstrap covariance (correlated metrics are
#   not counted twice); across subjects, Cochran's Q on each subject's bootstrap standard error per
#   method and metric. Here {glue:text}`ledger_subject_heterogeneity` method-metric gains differ
#   between subjects at p < 0.05.
# - **Blur**: the share of an image's luminance power above a quarter of the sampling frequency
#   (contrast-free), [30]'s generations against the paper's reference, Stable Diffusion 1.4's own
#   text-to-image output from each seen image's caption (BLIP's; five generations from pure noise,
#   computed once for all subjects), and beside it against +T's generations and the seen images.
# - **Captions**: each test image identified among the others by CLIP's image-text cosine with its
#   decoded caption, against chance (another image's caption) and beside BLIP's caption of the seen
#   image; BLEU-4, ROUGE-L and CIDEr against the COCO references (pycocoevalcap, a plain tokenizer in
#   place of the Java one) and CLIP-score.
# - **Depth**: the spread of an image's five generations (mean pairwise 1 − r of CNN(Middle)) with
#   and without depth; per image, +D's CLIP(Late) gain against how well its depth map was decoded
#   (r with the seen image's): the better-decoded half's gain against the worse half's, and the
#   worst-decoded quarter's loss (the slope of gain on decoding quality beside them).
#
# ::::{div} full-width
# :::{table} The ledger's paired comparisons, every metric and subject: the difference (B − A) over test images, its 95% bootstrap interval and the verdict; the all-metrics claims compare each method with [30], the others are named by what they test.
# :name: tbl-ledger-rows
#
# ```{glue:md} tbl_ledger_rows
# :format: myst
# ```
# :::
# ::::
#
# :::{table} The ledger's measures without a paired verdict: captioning scores, caption identification accuracies, the depth maps' mean decoding quality, heterogeneity tests (Q, its degrees of freedom and p; I² across subjects) and the slope of +D's gain on depth decoding quality. The last two are not locked in `results/`: their statistics move on another CPU by more than the 0.001 the check allows (Q by up to 0.4, p by 0.012, the slope by 0.007, between PyTorch's AVX2 and AVX512 kernels; `recon.ledger.AMPLIFYING`); their inputs, each gain and its interval, are.
# :name: tbl-ledger-measures
#
# ```{glue:md} tbl_ledger_measures
# :format: myst
# ```
# :::

# %% [markdown]
# ## The claims, over subjects
#
# :::{table} The paper's claims on this profile: for each claim and metric, the number of subjects per verdict, the mean over subjects of the paired difference (B − A) in two-way identification accuracy, and the same difference on the seen images' own inputs (the oracle runs of the [oracle page](oracle), shared by all subjects) with its 95% bootstrap interval.
# :name: tbl-claims-summary
#
# ```{glue:md} tbl_claims_summary
# :format: myst
# ```
# :::
#
# The claims and their comparisons:
#
# - **+T > [30]** (section 3.1): decoded captions instead of the decoded text embedding c, on the
#   CLIP metrics and Inception-v3. Here: {glue:text}`verdict_text_CLIP(Late)` on CLIP(Late),
#   {glue:text}`verdict_text_Inception-v3` on Inception-v3. With true inputs (the image's own z
#   and c against BLIP's caption of it), {glue:text}`oracle_text_CLIP(Late)` on CLIP(Late).
# - **+G raises the low-level CNN metrics**: +T+G against +T on CNN(Early) and CNN(Middle). Here:
#   {glue:text}`verdict_gan_CNN(Early)` on CNN(Early); with true inputs (+G on the image's own VGG19
#   features against its own z), {glue:text}`oracle_gan_CNN(Early)`.
# - **+D raises CLIP(Late)**: +T+G+D against +T+G. Here:
#   {glue:text}`verdict_depth_CLIP(Late)`; with true inputs (the image's own depth),
#   {glue:text}`oracle_depth_CLIP(Late)`.
# - **Excluding the test images that overlap the generator's training data changes nothing**
#   (section 2.4, Inception-v3 of [30]): all test images against the overlap-free subset. Here:
#   {glue:text}`verdict_overlap_Inception-v3`; {glue:text}`oracle_overlap_Inception-v3`.
# - **SD 1.4 ≈ SD 2.0** (section 2.4, Inception-v3 of [30]). Here:
#   {glue:text}`verdict_sd2_Inception-v3`; {glue:text}`oracle_sd2_Inception-v3`.
#
# The oracle's difference is the claim judged on a generator that receives exactly what the
# decoders aim at: where it is reproduced and the decoded one is not, decoding lost what the claim
# needs; where both fail, the toy generator cannot use that input, and the decoded verdict says
# nothing about the method. The verdict words above are the decoded runs' only.
#
# On the toy profile these verdicts describe the toy world as much as the method. Its simulated
# brain has NSD's noise (each voxel's noise-ceiling SNR drawn from NSD's published distribution,
# see the simulated-NSD page), but its scenes are far simpler than COCO's photographs, its models
# are tiny (what they resolve is on the zoo page), and Table 1's AlexNet and Inception-v3 keep
# random weights. The verdicts are reported as they come out; nothing in the world or the models
# was set by looking at them.
#
# ## Per subject, with confidence intervals
#
# ```{glue:figure} fig_claims_intervals
# :name: fig-claims-intervals
# :alt: One panel per claim and metric; for each subject a dot at the paired difference and a horizontal bar for its 95% bootstrap interval, coloured by verdict; a grey band marks the equivalence margin of the no-change claims.
#
# Every claim per subject: the paired difference (B − A, dot) and its 95% bootstrap interval
# (bar), green where the claim is reproduced, grey where not, red where reversed, orange where
# borderline. Grey band: the
# ±0.02 margin within which the "no change" claims count as reproduced.
# ```
#
# ::::{div} full-width
# :::{table} Every claim, metric and subject: the paired difference (B − A) in identification accuracy over test images, its 95% bootstrap interval and the verdict.
# :name: tbl-claims
#
# ```{glue:md} tbl_claims
# :format: myst
# ```
# :::
# ::::
#
# ## The committed result tables
#
# On the `toy` profile the build writes Table 1, these claims (with their oracle differences), the
# peers' metrics, the oracle's Table 1 and swaps and the zoo's quality figures to `results/toy/`, where they are committed. CI rebuilds the book and
# `python -m recon.results check` fails on any number that differs from the committed one, so a
# change in a result is always a visible, deliberate change of these files. The build also writes
# `environment.json` (the CPU, PyTorch's kernel level, MKL's branch where one was forced, threads, library
# versions and the toy's arithmetic: float64 decoders, float64 +G on a grid) and `stages.json` (a digest of
# each of subj01's products, stage by stage, from which the check names the first stage whose product
# differs while its inputs agree): in the same
# environment a number must match to 1e-6; on another CPU, whose kernels round differently, to
# {glue:text}`claims_borderline`. That is {glue:text}`claims_borderline_ratio:.0f` times the largest
# move measured: when subj01 was built on PyTorch's AVX512 and then its AVX2 kernels
# (`benchmarks/cpu_capability.py`), Table 1's cells moved by at most one image pair of 9,900 and the
# claims' interval ends by {glue:text}`claims_move_subj01:.4f`; over all four subjects, a fresh-clone
# build on AVX512 kernels and MKL's own branch moved them by {glue:text}`claims_move_all:.4f` from the
# committed build on AVX2 kernels (`recon.claims.MEASURED_MOVES`). It is the band that makes a verdict borderline above: a verdict whose interval ends beyond the
# band's edge by more than that move cannot change on another CPU. One that ends within it of the
# edge can turn borderline there, and the check allows exactly that change. Until December 2026 +G ran in float32 and amplified that rounding (its images
# differed in 77% of their pixels); it moved Table 1's +G rows by up to 0.011 and flipped the
# verdict of "+D raises CLIP(Late)" for subj05 (see the +G page). Until then, too, the decoders ran in float32,
# and MKL's vendor-specific branch moved the decoded VGG19 features and so every +G image: a build on an AMD
# EPYC moved the +G rows by up to 0.013 ({numref}`tbl-how-mkl`).

# %% tags=["hide-input"]
written = [results.write(results.table1_frame(subjects), exp.profile, "table1"),
           results.write(all_rows, exp.profile, "claims"),
           results.write(measured, exp.profile, "ledger"),
           results.write(results.peers_frame(subjects), exp.profile, "peers"),
           results.write(results.oracle_frame(subjects), exp.profile, "oracle"),
           results.write_environment(exp.profile),  # what the last digits depend on (recon.results check)
           results.write_stage_digests(exp)]  # where two builds' numbers part, stage by stage
if exp.profile.simulation is not None:  # the toy zoo's held-out checks
    written.append(results.write(results.zoo_quality_frame(models.zoo_manifest(exp.profile)), exp.profile,
                                 "zoo_quality"))
print("\n".join(str(path.relative_to(path.parents[2])) for path in written if path is not None)
      or "this profile writes no result tables")
