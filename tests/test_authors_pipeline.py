"""The authors' steps (github yu-takagi/StableDiffusionReconstruction) re-implemented from their scripts,
beside recon's: each test writes their step again with the libraries they call, and checks that what the
``nsd`` profile computes (on the toy models, where a model is needed) agrees with it."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from recon import control, features, methods, models
from recon.profiles import get_profile
from recon.decode import RidgeDecoder
from recon.experiment import decoder_alphas
from recon.nsd import BETA_SCALE
from recon.config import ConfigError
from recon.ridge_streamed import StreamedRidgeCV
from recon.toy import scenes

ALPHAS = (1e-1, 1.0, 10.0, 1e2, 1e3)


def _authors_ridge(X, Y, X_test, alphas):
    """codes/utils/ridge.py: make_pipeline(StandardScaler(with_mean=True, with_std=True), RidgeCV(alphas))
    on himalaya's numpy backend, Y flattened per trial, predictions of the averaged test betas."""
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    set_backend("numpy", on_error="warn")
    pipeline = make_pipeline(make_pipeline(StandardScaler(with_mean=True, with_std=True)), RidgeCV(alphas=list(alphas)))
    pipeline.fit(X.astype("float32"), Y.astype("float32").reshape(len(X), -1))
    return pipeline.predict(X_test.astype("float32"))


@pytest.fixture(scope="module")
def decoding_data():
    """Toy decoding data whose targets have a large mean (as c's first token row has), shown on repeated trials."""
    rng = np.random.default_rng(0)
    n_images, n_voxels = 60, 40
    index = np.concatenate([np.arange(n_images)] * 3)
    W = rng.standard_normal((n_voxels, 6)) * 0.3
    latent = rng.standard_normal((n_images, n_voxels))
    X = latent[index] + 0.5 * rng.standard_normal((len(index), n_voxels))
    Y = latent @ W + 3.0 + 0.1 * rng.standard_normal((n_images, 6))
    Y[:, 0] = 2.5  # a target equal for every image
    X_test = rng.standard_normal((10, n_voxels))
    return X, Y, index, X_test


def test_decoders_equal_the_authors_ridge_value_for_value(decoding_data):
    X, Y, index, X_test = decoding_data
    theirs = _authors_ridge(X, Y[index], X_test, ALPHAS)
    in_memory = RidgeDecoder(alphas=ALPHAS, cv=5, backend="numpy").fit(X, Y[index]).predict(X_test)
    streamed = StreamedRidgeCV(alphas=ALPHAS, cv=5).fit(X, Y, index).predict(X_test)
    np.testing.assert_allclose(in_memory, theirs, atol=1e-4)
    np.testing.assert_allclose(streamed, theirs, atol=1e-4)
    # their decoder has no intercept: a target constant over images decodes to 0, not to its value
    np.testing.assert_allclose(theirs[:, 0], 0.0, atol=1e-4)


def test_the_intercept_option_adds_the_training_mean(decoding_data):
    X, Y, index, X_test = decoding_data
    with_mean = StreamedRidgeCV(alphas=ALPHAS, cv=5, fit_intercept=True).fit(X, Y, index).predict(X_test)
    np.testing.assert_allclose(with_mean[:, 0], 2.5, atol=1e-4)
    reference = RidgeDecoder(alphas=ALPHAS, cv=5, backend="numpy", fit_intercept=True).fit(X, Y[index])
    np.testing.assert_allclose(with_mean, reference.predict(X_test), atol=1e-4)
    assert get_profile("nsd").decoder_intercept is False and get_profile("toy").decoder_intercept is False


def test_the_decoder_sees_the_authors_int16_betas_as_ours(decoding_data):
    """make_subjmri.py keeps NSD's int16 values (beta x 300, as NSDAccess.read_betas returns them) and ridge.py
    casts them to float32; recon's reader divides them by 300 into float32. The StandardScaler in front of both
    decoders removes the scale: the decoded features agree."""
    X, Y, index, X_test = decoding_data
    stored, stored_test = (np.round(x * BETA_SCALE).astype(np.int16) for x in (X, X_test))
    theirs = _authors_ridge(stored, Y[index], stored_test, ALPHAS)
    ours = StreamedRidgeCV(alphas=ALPHAS, cv=5).fit((stored / BETA_SCALE).astype(np.float32), Y, index)
    np.testing.assert_allclose(ours.predict((stored_test / BETA_SCALE).astype(np.float32)), theirs, atol=1e-4)


def _authors_alphas(target: str) -> list[float]:
    """ridge.py's grid for a target named as theirs: the small one for c and init_latent, the large for the rest."""
    if target == 'c' or target == 'init_latent':
        return [0.000001, 0.00001, 0.0001, 0.001, 0.01, 0.1, 1]
    return [10000, 20000, 40000]


def test_alpha_grids_go_to_the_targets_the_authors_give_them():
    """Each of recon's targets, named as the authors' scripts name it, is decoded over their grid on nsd."""
    nsd = get_profile("nsd")
    their_names = {"z": "init_latent", "c": "c", "blip": "blip", "dpt": "dpt_emb0", "vgg": "conv1_2"}
    for ours, theirs in their_names.items():
        assert list(decoder_alphas(nsd, ours)) == _authors_alphas(theirs), ours
    assert list(decoder_alphas(nsd, "vgg")) == _authors_alphas("fc6")  # fc layers too, had they run


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return get_profile("toy", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return np.stack([scenes.render(scenes.sample_scene(rng), 96)[0] for _ in range(3)])


def _authors_load_img(img_arr, resolution):
    """img2feat_sd.py's load_img_from_arr: PIL Lanczos to resolution, [0, 1], then [-1, 1]."""
    image = Image.fromarray(img_arr).convert("RGB").resize((resolution, resolution), resample=Image.LANCZOS)
    image = np.array(image).astype(np.float32) / 255.0
    return 2.0 * torch.from_numpy(image[None].transpose(0, 3, 1, 2)) - 1.0


@torch.no_grad()
def test_z_is_the_authors_init_latent(toy, images):
    """img2feat_sd.py: init_latent = get_first_stage_encoding(encode_first_stage(image at 320 px)), a sample of
    the posterior times the scale factor; here at the toy's z size, with recon's per-image noise."""
    vae = models.img2img(toy).vae
    ids = np.array([5, 17, 40])
    ours = features.vae_latents(models.img2img(toy), images, toy.z_size, progress=False, sample_ids=ids, seed=3)
    for image, image_id, z in zip(images, ids, ours):
        posterior = vae.encode(_authors_load_img(image, toy.z_size)).latent_dist
        theirs = posterior.sample(generator=features.posterior_generator(3, image_id)) * vae.config.scaling_factor
        np.testing.assert_allclose(z, theirs[0].numpy(), atol=1e-5)
    assert ours.shape[-1] == toy.z_size // 4  # the toy VAE downsamples by 4
    assert get_profile("nsd").z_size == 320 and toy.z_size / toy.image_size == 320 / 512


@torch.no_grad()
def test_init_image_is_the_authors_decoded_z(toy, images):
    """diffusion_decoding.py: decode_first_stage(z), clamp((x + 1) / 2), 255 *, astype(uint8), PIL resize to 512."""
    vae = models.img2img(toy).vae
    z = features.vae_latents(models.img2img(toy), images, toy.z_size, progress=False)
    ours = methods.init_images_from_latents(vae, z, toy.image_size, progress=False)
    decoded = vae.decode(torch.from_numpy(z) / vae.config.scaling_factor).sample  # one batch, as ours
    for x, image in zip(torch.clamp((decoded + 1.0) / 2.0, min=0.0, max=1.0), ours):
        x_sample = 255.0 * x.numpy().transpose(1, 2, 0)
        theirs = np.array(Image.fromarray(x_sample.astype(np.uint8)).resize((toy.image_size, toy.image_size)))
        np.testing.assert_array_equal(image, theirs)


@torch.no_grad()
def test_c_is_the_authors_caption_average(toy):
    """img2feat_sd.py: model.get_learned_conditioning(captions).mean(axis=0), where the FrozenCLIPEmbedder of their
    ldm/modules/encoders/modules.py tokenises with truncation and padding to max_length (77; the toy tokenizer's
    own here) and returns the text transformer's last_hidden_state: one mean over each image's captions."""
    pipe = models.img2img(toy)
    captions = [["a red ball on green grass", "a ball", "red"], ["a blue cube"],
                ["two shapes on a plain background, one of them a large yellow triangle", "a scene"]]
    ours = features.text_embeddings(pipe, captions, progress=False)
    for group, c in zip(captions, ours):
        tokens = pipe.tokenizer(group, truncation=True, max_length=pipe.tokenizer.model_max_length, return_length=True,
                                return_overflowing_tokens=False, padding="max_length", return_tensors="pt")["input_ids"]
        theirs = pipe.text_encoder(input_ids=tokens).last_hidden_state.mean(axis=0)
        np.testing.assert_allclose(c, theirs.numpy(), atol=1e-5)
    assert ours.shape[1] == pipe.tokenizer.model_max_length


@torch.no_grad()
def test_blip_input_is_the_authors(toy, images):
    """img2feat_blip.py: PIL Lanczos to 240 px, torchvision ToTensor() (no mean / std), the ViT's output;
    here at 48 px on the toy BLIP (trained at 64), whose position embeddings are interpolated."""
    from torchvision import transforms

    blip, processor = models.blip(toy)
    ours = features.blip_vision(blip, processor, images, progress=False, size=48, normalise=False)
    for image, tokens in zip(images, ours):
        resized = Image.fromarray(image).convert("RGB").resize((48, 48), resample=Image.LANCZOS)
        pixels = transforms.ToTensor()(resized).unsqueeze(0)
        theirs = blip.vision_model(pixel_values=pixels, interpolate_pos_encoding=True)[0][0]
        np.testing.assert_allclose(tokens, theirs.numpy(), atol=1e-5)
    patch = blip.config.vision_config.patch_size
    assert ours.shape[1] == 1 + (48 // patch) ** 2
    nsd = get_profile("nsd")
    assert (nsd.blip_image_size, nsd.blip_normalise, nsd.caption_prompt) == (240, False, "a picture of ")


@torch.no_grad()
def test_captions_with_the_authors_prompt(toy, images):
    """decode_captions.py's generate_from_imageembeds: the prompt tokenised, [CLS] replaced by BOS, [SEP]
    dropped, beam search with max / min length counting the prompt, caption[len(prompt):]."""
    blip, processor = models.blip(toy)
    vision = features.blip_vision(blip, processor, images, progress=False)
    prompt = "a picture of "
    settings = dict(repetition_penalty=1.5, num_beams=3, max_length=12, min_length=5)
    ours = methods.captions_from_vision_features(blip, processor, vision, prompt=prompt, progress=False, **settings)
    config = blip.config.text_config
    input_ids = processor.tokenizer([prompt], return_tensors="pt").input_ids
    input_ids[:, 0] = config.bos_token_id
    input_ids = input_ids[:, :-1]
    for embeds, caption in zip(vision, ours):
        embeds = torch.from_numpy(embeds[None])
        outputs = blip.text_decoder.generate(
            input_ids=input_ids, encoder_hidden_states=embeds,
            encoder_attention_mask=torch.ones(embeds.shape[:-1], dtype=torch.long),
            eos_token_id=config.sep_token_id, pad_token_id=config.pad_token_id, do_sample=False, **settings)
        theirs = processor.tokenizer.decode(outputs[0], skip_special_tokens=True)[len(prompt):]
        assert caption == theirs.strip()


# ------------------------------------------------------------------------------------------------ +D
def _authors_dpt_hidden_states(model, processor, img_arr, resolution):
    """img2feat_dpt.py: PIL Lanczos to the generation size, the processor, the model's hidden_states[1:] at
    backbone_out_indices (the four layers the neck reads)."""
    image = Image.fromarray(img_arr).convert("RGB").resize((resolution, resolution), resample=Image.LANCZOS)
    outputs = model(**processor(images=image, return_tensors="pt"), output_hidden_states=True)
    return np.stack([feature[0].numpy() for idx, feature in enumerate(outputs.hidden_states[1:])
                     if idx in model.config.backbone_out_indices])


@torch.no_grad()
def test_dpt_hidden_states_are_the_authors_at_the_generation_size(toy, images):
    """The toy's stimuli have the generation size (64 px), so the authors' Lanczos resize changes nothing and
    recon's hidden states are theirs. From another size (NSD's 425 px, for 512) recon, which hands the processor
    the stimulus as stored, differs: the fidelity table's deviation on nsd."""
    from recon import fidelity

    model, processor = models.dpt(toy)
    at_generation_size = features.pil_resize(images, toy.image_size)
    ours = features.dpt_hidden_states(model, processor, at_generation_size, progress=False)
    for image, states in zip(at_generation_size, ours):
        np.testing.assert_allclose(states, _authors_dpt_hidden_states(model, processor, image, toy.image_size),
                                   atol=1e-5)
    assert fidelity._stimulus_px(toy) == toy.image_size
    as_stored = features.dpt_hidden_states(model, processor, images[:1], progress=False)  # 96 px stimuli
    assert not np.allclose(as_stored[0], _authors_dpt_hidden_states(model, processor, images[0], toy.image_size),
                           atol=1e-3)


@torch.no_grad()
def test_depth_map_is_resampled_twice_where_the_authors_resample_once(toy, images):
    """dptemb2dpt.py: the neck and head on the hidden states, the depth map resized once (bicubic) to the latent
    size, then min-max to [-1, 1]. recon resizes DPT's map to the generation size (recipes.depth) and diffusers'
    depth2img resizes that to the latent size and min-max scales it: the authors' map only where DPT's map has
    the generation size already. The toy's DPT returns 128 px for 64 px images (DPT-Large: 384 for 512)."""
    from recon import fidelity

    model, processor = models.dpt(toy)
    pipe = models.depth2img(toy)
    states = features.dpt_hidden_states(model, processor, features.pil_resize(images, toy.image_size), progress=False)
    tokens = torch.from_numpy(states)
    side = int(round(np.sqrt(tokens.shape[2] - 1)))
    predicted_depth = model.head(model.neck([tokens[:, i] for i in range(tokens.shape[1])], side, side))
    assert predicted_depth.shape[-1] == fidelity._dpt_depth_px(toy) != toy.image_size
    latent = toy.image_size // pipe.vae_scale_factor
    cc = torch.nn.functional.interpolate(predicted_depth.unsqueeze(1), size=(latent, latent), mode="bicubic",
                                         align_corners=False)
    depth_min, depth_max = torch.amin(cc, dim=[1, 2, 3], keepdim=True), torch.amax(cc, dim=[1, 2, 3], keepdim=True)
    theirs = 2.0 * (cc - depth_min) / (depth_max - depth_min) - 1.0
    init_images = np.zeros((len(images), toy.image_size, toy.image_size, 3), dtype=np.float32)

    def in_the_pipeline(size):  # recon's depth map at ``size``, as depth2img prepares it for the UNet
        depth = torch.from_numpy(methods.depth_from_hidden_states(model, states, size, progress=False))
        return pipe.prepare_depth_map(init_images, depth, len(images), False, torch.float32, torch.device("cpu"))

    assert (in_the_pipeline(toy.image_size) - theirs).abs().max() > 1e-2
    torch.testing.assert_close(in_the_pipeline(predicted_depth.shape[-1]), theirs, rtol=1e-5, atol=1e-5)


def test_overlap_list_formats(tmp_path, toy):
    zero_based = tmp_path / "zero.csv"
    pd.DataFrame({"nsdId": [2950, 72999]}).to_csv(zero_based, index=False)
    one_based = tmp_path / "one.csv"
    pd.DataFrame({"73KID": [2951, 73000]}).to_csv(one_based, index=False)
    for path in (zero_based, one_based):
        np.testing.assert_array_equal(control.overlap_ids(toy.replace(overlap_list=path)), [2950, 72999])


def test_overlap_list_fails_naming_the_parameter(tmp_path, toy):
    with pytest.raises(ConfigError, match="overlap_list is not set: pass -p overlap_list PATH"):
        control.overlap_ids(get_profile("nsd"))
    with pytest.raises(ConfigError, match="overlap_list .*missing.csv does not exist"):
        control.overlap_ids(toy.replace(overlap_list=tmp_path / "missing.csv"))
    both = tmp_path / "both.csv"
    pd.DataFrame({"nsdId": [1], "73KID": [2]}).to_csv(both, index=False)
    with pytest.raises(ConfigError, match="exactly one"):
        control.overlap_ids(toy.replace(overlap_list=both))
    outside = tmp_path / "outside.csv"
    pd.DataFrame({"73KID": [0]}).to_csv(outside, index=False)
    with pytest.raises(ConfigError, match="1-73000"):
        control.overlap_ids(toy.replace(overlap_list=outside))


# ------------------------------------------------------------------------------------------------ +G
def _narrow_vgg():
    from torchvision.models import vgg as tv_vgg

    torch.manual_seed(0)
    return tv_vgg.make_layers(models.vgg19_layer_config(16)).double().eval().requires_grad_(False)


def _bdpy_reconstruct(target: dict, vgg, layers, pool, size, n_iter, lr=(2.0, 1e-10), momentum=(0.9, 0.9),
                      decay=(0.01, 0.01)):
    """bdpy.recon.torch.icnn.reconstruct without a generator, one image, as the authors call it: the loss
    sum_j w_j * MSELoss(sum) with w_j = (1 / ||t_j||^2) normalised to sum 1; the gradient divided by its mean
    absolute value; SGD whose lr and momentum go linearly over the iterations; the image times (1 - decay)
    after each step. The image lives in Caffe's units (0-255 minus the mean), starting at the mean image."""
    mean = torch.tensor(methods.PixelGenerator.IMAGENET_MEAN_RGB, dtype=torch.float64).view(1, 3, 1, 1)
    norms = np.array([np.linalg.norm(target[layer]) for layer in layers])
    weights = dict(zip(layers, (1.0 / norms**2) / (1.0 / norms**2).sum()))
    x = np.zeros((3, size, size))
    xt = torch.tensor(x[np.newaxis], requires_grad=True)
    op = torch.optim.SGD([xt], lr=lr[0])
    for it in range(n_iter):
        op.zero_grad()
        for group in op.param_groups:
            group["lr"] = lr[0] + it * (lr[1] - lr[0]) / n_iter
            group["momentum"] = momentum[0] + it * (momentum[1] - momentum[0]) / n_iter
        decay_it = decay[0] + it * (decay[1] - decay[0]) / n_iter
        xt.data = torch.tensor(x[np.newaxis])
        activations = features.vgg_activations(vgg, (xt + mean) / 255.0, layers, pool)
        loss = 0.0
        for layer in reversed(layers):
            loss = loss + torch.nn.MSELoss(reduction="sum")(activations[layer], torch.tensor(target[layer][None])) \
                * weights[layer]
        loss.backward()
        grad_mean = torch.abs(xt.grad).mean()
        if grad_mean > 0:
            xt.grad /= grad_mean
        op.step()
        x = xt.detach().numpy()[0]
        x = (1 - decay_it) * x
    image = x + mean.numpy()[0]  # postproc: back to 0-255 RGB
    image = np.clip(image, np.percentile(image, 2.0), np.percentile(image, 98.0))  # clip_extreme(pct=4)
    image = image - image.min()  # normalize_image
    image = image * (255.0 / image.max())
    return np.uint8(image).transpose(1, 2, 0)


def test_feature_matching_is_the_authors_recipe():
    """Two images optimised together by recon equal bdpy's loop run on each alone."""
    vgg, layers, size = _narrow_vgg(), ("2", "7", "16"), 32
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.random((2, 3, size, size)))
    targets = {k: v.numpy() for k, v in features.vgg_activations(vgg, truth, layers, 4).items()}
    ours = methods.images_from_vgg_features(
        methods.PixelGenerator(size, space="caffe"), vgg, targets, layers=layers, pool=4, steps=6, lr=2.0, seed=0,
        optimiser="sgd", lr_end=1e-10, momentum=0.9, decay=0.01, contrast_pct=4.0, progress=False)
    for k in range(2):
        theirs = _bdpy_reconstruct({layer: targets[layer][k] for layer in layers}, vgg, layers, 4, size, 6)
        difference = np.abs(ours[k].astype(int) - theirs.astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01  # uint8 truncation at a boundary only


def test_pre_relu_and_fc_layers_are_the_linear_outputs():
    from torchvision.models import vgg19

    torch.manual_seed(0)
    network = vgg19(weights=None).eval().requires_grad_(False)
    x = torch.rand(1, 3, 32, 32)
    acts = features.vgg_activations(network, x, ["2", "3", "fc6", "fc7", "fc8"], pool=64)
    h = features.imagenet_normalise(x)
    conv1_2 = network.features[2](torch.relu(network.features[0](h)))
    torch.testing.assert_close(acts["2"], conv1_2.flatten(1))
    assert (acts["2"] < 0).any() and torch.equal(acts["3"], torch.relu(acts["2"]))
    fc6 = network.classifier[0](torch.flatten(network.avgpool(network.features(h)), 1))
    fc7 = network.classifier[3](torch.relu(fc6))
    torch.testing.assert_close(acts["fc6"], fc6)
    torch.testing.assert_close(acts["fc7"], fc7)
    torch.testing.assert_close(acts["fc8"], network.classifier[6](torch.relu(fc7)))
    nsd = get_profile("nsd")
    from recon.fidelity import vgg19_layer_names

    assert [vgg19_layer_names().get(layer, layer) for layer in nsd.vgg_layers] == [
        "conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4", "fc6", "fc7", "fc8"]


def _bdpy_normalize_feature(ft, scale, channel_axis=0, std_ddof=1):
    """codes/gan/bdpy/bdpy/feature/feature.py's normalize_feature as recon_icnn_image_vgg19_dgn_relu7gen_gd.py calls
    it (channel_wise_mean=False, channel_wise_std=False, shift='self', scale=mean(feat_std0), std_ddof=1) on one
    image's squeezed layer: (C, H, W) for a conv layer, (units,) for fc. The SD is the mean over channels of each
    channel's SD over the other axes, and over all units for a 1-D layer."""
    axes_along = None if ft.ndim == 1 else tuple(axis for axis in range(ft.ndim) if axis != channel_axis)
    feat_mean = np.mean(ft, keepdims=True)
    feat_std = np.mean(np.std(ft, axis=axes_along, ddof=std_ddof, keepdims=True), keepdims=True)
    return (ft - feat_mean) / feat_std * scale + feat_mean


def test_decoded_features_rescaled_as_bdpy_on_fc_layers_but_not_on_conv_maps():
    """recon divides each image's layer by its SD over all units (ddof 1). On fc layers that is bdpy's; on conv maps
    (recon's columns are C x H x W, as vgg_activations flattens them) bdpy divides by the mean of the channels'
    spatial SDs, smaller where channels differ in mean, so recon's rescaled maps vary less than the authors'. That is
    the rescaling with torchvision's VGG19 (the toy's and nsd's default, a deviation in the fidelity table); with the
    authors' VGG19 recon takes bdpy's formula, methods.rescale_as_bdpy (tests/test_authors_gan.py)."""
    rng = np.random.default_rng(0)
    n, channels, side = 4, 8, 5
    conv = rng.normal(0.0, 2.0, (1, channels, 1, 1)) + rng.normal(0.0, 0.5, (n, channels, side, side))
    fc = rng.normal(-1.0, 5.0, (n, 20))
    reference = {"16": 1.5, "fc6": 0.7}
    ours = methods.rescale_to_reference({"16": conv.reshape(n, -1), "fc6": fc}, reference)
    for k in range(n):
        np.testing.assert_allclose(ours["fc6"][k], _bdpy_normalize_feature(fc[k], reference["fc6"]),
                                   rtol=1e-5, atol=1e-5)
        over_all_units = (conv[k] - conv[k].mean()) / conv[k].std(ddof=1) * reference["16"] + conv[k].mean()
        np.testing.assert_allclose(ours["16"][k], over_all_units.reshape(-1), rtol=1e-5, atol=1e-5)
        authors = _bdpy_normalize_feature(conv[k], reference["16"]).reshape(-1)
        assert ours["16"][k].std() < 0.5 * authors.std()  # channels 2 apart in mean, 0.5 within: ~4x smaller


def test_dgn_code_starts_random_and_stays_in_relu7_range():
    generator = methods.DGNGenerator(methods.DeepGeneratorNetwork(), upper_bound=np.full(4096, 2.0, np.float32))
    start = generator.initial(3, torch.Generator().manual_seed(0))
    assert start.shape == (3, 4096) and 0.9 < float(start.std()) < 1.1  # N(0, 1), as the authors' start
    code = start * 5
    generator.after_step(code)
    assert float(code.min()) == 0.0 and float(code.max()) == 2.0
    nsd = get_profile("nsd")
    assert (nsd.generator_optimiser, nsd.generator_lr, nsd.generator_lr_end, nsd.generator_momentum,
            nsd.generator_decay, nsd.generator_steps, nsd.generator_contrast_pct) == ("sgd", 2.0, 1e-10, 0.9, 0.01,
                                                                                     200, 4.0)


def test_reference_sd_is_the_training_features_sd(tmp_path):
    """The reference +G rescales to: each layer's SD over the subject's training images (per unit, ddof 1),
    averaged over units, kept by the VGG19 decoder; the +G images run with it."""
    from recon.experiment import Experiment

    profile = get_profile("smoke", cache_dir=tmp_path)
    exp = Experiment(profile, "subj01", progress=False)
    reference = exp.vgg_reference_std()
    vgg = models.vgg19_features(profile)
    truth = features.vgg_features(vgg, exp.reader.images(exp.train_image_ids), profile.vgg_layers, profile.vgg_pool,
                                  profile.generator_size, progress=False)
    for layer, values in truth.items():
        assert reference[layer] == pytest.approx(values.std(0, ddof=1).mean(), rel=1e-2)  # float16 on disk
    images = exp.gan_images
    assert images.shape == (len(exp.test_ids), profile.image_size, profile.image_size, 3)
    # each stretched to the full range: bdpy's normalize_image multiplies by 255 / max and truncates, so its
    # brightest pixel can land on 254
    flat = images.reshape(len(images), -1)
    assert (flat.min(1) == 0).all() and flat.max(1).min() >= 254


# ---------------------------------------------------------------------------------------- evaluation
def _authors_cnn_preprocess():
    """img2feat_decoded.py's preprocess, for Inception-v3 and, on the same tensor, AlexNet."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize(299),
        transforms.CenterCrop(299),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])


def test_cnn_input_is_the_authors_within_a_grey_level(images):
    """Theirs resizes the uint8 PIL image with PIL's bilinear (torchvision's Resize on a PIL image) and rounds to
    uint8; recon resizes in float with torch's antialiased bilinear: at the originals' 425 px and the generations'
    512 px the two inputs agree within one grey level."""
    from types import SimpleNamespace

    from recon import evaluate

    nsd = get_profile("nsd", device="cpu")
    preprocess = _authors_cnn_preprocess()
    grey_level = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255  # one grey level, after Normalize
    for size in (425, 512):
        stimuli = features.pil_resize(images, size, "bicubic")
        ours = evaluate.EvaluationFeatures._cnn_input(SimpleNamespace(profile=nsd), stimuli)
        theirs = torch.stack([preprocess(Image.fromarray(image)) for image in stimuli])
        assert ours.shape == theirs.shape == (len(images), 3, 299, 299)
        assert float(((ours - theirs).abs() * grey_level).max()) <= 1.0 + 1e-3, size


@torch.no_grad()
def test_evaluation_features_are_the_authors_layers(toy, images):
    """img2feat_decoded.py: create_feature_extractor(inception_v3, {'flatten'}) and AlexNet's features.5,
    features.12 and classifier.5 on one input; CLIPProcessor(text='', images=PIL image) and CLIPModel(**inputs,
    output_hidden_states=True): image_embeds and vision_model_output.hidden_states. recon's EvaluationFeatures on the
    toy's networks gives the same features; CLIP(Late) is image_embeds before its L2 normalisation, which r
    does not see."""
    from torchvision.models.feature_extraction import create_feature_extractor

    from recon import evaluate

    extractor = evaluate.EvaluationFeatures(toy)
    ours = extractor(images, progress=False)
    x = extractor._cnn_input(images)  # the input itself: test_cnn_input_is_the_authors_within_a_grey_level
    inception = create_feature_extractor(models.torchvision_net(toy, "inception"), {"flatten": "flatten"})
    np.testing.assert_allclose(ours["Inception-v3"], inception(x)["flatten"].numpy(), rtol=1e-5, atol=1e-5)
    nodes = {"CNN(Early)": "features.5", "CNN(Middle)": "features.12", "CNN(Late)": "classifier.5"}
    alexnet = create_feature_extractor(models.torchvision_net(toy, "alexnet"), {n: n for n in nodes.values()})(x)
    for metric, node in nodes.items():
        np.testing.assert_allclose(ours[metric], alexnet[node].flatten(1).numpy(), rtol=1e-5, atol=1e-5)
    clip, processor = models.clip(toy)
    early, middle = toy.clip_eval_layers
    for k, image in enumerate(images):
        outputs = clip(**processor(text="", images=Image.fromarray(image), return_tensors="pt"),
                       output_hidden_states=True)
        hidden = outputs.vision_model_output.hidden_states
        np.testing.assert_allclose(ours["CLIP(Early)"][k], hidden[early].flatten().numpy(), atol=1e-5)
        np.testing.assert_allclose(ours["CLIP(Middle)"][k], hidden[middle].flatten().numpy(), atol=1e-5)
        late = ours["CLIP(Late)"][k]
        np.testing.assert_allclose(late / np.linalg.norm(late), outputs.image_embeds[0].numpy(), atol=1e-5)
    assert get_profile("nsd").clip_eval_layers == (6, 12)


def _authors_identification(feat_orgs, feat_gens) -> float:
    """identification.py: r of each original with each of an image's samples (np.corrcoef(...)[0, 1:]), then for
    every other image the mean r of the true pair strictly above the other's, the fraction of wins, the mean."""
    nimage = len(feat_orgs)
    rs_all = [[np.corrcoef(feat_orgs[row], feat_gens[col])[0, 1:] for col in range(nimage)] for row in range(nimage)]
    acc_all = []
    for imgid_org in range(nimage):
        r_true = rs_all[imgid_org][imgid_org]
        fakeimgs = [imgid for imgid in range(nimage) if imgid != imgid_org]
        acc = [r_true.mean() > rs_all[imgid_org][imgid_fake].mean() for imgid_fake in fakeimgs]
        acc_all.append(sum(acc) / len(acc))
    return float(np.mean(acc_all))


def test_identification_is_the_authors_loop():
    """Their loop and recon's two-way identification agree, ties included: two identical reconstructions tie,
    and a tie is a failure in both."""
    from recon import evaluate

    rng = np.random.default_rng(3)
    n, n_samples, d = 12, 5, 40
    originals = rng.normal(size=(n, d)).astype(np.float32)
    generated = (0.3 * originals[:, None] + rng.normal(size=(n, n_samples, d))).astype(np.float32)
    generated[7] = generated[3]
    theirs = _authors_identification(list(originals), [list(samples) for samples in generated])
    assert 0.5 < theirs < 1.0  # neither chance nor perfect, so the comparison can tell them apart
    assert evaluate.two_way_identification(originals, generated) == pytest.approx(theirs, abs=1e-12)
