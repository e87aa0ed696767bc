"""+G generators: each gives images in [0, 1] that the feature matching can optimise; the DGN loads by file."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from recon import methods, models
from recon.profiles import get_profile



def tiny_vgg():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                               torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU()).eval().requires_grad_(False)


def feature_loss_before_and_after(generator, truth: torch.Tensor, steps: int = 40) -> tuple[float, float]:
    """The VGG feature loss of ``generator``'s images before and after ``steps`` of +G's optimisation."""
    vgg = tiny_vgg()
    targets = {k: v.numpy() for k, v in methods.vgg_activations(vgg, truth, ["1", "4"], 4).items()}
    common = dict(layers=["1", "4"], pool=4, lr=0.1, seed=0, batch_size=2, progress=False)

    def loss(images):
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        acts = methods.vgg_activations(vgg, x, ["1", "4"], 4)
        return sum(float(((acts[k] - torch.from_numpy(targets[k])) ** 2).sum()) for k in acts)

    start = methods.images_from_vgg_features(generator, vgg, targets, steps=0, **common)
    end = methods.images_from_vgg_features(generator, vgg, targets, steps=steps, **common)
    return loss(start), loss(end)


def test_pixel_generator_lowers_the_feature_loss():
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.uniform(size=(2, 3, 16, 16)).astype(np.float32))
    start, end = feature_loss_before_and_after(methods.PixelGenerator(16), truth)
    assert end < 0.5 * start


def test_vae_generator_lowers_the_feature_loss_without_weight_gradients():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        block_out_channels=(8, 8), norm_num_groups=4, layers_per_block=1, sample_size=16)
    generator = methods.VAEGenerator(vae, (4, 8, 8))
    with torch.no_grad():
        truth = generator(torch.randn(2, 4, 8, 8))  # an image the generator can reach
    start, end = feature_loss_before_and_after(generator, truth)
    assert end < 0.5 * start
    # the VAE's weights still ask for gradients, but only the code's are computed
    assert all(w.requires_grad and w.grad is None for w in vae.parameters())


def test_dgn_loads_from_a_weights_file_and_generates(tmp_path):
    torch.manual_seed(0)
    network = methods.DeepGeneratorNetwork()
    with torch.no_grad():
        assert network(torch.zeros(1, 4096)).shape == (1, 3, 256, 256)
    weights = tmp_path / "dgn.safetensors"
    save_file(network.state_dict(), weights)
    profile = get_profile("toy", generator=f"dgn:{weights}", generator_size=32)
    generator = models.gan_generator(profile)
    code = generator.initial(2) + 0.1
    image = generator(code)
    assert image.shape == (2, 3, 32, 32) and 0 <= float(image.min()) and float(image.max()) <= 1
    code -= 1
    generator.after_step(code)
    assert float(code.min()) == 0  # relu7 codes stay non-negative


def test_missing_or_wrong_dgn_weights_fail_naming_the_file(tmp_path):
    with pytest.raises(models.ModelNotAvailableError, match="missing DGN weights .*nope.safetensors"):
        models.gan_generator(get_profile("toy", generator=f"dgn:{tmp_path}/nope.safetensors"))
    wrong = tmp_path / "wrong.safetensors"
    save_file({"x": torch.zeros(1)}, wrong)
    with pytest.raises(models.ModelNotAvailableError, match="do not fit"):
        models.gan_generator(get_profile("toy", generator=f"dgn:{wrong}"))
    with pytest.raises(ValueError, match="unknown \\+G generator 'gan'"):
        models.gan_generator(get_profile("toy", generator="gan"))


@pytest.mark.parametrize("make_generator", [
    lambda: methods.PixelGenerator(16),
    lambda: methods.VAEGenerator(_tiny_vae(), (4, 8, 8)),
])
def test_float64_runs_copies_and_agrees_with_float32_to_rounding(make_generator):
    """dtype=float64 optimises through float64 copies (the loaded networks stay float32, as the pipelines
    share them) and reaches the image float32 reaches, up to rounding over a few steps."""
    generator, vgg = make_generator(), tiny_vgg()
    rng = np.random.default_rng(1)
    truth = torch.from_numpy(rng.uniform(size=(2, 3, 16, 16)).astype(np.float32))
    targets = {k: v.numpy() for k, v in methods.vgg_activations(vgg, truth, ["1", "4"], 4).items()}
    common = dict(layers=["1", "4"], pool=4, steps=3, lr=0.01, seed=0, batch_size=2, progress=False)
    single = methods.images_from_vgg_features(generator, vgg, targets, **common)
    double = methods.images_from_vgg_features(generator, vgg, targets, dtype=torch.float64, **common)
    assert {p.dtype for p in vgg.parameters()} == {torch.float32}
    if isinstance(generator, methods.VAEGenerator):
        assert generator.vae.dtype == torch.float32 and generator.to(torch.float64).vae.dtype == torch.float64
    assert double.dtype == np.uint8 and double.shape == single.shape
    assert np.abs(double.astype(int) - single.astype(int)).max() <= 2


def test_profile_generator_dtype_names_a_torch_dtype():
    assert models.generator_dtype(get_profile("toy")) == torch.float64
    assert models.generator_dtype(get_profile("nsd")) is None
    with pytest.raises(ValueError, match="generator_dtype 'double64'"):
        models.generator_dtype(get_profile("toy", generator_dtype="double64"))


def _tiny_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         block_out_channels=(8, 8), norm_num_groups=4, layers_per_block=1, sample_size=16)


class RecordingPixels(methods.PixelGenerator):
    """A pixel generator that keeps every code it is asked to render."""

    def __init__(self, size):
        super().__init__(size, blur_sigma=0)
        self.codes = []

    def __call__(self, code):
        self.codes.append(code.detach().clone())
        return super().__call__(code)


def test_code_quantum_puts_every_step_on_the_grid_and_absorbs_rounding_sized_differences():
    """With code_quantum, each step starts from a code on the grid, so a difference of the size another CPU's
    kernels make (here 1e-12 in the targets) leaves the trajectory unchanged instead of accumulating."""
    vgg = tiny_vgg()
    truth = torch.from_numpy(np.random.default_rng(2).uniform(size=(2, 3, 16, 16)).astype(np.float32))
    targets = {k: v.double().numpy() for k, v in methods.vgg_activations(vgg, truth, ["1", "4"], 4).items()}
    nudged = {k: v * (1 + 1e-12) for k, v in targets.items()}
    quantum = 2.0**-16
    common = dict(layers=["1", "4"], pool=4, steps=20, lr=0.1, seed=0, batch_size=2, dtype=torch.float64,
                  code_quantum=quantum, progress=False)
    first, second = RecordingPixels(16), RecordingPixels(16)
    methods.images_from_vgg_features(first, vgg, targets, **common)
    methods.images_from_vgg_features(second, vgg, nudged, **common)
    assert len(first.codes) == 21  # 20 steps, then the image
    for code in first.codes[1:]:
        assert torch.equal(code, torch.round(code / quantum) * quantum)
    assert all(torch.equal(a, b) for a, b in zip(first.codes, second.codes))
    with pytest.raises(ValueError, match="code_quantum"):
        methods.images_from_vgg_features(first, vgg, targets, **common | {"code_quantum": 0.0})
