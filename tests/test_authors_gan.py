"""The authors' +G networks and files (recon.kamitani) against bdpy's definitions and the authors' script.

bdpy here is the copy the authors vendor (codes/gan/bdpy in yu-takagi/StableDiffusionReconstruction): its
``dl/torch/models.py`` (VGG19, AlexNetGenerator), ``feature/feature.py`` (normalize_feature),
``recon/torch/icnn.py`` (reconstruct) and ``dl/torch/torch.py`` (ImageDatasetNSD). No weights are distributed with
this repository, so a cookbook folder is written with random weights under bdpy's keys and shapes; the tests check
that recon reads it as the authors' script would and computes what bdpy computes with it.
"""

import copy

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from recon import kamitani, methods, models
from recon.profiles import get_profile
from recon.features import vgg_activations, vgg_feature_matrix, vgg_layer_channels, vgg_layer_widths

#: the authors' +G layers, by recon's names and by bdpy's (layer_map('vgg19'))
LAYERS = ("2", "7", "16", "25", "34", "fc6", "fc7", "fc8")
BDPY_NAMES = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4", "fc6", "fc7", "fc8")
BDPY_MODULES = ("features.2", "features.7", "features.16", "features.25", "features.34", "classifier.0",
                "classifier.3", "classifier.6")

#: (key, shape) of bdpy's VGG19 state dict, from its nn.Sequential in models.py (a few of its 38 keys)
VGG19_KEYS = [("features.0.weight", (64, 3, 3, 3)), ("features.0.bias", (64,)),
              ("features.2.weight", (64, 64, 3, 3)), ("features.5.weight", (128, 64, 3, 3)),
              ("features.16.weight", (256, 256, 3, 3)), ("features.19.weight", (512, 256, 3, 3)),
              ("features.34.weight", (512, 512, 3, 3)), ("features.34.bias", (512,)),
              ("classifier.0.weight", (4096, 25088)), ("classifier.3.weight", (4096, 4096)),
              ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,))]
VGG19_N_KEYS = 38  # 16 convolutions and 3 linear layers, weight and bias each

#: bdpy's AlexNetGenerator: each layer by name and by its place in the defc / deconv sequences (ReLUs between),
#: with its weight's shape (ConvTranspose2d weights are in x out x k x k)
GENERATOR_LAYERS = [("defc7", "defc.0", (4096, 4096)), ("defc6", "defc.2", (4096, 4096)),
                    ("defc5", "defc.4", (4096, 4096)), ("deconv5", "deconv.0", (256, 256, 4, 4)),
                    ("conv5_1", "deconv.2", (256, 512, 3, 3)), ("deconv4", "deconv.4", (512, 256, 4, 4)),
                    ("conv4_1", "deconv.6", (256, 256, 3, 3)), ("deconv3", "deconv.8", (256, 128, 4, 4)),
                    ("conv3_1", "deconv.10", (128, 128, 3, 3)), ("deconv2", "deconv.12", (128, 64, 4, 4)),
                    ("deconv1", "deconv.14", (64, 32, 4, 4)), ("deconv0", "deconv.16", (32, 3, 4, 4))]


def _bias_size(shape):
    return shape[0] if len(shape) == 2 else shape[1]  # Linear: out x in; ConvTranspose2d: in x out x k x k


@pytest.fixture(scope="module")
def cookbook(tmp_path_factory):
    """A cookbook folder as the authors' script reads it, with random weights under bdpy's keys and shapes."""
    folder = tmp_path_factory.mktemp("models_pytorch")
    (folder / kamitani.VGG19_FOLDER).mkdir()
    (folder / kamitani.GENERATOR_FOLDER / "act_range" / "3x").mkdir(parents=True)
    torch.manual_seed(0)
    vgg = kamitani.CaffeVGG19()
    torch.save(vgg.state_dict(), folder / kamitani.FILES["vgg19_weights"][0])
    generator = kamitani.AlexNetGenerator()
    with torch.no_grad():  # bdpy's generator draws images of Caffe's +-100 units, not the default init's ~0
        generator.deconv0.weight.mul_(300.0)
    torch.save(generator.state_dict(), folder / kamitani.FILES["generator_weights"][0])
    rng = np.random.default_rng(0)
    mean_image = np.stack([np.full((256, 256), m) for m in (104.0, 116.7, 122.7)]) + rng.normal(0, 5, (3, 256, 256))
    np.save(folder / kamitani.FILES["image_mean"][0], mean_image)
    scipy.io.savemat(folder / kamitani.FILES["feature_std"][0],
                     {name: rng.uniform(0.5, 3.0, (1, 64)) for name in BDPY_NAMES})
    np.savetxt(folder / kamitani.FILES["code_upper_bound"][0], rng.uniform(0.5, 4.0, (1, 4096)), delimiter=" ")
    return folder


@pytest.fixture(scope="module")
def files(cookbook):
    return kamitani.files_in(cookbook)


@pytest.fixture(scope="module")
def vgg(files):
    return kamitani.load_vgg19(files)


@pytest.fixture(scope="module")
def generator_network(files):
    return kamitani.load_generator(files)


def test_modules_have_bdpys_keys_and_shapes():
    vgg = kamitani.CaffeVGG19().state_dict()
    assert len(vgg) == VGG19_N_KEYS
    for key, shape in VGG19_KEYS:
        assert tuple(vgg[key].shape) == shape, key
    generator = kamitani.AlexNetGenerator().state_dict()
    expected = {}
    for name, place, shape in GENERATOR_LAYERS:
        for prefix in (name, place):  # bdpy registers each layer twice
            expected[f"{prefix}.weight"], expected[f"{prefix}.bias"] = shape, (_bias_size(shape),)
    assert {key: tuple(value.shape) for key, value in generator.items()} == expected


def test_distributed_files_load_strictly(files, vgg, generator_network, cookbook):
    saved = torch.load(cookbook / kamitani.FILES["vgg19_weights"][0], weights_only=True)
    assert torch.equal(vgg.classifier[6].weight, saved["classifier.6.weight"])
    saved = torch.load(cookbook / kamitani.FILES["generator_weights"][0], weights_only=True)
    assert torch.equal(generator_network.deconv[2].weight, saved["conv5_1.weight"])
    np.testing.assert_allclose(kamitani.image_mean_bgr(files), [104.0, 116.7, 122.7], atol=0.05)
    bound = kamitani.code_upper_bound(files)
    assert bound.shape == (4096,) and bound.dtype == np.float32 and 0.5 <= bound.min() and bound.max() <= 4.0
    table = scipy.io.loadmat(cookbook / kamitani.FILES["feature_std"][0])
    sds = kamitani.feature_std(files, BDPY_NAMES)
    assert sds["conv3_4"] == pytest.approx(float(np.mean(table["conv3_4"])))  # the script's np.mean(feat_std0[layer])
    assert [models.authors_layer_name(layer) for layer in LAYERS] == list(BDPY_NAMES)
    # bdpy's layer_map('vgg19') (dl/torch/models.py): name -> features[i] / classifier[i]
    layer_map = {"conv1_1": "0", "conv1_2": "2", "conv2_1": "5", "conv2_2": "7", "conv3_1": "10", "conv3_2": "12",
                 "conv3_3": "14", "conv3_4": "16", "conv4_1": "19", "conv4_2": "21", "conv4_3": "23", "conv4_4": "25",
                 "conv5_1": "28", "conv5_2": "30", "conv5_3": "32", "conv5_4": "34", "fc6": "fc6", "fc7": "fc7",
                 "fc8": "fc8"}
    assert kamitani.BDPY_LAYER_NAMES == {index: name for name, index in layer_map.items()}


def test_forward_shapes(vgg, generator_network, files):
    with torch.no_grad():
        assert generator_network(torch.zeros(2, 4096)).shape == (2, 3, 256, 256)
        adapter = methods.AuthorsDGNGenerator(generator_network, kamitani.code_upper_bound(files),
                                              kamitani.image_mean_bgr(files))
        assert adapter(torch.zeros(2, 4096)).shape == (2, 3, 224, 224)
    widths = vgg_layer_widths(vgg, LAYERS, pool=224, size=224)  # pool >= every side: the full maps
    assert widths == {"2": 64 * 224 ** 2, "7": 128 * 112 ** 2, "16": 256 * 56 ** 2, "25": 512 * 28 ** 2,
                      "34": 512 * 14 ** 2, "fc6": 4096, "fc7": 4096, "fc8": 1000}
    assert vgg_layer_channels(vgg, LAYERS) == {"2": 64, "7": 128, "16": 256, "25": 512, "34": 512, "fc6": None,
                                              "fc7": None, "fc8": None}


def _hooked(network, module_names):
    """bdpy's FeatureExtractor: each named module's output in a forward pass."""
    outputs = {}
    handles = [network.get_submodule(name).register_forward_hook(
        lambda module, inputs, output, name=name: outputs.__setitem__(name, output)) for name in module_names]
    return outputs, handles


def test_stimulus_features_are_make_vgg19bdpy_s(vgg, files):
    """The targets' input path: bdpy's ImageDatasetNSD as make_vgg19bdpy.py configures it (PIL resample=2 to 224,
    (x / 255) * 255, minus the npy's channel means in their BGR order from the RGB channels), into bdpy's VGG19;
    with "caffe", the BGR image the network was trained on."""
    rng = np.random.default_rng(1)
    stimuli = rng.integers(0, 256, (2, 300, 300, 3), dtype=np.uint8)
    mean = kamitani.image_mean_bgr(files)  # as the script: np.float32([m[0].mean(), m[1].mean(), m[2].mean()])
    for order, flip in (("authors", False), ("caffe", True)):
        network = kamitani.CaffeVGG19(mean, order)
        network.load_state_dict(vgg.state_dict())
        network.eval()
        ours = vgg_feature_matrix(network, stimuli, ["2", "7"], pool=224, size=224, progress=False)
        for k, image in enumerate(stimuli):
            data = np.array(Image.fromarray(image).resize((224, 224), resample=2)).transpose(2, 0, 1)
            data = (data / 255.0) * 255
            data = data[::-1] if flip else data
            data = data - mean.reshape(3, 1, 1)
            outputs, handles = _hooked(network, ["features.2", "features.7"])
            with torch.no_grad():
                network.features(torch.Tensor(data.copy())[None])
            for handle in handles:
                handle.remove()
            theirs = torch.cat([outputs["features.2"].flatten(), outputs["features.7"].flatten()]).numpy()
            np.testing.assert_allclose(ours[k], theirs, rtol=1e-4, atol=1e-3)


def _bdpy_normalize_feature(feature, scale):
    """bdpy normalize_feature(feature, channel_wise_mean=False, channel_wise_std=False, channel_axis=0,
    shift='self', scale=scale, std_ddof=1), re-implemented from feature/feature.py: a 1-D feature's SD is over all
    of it; otherwise each channel's SD over the other axes, averaged over channels; the mean over all units."""
    axes = None if feature.ndim == 1 else tuple(range(1, feature.ndim))
    mean = np.mean(feature, keepdims=True)
    std = np.mean(np.std(feature, axis=axes, ddof=1, keepdims=True), keepdims=True)
    return (feature - mean) / std * scale + mean


def test_decoded_features_rescaled_as_bdpy():
    """rescale_as_bdpy on recon's flattened rows equals normalize_feature on the squeezed maps the authors' script
    hands it ((C, H, W) for a conv layer, (4096,) for fc), value for value."""
    rng = np.random.default_rng(0)
    n, channels, side = 3, 8, 5
    conv = rng.normal(0.0, 2.0, (n, channels, 1, 1)) + rng.normal(0.0, 0.5, (n, channels, side, side))
    fc = rng.normal(-1.0, 5.0, (n, 1, 1, 20))  # make_vgg19fromdecode.py's (1, 1, 4096) per image, squeezed
    reference = {"16": 1.5, "fc6": 0.7}
    ours = methods.rescale_as_bdpy({"16": conv.reshape(n, -1), "fc6": fc.reshape(n, -1)}, reference,
                                   {"16": channels, "fc6": None})
    for k in range(n):
        np.testing.assert_allclose(ours["16"][k], _bdpy_normalize_feature(np.squeeze(conv[k]), 1.5).reshape(-1),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours["fc6"][k], _bdpy_normalize_feature(np.squeeze(fc[k]), 0.7),
                                   rtol=1e-5, atol=1e-5)
    # the SD over all units (rescale_to_reference, kept for torchvision's VGG19) is not bdpy's on these maps
    units = methods.rescale_to_reference({"16": conv.reshape(n, -1)}, {"16": 1.5})
    assert not np.allclose(units["16"], ours["16"], atol=1e-2)


def _bdpy_icnn(features, encoder, generator, initial, upper_bound, n_iter, steps, layer_weights):
    """bdpy's reconstruct with a generator, as the authors' script calls it (recon/torch/icnn.py re-implemented):
    SGD on the code at lr 2 -> 1e-10 and momentum 0.9 -> 0.9 over n_iter, the image the generator's centre 224 px
    (a mask, as theirs) fed to the encoder as it is, the loss sum over layers of weight x MSELoss(sum), the
    gradient over its mean absolute value, then the code x (1 - decay), clipped to [0, upper_bound]. Runs the
    first ``steps`` of ``n_iter`` iterations and returns the code."""
    lr, momentum, decay = (2.0, 1e-10), (0.9, 0.9), (0.01, 0.01)
    dtype = next(encoder.parameters()).dtype
    f = initial.copy()
    ft = torch.tensor(f[np.newaxis], requires_grad=True)
    op = torch.optim.SGD([ft], lr=lr[0])
    outputs, handles = _hooked(encoder, [BDPY_MODULES[LAYERS.index(layer)] for layer in features])
    for it in range(steps):
        op.zero_grad()
        for group in op.param_groups:
            group["lr"] = lr[0] + it * (lr[1] - lr[0]) / n_iter
            group["momentum"] = momentum[0] + it * (momentum[1] - momentum[0]) / n_iter
        decay_it = decay[0] + it * (decay[1] - decay[0]) / n_iter
        ft.data = torch.tensor(f[np.newaxis])
        xt = generator(ft)
        mask = np.zeros(xt.shape)
        mask[:, :, 16:240, 16:240] = 1
        xt = torch.masked_select(xt, torch.tensor(mask).bool()).view((1, 3, 224, 224))
        encoder(xt)
        loss = 0.0
        for layer in reversed(list(features)):
            act = outputs[BDPY_MODULES[LAYERS.index(layer)]]
            feat = torch.tensor(features[layer], dtype=dtype).view(act.shape)
            loss = loss + torch.nn.MSELoss(reduction="sum")(act, feat) * layer_weights[layer]
        loss.backward()
        grad_mean = torch.abs(ft.grad).mean()
        if grad_mean > 0:
            ft.grad /= grad_mean
        op.step()
        f = ft.detach().numpy()[0]
        f = (1 - decay_it) * f
        f = np.minimum(np.maximum(f, 0.0), upper_bound)
    for handle in handles:
        handle.remove()
    return f


class _Recording:
    """A +G generator that remembers the code of its last call (the final image's)."""

    def __init__(self, inner):
        self.inner, self.code = inner, None

    def initial(self, n, random=None):
        return self.inner.initial(n, random)

    def to(self, dtype):
        self.inner = self.inner.to(dtype)
        return self

    def after_step(self, code):
        self.inner.after_step(code)

    def __call__(self, code):
        self.code = code.detach().clone()
        return self.inner(code)


def test_feature_matching_steps_are_bdpy_s_with_the_authors_generator(vgg, generator_network, files):
    """Two iterations (the second at the scheduled lr of 1, with momentum) of recon's +G with the authors' generator
    and VGG19 against bdpy's icnn loop: the same code, within 1e-6 (float64 both)."""
    upper_bound = kamitani.code_upper_bound(files)
    mean = kamitani.image_mean_bgr(files)
    adapter = methods.AuthorsDGNGenerator(generator_network, upper_bound, mean)
    seed, n_iter, steps = 3, 2, 2  # recon runs steps of its schedule over its steps, as bdpy over n_iter
    with torch.no_grad():  # targets: the features of one generated image, perturbed
        image = adapter(torch.rand(1, 4096, generator=torch.Generator().manual_seed(9)) * 2)
        acts = vgg_activations(vgg, image, LAYERS, pool=224)
    rng = np.random.default_rng(2)
    targets = {layer: (a.numpy() * rng.uniform(0.5, 1.5, a.shape)).astype(np.float32) for layer, a in acts.items()}
    recording = _Recording(adapter)
    methods.images_from_vgg_features(recording, vgg, targets, layers=LAYERS, pool=224, steps=steps, lr=2.0, seed=seed,
                                     batch_size=1, dtype=torch.float64, optimiser="sgd", lr_end=1e-10, momentum=0.9,
                                     decay=0.01, progress=False)
    ours = recording.code.numpy()[0]
    # their start: N(0, 1) per element, one draw for every image (recon's from a generator seeded by the seed)
    initial = torch.randn((1, 4096), generator=torch.Generator().manual_seed(seed)).double().numpy()[0]
    starts = adapter.initial(3, torch.Generator().manual_seed(seed))
    assert torch.equal(starts[0], starts[2]) and np.array_equal(starts[0].numpy(), initial.astype(np.float32))
    norms = np.array([np.linalg.norm(targets[layer].astype(np.float64)) for layer in LAYERS])
    weights = 1.0 / norms ** 2
    layer_weights = dict(zip(LAYERS, weights / weights.sum()))
    encoder = kamitani.CaffeVGG19(mean).double()
    encoder.load_state_dict(vgg.state_dict())
    encoder.eval()
    generator = kamitani.AlexNetGenerator().double()
    generator.load_state_dict(generator_network.state_dict())
    theirs = _bdpy_icnn(targets, encoder, generator.eval(), initial, upper_bound.astype(np.float64), n_iter, steps,
                        layer_weights)
    assert np.abs(theirs - initial).max() > 0.1  # the steps moved the code
    assert 0 < np.mean(theirs == 0) < 1  # and the bounds clipped some of it
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_the_authors_generator_hands_vgg19_its_output_as_it_comes(generator_network, vgg, files):
    """Whatever the channel order, the VGG19's preprocess undoes the adapter's: VGG19 sees the generator's crop."""
    code = torch.rand(1, 4096, generator=torch.Generator().manual_seed(4)).double()
    with torch.no_grad():
        raw = kamitani.centre_crop(copy.deepcopy(generator_network).double()(code))
    for order in kamitani.CHANNEL_ORDERS:
        adapter = methods.AuthorsDGNGenerator(generator_network, kamitani.code_upper_bound(files),
                                              kamitani.image_mean_bgr(files), order).to(torch.float64)
        network = kamitani.CaffeVGG19(kamitani.image_mean_bgr(files), order)
        with torch.no_grad():
            torch.testing.assert_close(network.preprocess(adapter(code)), raw, rtol=0, atol=1e-9)


def test_missing_or_malformed_files_fail_naming_the_file(tmp_path, cookbook):
    with pytest.raises(kamitani.AuthorsFileError, match="VGG_ILSVRC_19_layers.pt .*is missing.*Kamitani lab's brain-decoding"):
        kamitani.load_vgg19(kamitani.files_in(tmp_path))
    with pytest.raises(kamitani.AuthorsFileError, match="RECON_AUTHORS_GAN_DIR"):
        kamitani.files_in(None)
    (tmp_path / kamitani.GENERATOR_FOLDER / "act_range" / "3x").mkdir(parents=True)
    short = tmp_path / kamitani.FILES["code_upper_bound"][0]
    np.savetxt(short, np.ones((1, 10)), delimiter=" ")
    with pytest.raises(kamitani.AuthorsFileError, match="fc7.txt .*unreadable as 4096 space-delimited"):
        kamitani.code_upper_bound(kamitani.files_in(tmp_path))
    torch.save({"defc7.weight": torch.zeros(2, 2)}, tmp_path / kamitani.FILES["generator_weights"][0])
    with pytest.raises(kamitani.AuthorsFileError, match="generator_relu7.pt .*has keys or shapes unlike bdpy's AlexNetGenerator"):
        kamitani.load_generator(kamitani.files_in(tmp_path))
    with pytest.raises(kamitani.AuthorsFileError, match="std_VGG_ILSVRC.*has no layer.*'conv9_9'"):
        kamitani.feature_std(kamitani.files_in(cookbook), ["conv9_9"])


def test_nsd_profile_reads_the_authors_networks_by_default(cookbook, tmp_path):
    authors = get_profile("nsd", device="cpu", authors_gan_dir=cookbook)
    assert authors.generator == authors.models.vgg19 == models.AUTHORS  # nsd's +G is theirs
    try:
        assert isinstance(models.gan_generator(authors), methods.AuthorsDGNGenerator)
        assert isinstance(models.vgg19_features(authors), kamitani.CaffeVGG19)
        assert models.authors_feature_std(authors, ["2", "fc8"]).keys() == {"2", "fc8"}
        missing = authors.replace(authors_gan_dir=tmp_path)
        with pytest.raises(kamitani.AuthorsFileError, match="generator_relu7.pt"):
            models.gan_generator(missing)
    finally:
        models.release()


def test_experiment_rescales_to_the_authors_feat_std0(cookbook, tmp_path):
    """With the authors' VGG19 the reference +G rescales decoded layers to is their feat_std0's mean per layer (the
    cookbook's .mat, by bdpy's layer names), not the subject's training images' SD; read without decoding."""
    from recon.experiment import Experiment

    smoke = get_profile("smoke", cache_dir=tmp_path)
    theirs = smoke.replace(models=smoke.models.__class__(**{**smoke.models.__dict__, "vgg19": models.AUTHORS}),
                           generator=models.AUTHORS, authors_gan_dir=cookbook, vgg_width_divisor=1,
                           generator_size=224, vgg_layers=LAYERS)
    table = scipy.io.loadmat(cookbook / kamitani.FILES["feature_std"][0])
    try:
        reference = Experiment(theirs, "subj01", progress=False).vgg_reference_std()
    finally:
        models.release()
    assert reference == {layer: pytest.approx(float(np.mean(table[name]))) for layer, name in zip(LAYERS, BDPY_NAMES)}


def test_gan_recipe_takes_bdpys_rescaling_with_the_authors_vgg19_only(cookbook, monkeypatch):
    """recipes.gan_images: the authors' VGG19 -> rescale_as_bdpy with its channel counts; torchvision's (the toy's,
    smoke's and nsd's default) -> rescale_to_reference, as before."""
    from recon import recipes

    called = []
    monkeypatch.setattr(methods, "images_from_vgg_features", lambda generator, vgg, targets, **kw: targets)
    monkeypatch.setattr(methods, "rescale_as_bdpy", lambda t, r, c: called.append(("bdpy", c)) or t)
    monkeypatch.setattr(methods, "rescale_to_reference", lambda t, r: called.append(("units", None)) or t)
    nsd = get_profile("nsd", device="cpu", authors_gan_dir=cookbook)
    theirs = nsd.replace(generator=models.AUTHORS, vgg_pool=2,
                         models=nsd.models.__class__(**{**nsd.models.__dict__, "vgg19": models.AUTHORS}))
    width = 2 * 2 * (64 + 128 + 256 + 512 + 512) + 4096 * 2 + 1000
    try:
        targets = recipes.gan_images(theirs, np.ones((1, width), np.float32), {layer: 1.0 for layer in LAYERS},
                                     progress=False)
    finally:
        models.release()
    assert called == [("bdpy", {"2": 64, "7": 128, "16": 256, "25": 512, "34": 512, "fc6": None, "fc7": None,
                                "fc8": None})]
    assert targets["34"].shape == (1, 512 * 4)
    smoke = get_profile("smoke")
    try:
        widths = vgg_layer_widths(models.vgg19_features(smoke), smoke.vgg_layers, smoke.vgg_pool, smoke.generator_size)
        recipes.gan_images(smoke, np.ones((1, sum(widths.values())), np.float32), dict.fromkeys(widths, 1.0),
                           progress=False)
    finally:
        models.release()
    assert called[1:] == [("units", None)]
