"""The authors' +G networks and files, as the Kamitani lab's brain-decoding cookbook distributes them.

Takagi & Nishimoto's recon_icnn_image_vgg19_dgn_relu7gen_gd.py loads five files from one ``models/pytorch``
folder (:data:`FILES`): the Caffe VGG_ILSVRC_19_layers and the Dosovitskiy & Brox relu7 generator converted to
PyTorch state dicts of bdpy's ``VGG19`` and ``AlexNetGenerator``, ImageNet's mean image, the channel-wise SD of the
VGG19's features over 10,000 ImageNet images (``feat_std0``) and the generator code's upper bound (3 x the range of
CaffeNet's fc7). This module writes both architectures out as ``torch.nn.Module`` s whose state-dict keys and shapes
are bdpy's (so ``load_state_dict`` reads the files as distributed) and reads each file, failing at once, naming
the file, when one is missing or not what it should be. Nothing here is downloaded: the cookbook's files are
fetched by hand and their folder named by the profile's ``authors_gan_dir`` (``RECON_AUTHORS_GAN_DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ReconError

#: the environment variable naming the folder that holds the cookbook's files (the authors' ``models/pytorch``)
ENV_VAR = "RECON_AUTHORS_GAN_DIR"

VGG19_FOLDER = "VGG_ILSVRC_19_layers"
GENERATOR_FOLDER = "bvlc_reference_caffenet_generator_ILSVRC2012_Training"

#: each file, relative to the folder, and what it is (for the messages)
FILES = {
    "vgg19_weights": (f"{VGG19_FOLDER}/VGG_ILSVRC_19_layers.pt", "the Caffe VGG19's weights (bdpy VGG19 state dict)"),
    "image_mean": (f"{VGG19_FOLDER}/ilsvrc_2012_mean.npy", "ImageNet's mean image (3 x H x W, BGR)"),
    "feature_std": (f"{VGG19_FOLDER}/estimated_cnn_feat_std_VGG_ILSVRC_19_layers_ImgSize_224x224_chwise_dof1.mat",
                    "the VGG19 features' channel-wise SD over ImageNet images (feat_std0)"),
    "generator_weights": (f"{GENERATOR_FOLDER}/generator_relu7.pt",
                          "the relu7 deep generator network's weights (bdpy AlexNetGenerator state dict)"),
    "code_upper_bound": (f"{GENERATOR_FOLDER}/act_range/3x/fc7.txt",
                         "the generator code's upper bound (3 x CaffeNet fc7's activation range, 4096 values)"),
}

#: the side of the generator's image and of VGG19's input; the authors feed VGG19 the generator's centre crop
GENERATOR_SIDE = 256
VGG19_SIDE = 224
CODE_SIZE = 4096

#: how the VGG19's input channels are ordered. "authors": the stimulus in RGB order minus ilsvrc_2012_mean's
#: channel means in their BGR order (R - 104, G - 117, B - 123), as make_vgg19bdpy.py computes the decoding
#: targets; the generator's output then goes to VGG19 as it comes, channel k read as the image's channel k, which
#: the authors' final [2, 1, 0] re-save also keeps. "caffe": what the Caffe network was trained on, BGR minus the
#: BGR means (and the generator's output read as BGR, as it was trained).
CHANNEL_ORDERS = ("authors", "caffe")


class AuthorsFileError(ReconError, OSError):
    """One of the cookbook's files is missing or is not what the authors' script reads."""


def _problem(path: Path, what: str, problem: str) -> AuthorsFileError:
    return AuthorsFileError(
        f"{path} ({what}) {problem}: the Kamitani lab's brain-decoding cookbook distributes it (its models/pytorch "
        f"folder, as the authors' recon_icnn_image_vgg19_dgn_relu7gen_gd.py reads it); set {ENV_VAR} or the "
        f"profile's authors_gan_dir to that folder, or use generator='pixels' and models.vgg19 as torchvision's")


@dataclass(frozen=True)
class AuthorsFiles:
    """The paths of the five files under one cookbook folder (the authors' ``models/pytorch``)."""

    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / FILES[name][0]

    def existing(self, name: str) -> Path:
        """The file's path, or :class:`AuthorsFileError` naming it if it is not there."""
        path = self.path(name)
        if not path.is_file():
            raise _problem(path, FILES[name][1], "is missing")
        return path


def files_in(folder: Path | str | None) -> AuthorsFiles:
    """The cookbook's files under ``folder``; None (no folder named) fails at once, naming the first file."""
    if folder is None:
        path, what = FILES["vgg19_weights"]
        raise AuthorsFileError(f"no folder holds the authors' +G files (first needed: {path}, {what}): the Kamitani "
                               f"lab's brain-decoding cookbook distributes them; set {ENV_VAR} or the profile's "
                               f"authors_gan_dir to their models/pytorch folder")
    return AuthorsFiles(Path(folder).expanduser())


# ------------------------------------------------------------------ networks
#: VGG19's five blocks of 3 x 3 convolutions: (width, convolutions), each block ending in a 2 x 2 max-pool
VGG19_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def _bdpy_layer_names() -> dict[str, str]:
    """recon's VGG19 layer names (``features`` indices of each convolution's output; fc6-fc8) -> bdpy's (its
    layer_map('vgg19'): conv1_2 is features[2]), by which feat_std0 is keyed."""
    names, index = {}, 0
    for block, (_, n_convs) in enumerate(VGG19_BLOCKS, start=1):
        for conv in range(1, n_convs + 1):
            names[str(index)] = f"conv{block}_{conv}"
            index += 2  # the convolution and its ReLU
        index += 1  # the block's max-pool
    return names | {name: name for name in ("fc6", "fc7", "fc8")}


BDPY_LAYER_NAMES = _bdpy_layer_names()


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1)


class CaffeVGG19(nn.Module):
    """bdpy's ``VGG19``: the Caffe VGG_ILSVRC_19_layers as torchvision lays VGG19 out (``features`` indices 0-36,
    ``avgpool``, ``classifier`` 0-6), so bdpy's layer map (conv1_2 = features[2], fc6 = classifier[0]...) and
    recon's VGG19 layer names both apply. ReLUs are not in place, as bdpy's.

    It carries its input convention, which :func:`recon.features.vgg_activations` applies to an RGB image in
    [0, 1]: ``preprocess`` (x 255, the channel order of ``channel_order`` (:data:`CHANNEL_ORDERS`), minus
    ``mean_bgr``, the mean image's channel means in BGR order), and ``resize_with = "pil_bilinear"``: stimuli go
    to 224 px by PIL's bilinear filter, as bdpy's ImageDatasetNSD (``resample=2``) resizes them."""

    resize_with = "pil_bilinear"

    def __init__(self, mean_bgr=(104.0, 117.0, 123.0), channel_order: str = "authors"):
        super().__init__()
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {', '.join(CHANNEL_ORDERS)}, got {channel_order!r}")
        self.channel_order = channel_order
        # a plain attribute, not a buffer: the distributed state dict has no such key
        self.mean_bgr = torch.as_tensor(np.asarray(mean_bgr, dtype=np.float32))
        layers: list[nn.Module] = []
        c_in = 3
        for width, n_convs in VGG19_BLOCKS:
            for _ in range(n_convs):
                layers += [_conv(c_in, width), nn.ReLU(inplace=False)]
                c_in = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=False), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(inplace=False), nn.Dropout(0.5),
            nn.Linear(4096, 1000),
        )

    def preprocess(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (n, 3, H, W) -> the network's input in Caffe's 0-255 units, mean subtracted."""
        mean = self.mean_bgr.to(rgb.device, rgb.dtype).view(1, 3, 1, 1)
        pixels = 255.0 * rgb
        if self.channel_order == "caffe":
            pixels = pixels.flip(1)
        return pixels - mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The class scores of an input already in the network's convention (bdpy's forward)."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class AlexNetGenerator(nn.Module):
    """bdpy's ``AlexNetGenerator``: Dosovitskiy & Brox's generator inverting CaffeNet relu7, a 4096-d code ->
    defc7, defc6, defc5 (leaky ReLU 0.3) -> 256 x 4 x 4 -> transposed convolutions -> 3 x 256 x 256, in Caffe's
    units (0-255 minus the mean, BGR as it was trained).

    bdpy registers every layer twice, by name and inside ``defc`` / ``deconv`` sequences, so its state dict holds
    each weight under both keys (``defc7.weight`` and ``defc.0.weight``...); this module does the same, so the
    distributed file loads strictly. conv5_1, conv4_1 and conv3_1 are transposed convolutions there, as here."""

    def __init__(self, input_size: int = CODE_SIZE, n_out_channel: int = 3):
        super().__init__()
        leaky = lambda: nn.LeakyReLU(0.3, inplace=False)  # noqa: E731 (bdpy's are in place; the values are the same)
        up = lambda c_in, c_out: nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)  # noqa: E731
        same = lambda c_in, c_out: nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=1, padding=1)  # noqa: E731
        self.defc7, self.relu_defc7 = nn.Linear(input_size, 4096), leaky()
        self.defc6, self.relu_defc6 = nn.Linear(4096, 4096), leaky()
        self.defc5, self.relu_defc5 = nn.Linear(4096, 4096), leaky()
        self.deconv5, self.relu_deconv5 = up(256, 256), leaky()
        self.conv5_1, self.relu_conv5_1 = same(256, 512), leaky()
        self.deconv4, self.relu_deconv4 = up(512, 256), leaky()
        self.conv4_1, self.relu_conv4_1 = same(256, 256), leaky()
        self.deconv3, self.relu_deconv3 = up(256, 128), leaky()
        self.conv3_1, self.relu_conv3_1 = same(128, 128), leaky()
        self.deconv2, self.relu_deconv2 = up(128, 64), leaky()
        self.deconv1, self.relu_deconv1 = up(64, 32), leaky()
        self.deconv0 = up(32, n_out_channel)
        self.defc = nn.Sequential(self.defc7, self.relu_defc7, self.defc6, self.relu_defc6, self.defc5,
                                  self.relu_defc5)
        self.deconv = nn.Sequential(
            self.deconv5, self.relu_deconv5, self.conv5_1, self.relu_conv5_1, self.deconv4, self.relu_deconv4,
            self.conv4_1, self.relu_conv4_1, self.deconv3, self.relu_deconv3, self.conv3_1, self.relu_conv3_1,
            self.deconv2, self.relu_deconv2, self.deconv1, self.relu_deconv1, self.deconv0,
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.defc(code).view(-1, 256, 4, 4))


def centre_crop(image: torch.Tensor, side: int = VGG19_SIDE) -> torch.Tensor:
    """The centre ``side`` x ``side`` of (n, c, H, W), its top-left corner at ((H - side) // 2, (W - side) // 2),
    as bdpy's icnn crops the generator's output (``crop_generator_output``)."""
    top, left = (image.shape[-2] - side) // 2, (image.shape[-1] - side) // 2
    return image[..., top : top + side, left : left + side]


# --------------------------------------------------------------------- files
def _state_dict(path: Path, what: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged or foreign file: pickle, zip and torch errors alike
        raise _problem(path, what, f"is unreadable ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict):
        raise _problem(path, what, f"is not a state dict (it holds a {type(state).__name__})")
    return state


def _load_into(network: nn.Module, path: Path, what: str) -> nn.Module:
    try:
        network.load_state_dict(_state_dict(path, what))
    except RuntimeError as err:  # missing, unexpected or misshapen keys
        raise _problem(path, what, f"has keys or shapes unlike bdpy's {type(network).__name__} ({str(err)[:300]})") from err
    return network.eval().requires_grad_(False)


def load_vgg19(files: AuthorsFiles, channel_order: str = "authors") -> CaffeVGG19:
    """The authors' VGG19 on the CPU, frozen, with the mean of their ilsvrc_2012_mean.npy as its input's mean."""
    weights = files.existing("vgg19_weights")
    return _load_into(CaffeVGG19(image_mean_bgr(files), channel_order), weights, FILES["vgg19_weights"][1])


def load_generator(files: AuthorsFiles) -> AlexNetGenerator:
    """The authors' relu7 generator on the CPU, frozen."""
    return _load_into(AlexNetGenerator(), files.existing("generator_weights"), FILES["generator_weights"][1])


def image_mean_bgr(files: AuthorsFiles) -> np.ndarray:
    """ilsvrc_2012_mean.npy's mean of each channel (3,), in its BGR order (~104, 117, 123), as the authors
    reduce the mean image to three numbers."""
    path = files.existing("image_mean")
    try:
        mean = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise _problem(path, FILES["image_mean"][1], f"is unreadable ({err})") from err
    if mean.ndim != 3 or mean.shape[0] != 3 or not np.all(np.isfinite(mean)):
        raise _problem(path, FILES["image_mean"][1], f"is not a finite 3 x H x W array (it is {mean.dtype} "
                                                     f"{mean.shape})")
    return mean.reshape(3, -1).mean(axis=1).astype(np.float32)


def feature_std(files: AuthorsFiles, layers) -> dict[str, float]:
    """Each of the authors' layer names (conv1_2, fc6...) -> the mean over channels of feat_std0[layer], the
    scale bdpy's normalize_feature rescales that decoded layer to (``scale=np.mean(feat_std0[layer])``)."""
    import scipy.io

    path = files.existing("feature_std")
    what = FILES["feature_std"][1]
    try:
        table = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several kinds for a file that is not a .mat
        raise _problem(path, what, f"is unreadable ({type(err).__name__}: {err})") from err
    missing = [layer for layer in layers if layer not in table]
    if missing:
        present = sorted(k for k in table if not k.startswith("__"))
        raise _problem(path, what, f"has no layer(s) {missing} (it has {present})")
    out = {}
    for layer in layers:
        values = np.asarray(table[layer], dtype=np.float64)
        if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
            raise _problem(path, what, f"holds no finite non-negative SDs for layer {layer!r}")
        out[layer] = float(values.mean())
    return out


def code_upper_bound(files: AuthorsFiles) -> np.ndarray:
    """act_range/3x/fc7.txt: the 4096 upper bounds of the generator code (float32), read as the authors' script
    reads it (space-delimited); the lower bound is 0, theirs too."""
    path = files.existing("code_upper_bound")
    what = FILES["code_upper_bound"][1]
    try:
        values = np.loadtxt(path, delimiter=" ", usecols=np.arange(CODE_SIZE), unpack=True)
    except (OSError, ValueError, IndexError) as err:
        raise _problem(path, what, f"is unreadable as {CODE_SIZE} space-delimited numbers ({err})") from err
    if values.size != CODE_SIZE or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise _problem(path, what, f"holds {values.size} values, not {CODE_SIZE} finite non-negative bounds")
    return values.reshape(CODE_SIZE).astype(np.float32)
