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
# # What each decoded input is worth
#
# Every method of Table 1 feeds decoded inputs to a generator: [30] a latent z and a text
# embedding c, +T a caption, +G an image, +D a depth map. When a method falls short, either the
# decoding lost what the input should carry or the generator cannot use the input at all. Table 1
# cannot tell the two apart. Here every method runs once more with its decoded inputs replaced by
# the seen image's own, computed from the test image by the same code that computes the decoders'
# targets (peers show such upper bounds beside their reconstructions {cite:p}`scotti2023mindeye`):
#
# - **z and c**: the test image's VAE latent and the text embedding of its captions, the decoders'
#   own targets;
# - **the caption**: the caption BLIP writes from the image's own ViT tokens, the perfect decoded
#   caption; beside it, in a second run, the image's first COCO caption, written by a person;
# - **the +G image**: +G optimised on the image's true VGG19 features (not rescaled: the
#   rescaling undoes a decoder's shrinkage, and true features have none);
# - **the depth map**: DPT's depth of the image.
#
# The seeds and the five samples are those of the decoded runs. True inputs do not depend on the
# subject, so these *oracle* runs are computed once for all subjects. Then, for one subject, each
# method runs with one input at a time replaced (a *swap*), the others decoded: which input's
# decoding costs the most. The book swaps for the first subject only: each swap is a generation run
# of its own (about 50 s on one core of the toy), and the other three subjects' 27 would add about
# 11 minutes to a first build on 2 cores. `papermill notebooks/oracle.ipynb out.ipynb -p subject
# subj07` computes another subject's.

# %% tags=["parameters", "hide-input"]
subject = "subj01"
profile = "toy"
n_samples = 5
seed = 0
device = "cpu"
n_sessions = None  # sessions per subject read from NSD (None: the profile's; 37 on nsd)

# %% tags=["hide-input", "remove-output"]
import pandas as pd
from myst_nb import glue

from recon import book, figures, results
from recon.config import METHODS
from recon.evaluate import METRICS
from recon.stages import SWAP_RUNS

exp = book.start(profile, subject, n_samples=n_samples, seed=seed, device=device, n_sessions=n_sessions)
subjects = book.experiments(exp)
# the swaps of this page's subject (the book's: the first), the oracle runs shared by all
oracle = results.oracle_frame({subject: exp}).set_index(["subject", "method", "variant", "inputs"])
runs = oracle.xs("all", level="subject")
names = {("[30]", "sd2"): "[30] (SD 2.0)"}
decoded = pd.DataFrame({(s, names.get((m, v), m)): e.scores(m, v) for s, e in subjects.items()
                        for m, v in [(m, "sd") for m in METHODS] + [("[30]", "sd2")]}).T[list(METRICS)]
decoded.index.names = ["subject", "method"]
rows = {}
for (method, variant, inputs), values in runs.iterrows():
    name = names.get((method, variant), method)
    source = "true, COCO caption" if "coco caption" in inputs else "true"
    rows[name, source] = values.map(lambda v: f"{v:.3f}")
for name, frame in book.mean_sd(decoded).iterrows():
    rows[name, "decoded, mean ± sd"] = frame
order = ["[30]", "+T", "+T+G", "+T+G+D", "[30] (SD 2.0)"]
beside = pd.DataFrame(rows).T.rename_axis(["method", "inputs"])
beside = beside.reindex(sorted(beside.index, key=lambda k: (order.index(k[0]), k[1] != "decoded, mean ± sd", k[1])))
book.glue_table("tbl_oracle", beside[list(METRICS)])
for (method, variant, inputs), values in runs.iterrows():  # for the prose: Table 1's methods
    if variant == "sd":
        book.glue_scores(f"{'oracle_coco' if 'coco caption' in inputs else 'oracle'}_{method}", values)
for method, values in decoded.groupby(level="method").mean().loc[list(METHODS)].iterrows():
    book.glue_scores(f"decoded_{method}", values)

# %% [markdown]
# ## Table 1 on true inputs
#
# ::::{div} full-width
# :::{table} Two-way identification accuracy of every method on decoded inputs (mean ± sd over the four subjects, as in {numref}`tbl-table1-summary`) and on the seen images' own inputs (the oracle: one run shared by all subjects), on the caption BLIP writes for the image and on its first COCO caption.
# :name: tbl-oracle
#
# ```{glue:md} tbl_oracle
# :format: myst
# ```
# :::
# ::::
#
# On CLIP(Late), the most semantic metric, [30] reaches {glue:text}`oracle_[30]_CLIP(Late):.3f`
# on the image's own z and c (decoded: {glue:text}`decoded_[30]_CLIP(Late):.3f`), +T
# {glue:text}`oracle_+T_CLIP(Late):.3f` on BLIP's caption of the image and
# {glue:text}`oracle_coco_+T_CLIP(Late):.3f` on its COCO caption (decoded:
# {glue:text}`decoded_+T_CLIP(Late):.3f`), and +T+G+D {glue:text}`oracle_+T+G+D_CLIP(Late):.3f`
# (decoded: {glue:text}`decoded_+T+G+D_CLIP(Late):.3f`). The distance between a method's oracle
# row and its decoded rows is what decoding costs it; an oracle row near chance (0.5) on a metric
# says that the generator does not carry that input's information through at all, whatever
# the decoders do.
#
# ## One input at a time
#
# The swaps replace one decoded input of one subject's run by the true one and keep the others
# decoded ({numref}`tbl-oracle-swaps`): the rise over the decoded run is what decoding that input
# costs the method.

# %% tags=["hide-input", "remove-output"]
swaps = oracle.xs(subject, level="subject")
swap_rows = {}
for method, variant, true in SWAP_RUNS:
    swap_rows[method, "decoded"] = pd.Series(exp.scores(method, variant))
    swap_rows[method, results.inputs_label(true)] = swaps.loc[(method, variant, results.inputs_label(true))]
swap_table = pd.DataFrame(swap_rows).T.rename_axis(["method", "inputs"])[list(METRICS)]
glue("swap_subject", subject, display=False)
book.glue_table("tbl_oracle_swaps", swap_table)

# %% [markdown]
# ::::{div} full-width
# :::{table} Two-way identification accuracy of one subject's runs ({glue:text}`swap_subject`), each method on its decoded inputs and with one of them replaced by the seen image's own (the others decoded).
# :name: tbl-oracle-swaps
#
# ```{glue:md} tbl_oracle_swaps
# :format: myst
# ```
# :::
# ::::
#
# ## Decoded and oracle reconstructions
#
# {numref}`fig-oracle-examples` shows, for the first test images, each method's first generation
# from decoded inputs beside the one from true inputs.

# %% tags=["hide-input", "remove-output"]
pairs = {}  # first generations, as (n, 1, H, W, 3)
for method in METHODS:
    pairs[method] = exp.first_generations(method)[:, None]
    pairs[f"{method} oracle"] = exp.first_generations(method, true="all")[:, None]
book.glue_figure("fig_oracle_examples", figures.reconstructions(
    exp.test_images, pairs, rows=range(4), samples=(0,), true_captions=exp.true_captions))

# %% [markdown]
# ```{glue:figure} fig_oracle_examples
# :name: fig-oracle-examples
# :alt: Four test images in red frames, each followed by the first generation of every method from decoded inputs and from the seen image's own inputs, with BLIP's caption of the image under it.
#
# Presented images (red frame, with the caption BLIP writes for each), then for each method the
# first generation from decoded inputs and, beside it, from the seen image's own inputs (oracle).
# ```
#
# What each comparison of the paper shows with true inputs, beside the decoded verdicts, is on the
# [claims page](claims): every claim there also carries its oracle difference.
