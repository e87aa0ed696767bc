"""Figures for the book: reconstructions per method (paper Figs. 2-3), decoded inputs, Table 1 bars."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def _show(ax, image, title=None, cmap=None, frame=None):
    ax.imshow(image, cmap=cmap, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    if frame:
        for spine in ax.spines.values():
            spine.set_edgecolor(frame)
            spine.set_linewidth(2.5)


def reconstructions(originals: np.ndarray, by_method: dict[str, np.ndarray], *, rows=None, samples=(0,),
                    captions=None, gan_images=None, depth_maps=None, true_captions=None):
    """One row per test image: the presented image (red frame), then ``samples`` of each method.

    Under the images, as in the paper's Figure 2: the decoded caption, the +G image and the
    decoded depth map, when given.
    """
    rows = [i for i in (range(4) if rows is None else rows) if i < len(originals)]
    n_generated = min(images.shape[1] for images in by_method.values())
    samples = [k for k in samples if k < n_generated]  # a run with fewer samples shows what it has
    extras = [x for x in (gan_images, depth_maps) if x is not None]
    n_cols = 1 + len(by_method) * len(samples) + len(extras)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.35 * n_cols, 1.55 * len(rows) + 0.3), squeeze=False)
    for r, i in enumerate(rows):
        col = 0
        title = "presented" if r == 0 else None
        _show(axes[r, col], originals[i], title, frame="red")
        if true_captions is not None:
            axes[r, col].set_xlabel(textwrap.fill(true_captions[i], 22), fontsize=6)
        col += 1
        for method, images in by_method.items():
            for k in samples:
                _show(axes[r, col], images[i, k], method if r == 0 and k == samples[0] else None)
                col += 1
        if gan_images is not None:
            _show(axes[r, col], gan_images[i], "+G image" if r == 0 else None)
            col += 1
        if depth_maps is not None:
            _show(axes[r, col], depth_maps[i], "decoded depth" if r == 0 else None, cmap="magma")
        if captions is not None:
            axes[r, 1].set_xlabel(textwrap.fill("“" + captions[i] + "”", 22), fontsize=6)
    fig.tight_layout()
    return fig


def decoded_vs_true(true: np.ndarray, decoded: np.ndarray, *, rows=None, cmap=None, labels=("true", "decoded")):
    """Pairs of true and decoded images or maps (GAN images, depth maps) for a few test images."""
    rows = [i for i in (range(8) if rows is None else rows) if i < len(true)]
    fig, axes = plt.subplots(2, len(rows), figsize=(1.3 * len(rows), 2.9), squeeze=False)
    for c, i in enumerate(rows):
        _show(axes[0, c], true[i], cmap=cmap)
        _show(axes[1, c], decoded[i], cmap=cmap)
    axes[0, 0].set_ylabel(labels[0])
    axes[1, 0].set_ylabel(labels[1])
    fig.tight_layout()
    return fig


def score_bars(table: pd.DataFrame, paper: pd.DataFrame | None = None):
    """Identification accuracy per metric and method, subjects as points, paper means as ticks."""
    long = table.reset_index().melt(id_vars=["subject", "method"], var_name="metric", value_name="accuracy")
    fig, ax = plt.subplots(figsize=(9, 3.4))
    sns.barplot(data=long, x="metric", y="accuracy", hue="method", errorbar=None, ax=ax, alpha=0.85)
    sns.stripplot(data=long, x="metric", y="accuracy", hue="method", dodge=True, color="k", size=2.5, ax=ax,
                  legend=False)
    if paper is not None:
        means = paper.groupby(level="method", sort=False).mean()
        methods = list(dict.fromkeys(long["method"]))
        width = 0.8 / len(methods)
        for m_index, method in enumerate(methods):
            for x, metric in enumerate(means.columns):
                offset = -0.4 + width * (m_index + 0.5)
                ax.plot([x + offset - width / 2.5, x + offset + width / 2.5], [means.loc[method, metric]] * 2,
                        color="crimson", lw=1.5)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_ylim(0.3, 1.0)
    ax.set_ylabel("two-way identification")
    ax.set_xlabel("")
    ax.legend(fontsize=7, ncol=4, loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False)  # above the bars
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig


def claim_intervals(table: pd.DataFrame):
    """Each claim's paired difference per subject with its 95% bootstrap interval (one panel per
    claim and metric); the grey band is the equivalence margin of the "no change" claims."""
    from .claims import CLAIMS, EQUIVALENCE_MARGIN

    panels = list(table.groupby(["claim", "metric"], sort=False))
    kinds = {claim.name: claim.kind for claim in CLAIMS}
    fig, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels) + 1, 3.2), sharey=False, squeeze=False)
    colours = {"reproduced": "tab:green", "not reproduced": "tab:grey", "reversed": "tab:red",
               "borderline": "tab:orange"}
    for ax, ((claim, metric), rows) in zip(axes[0], panels):
        y = np.arange(len(rows))
        if kinds.get(claim) == "equal":
            ax.axvspan(-EQUIVALENCE_MARGIN, EQUIVALENCE_MARGIN, color="0.9", zorder=0)
        ax.axvline(0, color="k", lw=0.8)
        for i, row in enumerate(rows.itertuples()):
            colour = colours[row.verdict]
            ax.plot([row.ci_low, row.ci_high], [i, i], color=colour, lw=2)
            ax.plot(row.difference, i, "o", color=colour, ms=4)
        ax.set_yticks(y, rows["subject"] if ax is axes[0][0] else [""] * len(rows))
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.invert_yaxis()
        ax.set_title("\n".join(textwrap.wrap(f"{claim}: {metric}", 22)), fontsize=7)
        ax.tick_params(labelsize=7)
    fig.supxlabel("paired difference in identification accuracy (B − A), 95% CI", fontsize=8)
    handles = [plt.Line2D([], [], color=c, lw=2, label=v) for v, c in colours.items()]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=7, frameon=False, bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def ncsnr_distributions(measured: dict, nsd_median: dict, sd_over_median: float, surface_median: dict | None = None):
    """Per subject: histogram of the ncsnr measured on the simulated betas (NSD's estimator), the
    target distribution ``max(0, Normal(m, sd_over_median m))`` (its mass at 0 as a bar), NSD's
    published median ``m`` over nsdgeneral (1.8 mm volume) and, if given, the surface median."""
    from scipy import stats

    subjects = list(measured)
    fig, axes = plt.subplots(1, len(subjects), figsize=(2.6 * len(subjects), 2.6), sharey=True, squeeze=False)
    top = max(float(np.quantile(v, 0.995)) for v in measured.values()) * 1.05
    bins = np.linspace(0, top, 31)
    width = bins[1] - bins[0]
    for ax, subject in zip(axes[0], subjects):
        values = np.asarray(measured[subject])
        ax.hist(values, bins=bins, density=True, color="tab:blue", alpha=0.6, label="simulated (measured)")
        m = nsd_median[subject]
        x = np.linspace(width / 2, top, 200)
        ax.plot(x, stats.norm.pdf(x, m, sd_over_median * m), color="k", lw=1.2, label="target distribution")
        zero = stats.norm.cdf(0, m, sd_over_median * m)
        ax.bar(width / 2, zero / width, width=width, fill=False, edgecolor="k", lw=1.2)
        ax.axvline(m, color="crimson", ls="--", lw=1.2, label="NSD median, 1.8 mm volume")
        if surface_median is not None:
            ax.axvline(surface_median[subject], color="crimson", ls=":", lw=1.2, label="NSD median, surface")
        ax.axvline(np.median(values), color="tab:blue", lw=1.2, label="simulated median")
        ax.set_title(subject, fontsize=9)
        ax.set_xlabel("ncsnr", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("density", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=7, frameon=False, bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


# ------------------------------------------------------------------ the paper's Figures 2 and 3, from arrays

def _check_by_method(by_method: dict, n: int, ndim: int, shape: str) -> None:
    """Every method's array has ``ndim`` axes and ``n`` images (the presented images' count)."""
    if not by_method:
        raise ValueError("by_method: no methods given")
    for method, images in by_method.items():
        if np.ndim(images) != ndim:
            raise ValueError(f"by_method[{method!r}]: expected {shape}, got shape {np.shape(images)}")
    lengths = {method: len(images) for method, images in by_method.items()}
    if set(lengths.values()) != {n}:
        raise ValueError(f"by_method: every method needs one entry per presented image ({n}); got {lengths}")


def _check_indices(name: str, indices, size: int, what: str) -> list[int]:
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError(f"{name}: no indices given")
    bad = [i for i in indices if not 0 <= i < size]
    if bad:
        raise ValueError(f"{name}: {bad} out of range for {size} {what} (valid: 0..{size - 1})")
    return indices


def _given(method: str) -> set[str]:
    """The decoded inputs a method's name adds to [30]'s: "+T+G+D" -> {"T", "G", "D"}."""
    return set(method.split("+")[1:])


def _text_cell(ax, text, **kwargs):
    ax.axis("off")
    ax.text(0.5, 1.0, text, ha="center", va="top", transform=ax.transAxes, fontsize=6, **kwargs)


def paper_figure2(originals: np.ndarray, by_method: dict[str, np.ndarray], captions, gan_images: np.ndarray,
                  depth: np.ndarray, *, rows):
    """The paper's Figure 2: for each test image in ``rows`` two figure rows, the presented image (red
    frame) and one reconstruction per method on top, and under each reconstruction what its method was
    given besides [30]'s inputs: the decoded caption (+T), the +G image (+G), the decoded depth map (+D).

    ``originals`` (n, H, W, 3); ``by_method`` method -> (n, H, W, 3) uint8 first generations (an
    (n, n_samples, H, W, 3) array shows its first generation); ``captions`` n decoded captions;
    ``gan_images`` (n, h, w, 3) uint8; ``depth`` (n, h, w) decoded depth maps. What a method was given
    is read from its name ("+T+G+D": caption, +G image, depth); [30] is given the decoded z and c.
    """
    n = len(originals)
    by_method = {m: (np.asarray(x)[:, 0] if np.ndim(x) == 5 else np.asarray(x)) for m, x in by_method.items()}
    _check_by_method(by_method, n, 4, "(n, H, W, 3) images")
    for name, values in (("captions", captions), ("gan_images", gan_images), ("depth", depth)):
        if len(values) != n:
            raise ValueError(f"{name}: {len(values)} entries for {n} presented images")
    rows = _check_indices("rows", rows, n, "presented images")

    n_cols = 1 + len(by_method)
    fig = plt.figure(figsize=(1.45 * n_cols, 2.75 * len(rows) + 0.2), layout="constrained")
    grid = fig.add_gridspec(2 * len(rows), n_cols, height_ratios=[1, 0.9] * len(rows))
    for r, i in enumerate(rows):
        top, below = 2 * r, 2 * r + 1
        _show(fig.add_subplot(grid[top, 0]), originals[i], "presented" if r == 0 else None, frame="red")
        _text_cell(fig.add_subplot(grid[below, 0]), "decoded\ninputs →", color="0.4", style="italic")
        for c, (method, images) in enumerate(by_method.items(), start=1):
            _show(fig.add_subplot(grid[top, c]), images[i], method if r == 0 else None)
            given = _given(method)
            pictures = [(gan_images[i], None, "+G image")] if "G" in given else []
            if "D" in given:
                pictures.append((depth[i], "gray", "depth"))
            caption = textwrap.fill("“" + str(captions[i]) + "”", 26) if "T" in given else None
            if not pictures:
                _text_cell(fig.add_subplot(grid[below, c]), caption or "decoded z, c",
                           color="k" if caption else "0.4")
                continue
            ratios = [1.6, 1] if caption else [1]
            cell = grid[below, c].subgridspec(len(ratios), len(pictures), height_ratios=ratios)
            for k, (picture, cmap, label) in enumerate(pictures):
                _show(fig.add_subplot(cell[0, k]), picture, label if r == 0 else None, cmap=cmap)
            if caption:
                _text_cell(fig.add_subplot(cell[1, :]), caption)
    return fig


def figure3_choice(n_images: int, n_samples: int, *, k_images: int = 5, k_samples: int = 3, seed):
    """The paper's Figure 3 choice, "chosen randomly": ``k_images`` of the ``n_images`` test images,
    then ``k_samples`` of the ``n_samples`` generations (fewer when there are fewer), both sorted and
    without repeats, drawn in that order from ``numpy.random.default_rng(seed)``."""
    if n_images < 1 or n_samples < 1:
        raise ValueError(f"n_images, n_samples: need at least one of each, got {n_images}, {n_samples}")
    rng = np.random.default_rng(seed)
    images = np.sort(rng.choice(n_images, size=min(k_images, n_images), replace=False))
    samples = np.sort(rng.choice(n_samples, size=min(k_samples, n_samples), replace=False))
    return [int(i) for i in images], [int(k) for k in samples]


def paper_figure3(originals: np.ndarray, by_method: dict[str, np.ndarray], *, images, samples, seed):
    """The paper's Figure 3 for one subject: one row per test image in ``images``, the presented
    image (red frame) then, per method, its generations ``samples``; method blocks separated by a gap
    and a dashed line and titled above; ``seed`` (the one :func:`figure3_choice` drew ``images`` and
    ``samples`` with; None for none) is named in the title.

    ``originals`` (n, H, W, 3); ``by_method`` method -> (n, n_samples, H, W, 3) uint8 generations.
    """
    n = len(originals)
    _check_by_method(by_method, n, 5, "(n, n_samples, H, W, 3) generations")
    images = _check_indices("images", images, n, "presented images")
    n_generated = min(np.shape(x)[1] for x in by_method.values())
    samples = _check_indices("samples", samples, n_generated, "generations per image")

    k = len(samples)
    gap = 0.3  # a spacer column between blocks, in image widths
    widths = [1.0, gap]
    for b in range(len(by_method)):
        widths += [1.0] * k + ([gap] if b < len(by_method) - 1 else [])
    height = 1.0 * len(images) + 0.6
    fig = plt.figure(figsize=(1.0 * sum(widths), height))
    top = 1 - 0.55 / height
    grid = fig.add_gridspec(len(images), len(widths), width_ratios=widths, wspace=0.05, hspace=0.05,
                            left=0.01, right=0.99, bottom=0.01, top=top)
    starts = [2 + b * (k + 1) for b in range(len(by_method))]
    for r, i in enumerate(images):
        _show(fig.add_subplot(grid[r, 0]), originals[i], "presented" if r == 0 else None, frame="red")
        for start, generations in zip(starts, by_method.values()):
            for j, s in enumerate(samples):
                _show(fig.add_subplot(grid[r, start + j]), generations[i, s])
    for start, method in zip(starts, by_method):
        block = grid[0, start:start + k].get_position(fig)
        fig.text((block.x0 + block.x1) / 2, block.y1 + 0.01, method, ha="center", va="bottom", fontsize=9)
    for spacer in [1] + [s - 1 for s in starts[1:]]:
        column = grid[:, spacer].get_position(fig)
        x = (column.x0 + column.x1) / 2
        fig.add_artist(plt.Line2D([x, x], [column.y0, column.y1], ls="--", lw=0.8, color="0.5"))
    title = f"generations {', '.join(str(k + 1) for k in samples)} of {n_generated} of each method"  # counted from 1
    if seed is not None:
        title += f"; images and samples drawn with seed {seed}"
    fig.suptitle(title, fontsize=8, y=0.995, va="top")
    return fig
