"""recon.figures' paper Figures 2 and 3 drawn from constructed arrays (no experiment)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from recon import figures  # noqa: E402

METHODS = ("[30]", "+T", "+T+G", "+T+G+D")
N, N_SAMPLES = 6, 5


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    originals = rng.integers(0, 256, (N, 8, 8, 3), dtype=np.uint8)
    generations = {m: rng.integers(0, 256, (N, N_SAMPLES, 8, 8, 3), dtype=np.uint8) for m in METHODS}
    captions = [f"a cat number {i} sitting on a red sofa next to a window" for i in range(N)]
    gan_images = rng.integers(0, 256, (N, 4, 4, 3), dtype=np.uint8)
    depth = rng.random((N, 4, 4))
    return originals, generations, captions, gan_images, depth


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def framed(fig):
    red = mcolors.to_rgba("red")
    return [ax for ax in image_axes(fig) if all(s.get_edgecolor() == red for s in ax.spines.values())]


def texts(fig):
    return [" ".join(t.get_text().split()) for t in fig.findobj(matplotlib.text.Text)]


def test_figure2_one_reconstruction_per_method_over_its_inputs(arrays):
    originals, generations, captions, gan_images, depth = arrays
    first = {m: g[:, 0] for m, g in generations.items()}
    fig = figures.paper_figure2(originals, first, captions, gan_images, depth, rows=[1, 4])
    # per row: presented, 4 reconstructions, the +G image under +T+G, +G image and depth under +T+G+D
    assert len(image_axes(fig)) == 2 * (1 + 4 + 1 + 2)
    shown = [ax.images[0].get_array() for ax in image_axes(fig)]
    assert sum(np.array_equal(a, first["+T+G+D"][4]) for a in shown) == 1
    assert sum(np.array_equal(a, depth[1]) for a in shown) == 1
    assert sum(np.array_equal(a, gan_images[4]) for a in shown) == 2  # under +T+G and under +T+G+D
    boxes = framed(fig)
    assert [np.array_equal(ax.images[0].get_array(), originals[i]) for ax, i in zip(boxes, (1, 4))] == [True, True]
    assert len(boxes) == 2
    written = texts(fig)
    for i in (1, 4):  # under +T, +T+G and +T+G+D
        assert sum(captions[i] in t for t in written) == 3
    assert not any(captions[0] in t for t in written)
    assert set(METHODS) <= set(written)


def test_figure2_takes_the_first_generation_of_a_samples_axis(arrays):
    originals, generations, captions, gan_images, depth = arrays
    fig = figures.paper_figure2(originals, generations, captions, gan_images, depth, rows=[2])
    shown = [ax.images[0].get_array() for ax in image_axes(fig)]
    assert any(np.array_equal(a, generations["+T"][2, 0]) for a in shown)


def test_figure3_samples_per_method_with_the_seed(arrays):
    originals, generations, *_ = arrays
    images, samples = figures.figure3_choice(N, N_SAMPLES, k_images=4, k_samples=3, seed=7)
    fig = figures.paper_figure3(originals, generations, images=images, samples=samples, seed=7)
    assert len(image_axes(fig)) == len(images) * (1 + len(METHODS) * 3)
    boxes = framed(fig)
    assert len(boxes) == len(images)
    assert all(np.array_equal(ax.images[0].get_array(), originals[i]) for ax, i in zip(boxes, images))
    shown = [ax.images[0].get_array() for ax in image_axes(fig)]
    for s in samples:
        assert any(np.array_equal(a, generations["+T+G"][images[-1], s]) for a in shown)
    unused = next(s for s in range(N_SAMPLES) if s not in samples)
    assert not any(np.array_equal(a, generations["+T+G"][images[-1], unused]) for a in shown)
    assert "seed 7" in fig._suptitle.get_text()
    assert set(METHODS) <= set(texts(fig))
    dashed = [a for a in fig.artists if isinstance(a, matplotlib.lines.Line2D) and a.get_linestyle() == "--"]
    assert len(dashed) == len(METHODS)  # after the presented column and between the method blocks


def test_figure3_choice_is_drawn_from_the_seed():
    images, samples = figures.figure3_choice(100, 5, seed=1)
    assert (images, samples) == figures.figure3_choice(100, 5, seed=1)
    assert images != figures.figure3_choice(100, 5, seed=2)[0]
    assert len(images) == 5 and len(samples) == 3
    assert images == sorted(set(images)) and samples == sorted(set(samples))
    assert all(0 <= i < 100 for i in images) and all(0 <= k < 5 for k in samples)
    rng = np.random.default_rng(1)  # the documented draw: images, then samples
    assert images == sorted(rng.choice(100, 5, replace=False).tolist())
    assert samples == sorted(rng.choice(5, 3, replace=False).tolist())
    assert figures.figure3_choice(3, 2, seed=0) == ([0, 1, 2], [0, 1])  # fewer when there are fewer


def test_bad_input_names_the_argument(arrays):
    originals, generations, captions, gan_images, depth = arrays
    short = dict(generations, **{"+T": generations["+T"][:-1]})
    with pytest.raises(ValueError, match="by_method"):
        figures.paper_figure3(originals, short, images=[0], samples=[0], seed=0)
    with pytest.raises(ValueError, match="by_method"):
        figures.paper_figure2(originals, {m: g[:, 0] for m, g in short.items()}, captions, gan_images, depth, rows=[0])
    with pytest.raises(ValueError, match=r"samples: \[5\] out of range"):
        figures.paper_figure3(originals, generations, images=[0], samples=[0, 5], seed=0)
    with pytest.raises(ValueError, match="images"):
        figures.paper_figure3(originals, generations, images=[N], samples=[0], seed=0)
    with pytest.raises(ValueError, match="rows"):
        figures.paper_figure2(originals, generations, captions, gan_images, depth, rows=[-1])
    with pytest.raises(ValueError, match="captions"):
        figures.paper_figure2(originals, generations, captions[:-1], gan_images, depth, rows=[0])
    with pytest.raises(ValueError, match=r"by_method\['\[30\]'\]"):
        figures.paper_figure3(originals, {"[30]": generations["[30]"][:, 0]}, images=[0], samples=[0], seed=0)
