"""Procedural scenes for the toy NSD: a few shapes over simple backgrounds, with captions and depth.

Every scene is a small record of attributes (:class:`Scene`) rendered deterministically to an
RGB image and a depth map, and described by a caption grammar. The attributes are what the
simulated brain is tuned to; the images are what the models see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.10, 0.70, 0.20),
    "blue": (0.12, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "white": (0.95, 0.95, 0.95),
    "purple": (0.60, 0.15, 0.75),
}
#: background name -> (upper colour, lower colour, caption noun)
BACKGROUNDS = {
    "field": ((0.55, 0.75, 0.95), (0.35, 0.60, 0.25), "a grass field"),
    "beach": ((0.45, 0.70, 0.95), (0.90, 0.80, 0.55), "a beach"),
    "room": ((0.70, 0.68, 0.65), (0.45, 0.30, 0.20), "a room"),
    "night": ((0.05, 0.07, 0.25), (0.20, 0.20, 0.22), "a dark street"),
}
SIZES = ("small", "large")


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    size: str
    x: float  # horizontal centre, 0 (left) .. 1 (right)
    depth: float  # 0 (near) .. 1 (far)

    @property
    def position(self) -> str:
        return "left" if self.x < 0.38 else "right" if self.x > 0.62 else "middle"


@dataclass(frozen=True)
class Scene:
    background: str
    horizon: float  # fraction of the image height where the ground starts
    objects: tuple[SceneObject, ...]
    texture_seed: int


def sample_scene(rng: np.random.Generator) -> Scene:
    n_objects = 1 if rng.random() < 0.6 else 2
    objects = []
    for _ in range(n_objects):
        objects.append(
            SceneObject(
                shape=str(rng.choice(SHAPES)),
                color=str(rng.choice(list(COLORS))),
                size=str(rng.choice(SIZES)),
                x=float(rng.uniform(0.15, 0.85)),
                depth=float(rng.uniform(0.0, 1.0)),
            )
        )
    objects.sort(key=lambda o: -o.depth)  # far first, so near objects occlude
    return Scene(
        background=str(rng.choice(list(BACKGROUNDS))),
        horizon=float(rng.uniform(0.35, 0.6)),
        objects=tuple(objects),
        texture_seed=int(rng.integers(2**31)),
    )


def _object_geometry(obj: SceneObject, horizon: float) -> tuple[float, float, float]:
    """Centre (x, y) and radius in unit image coordinates; nearer objects are lower and larger."""
    scale = 1.25 - 0.65 * obj.depth
    radius = (0.16 if obj.size == "large" else 0.09) * scale
    ground_y = horizon + (1.0 - obj.depth) * (1.0 - horizon) * 0.85 + 0.05 * obj.depth
    return obj.x, min(ground_y, 0.98) - radius, radius


def _shape_mask(shape: str, xx, yy, cx, cy, r) -> np.ndarray:
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
    if shape == "square":
        return (np.abs(xx - cx) <= r * 0.85) & (np.abs(yy - cy) <= r * 0.85)
    if shape == "triangle":
        top, bottom = cy - r, cy + r
        half_width = (yy - top) / (2 * r) * r * 1.1
        return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half_width)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render(scene: Scene, size: int = 64, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """RGB image (size, size, 3) uint8 and depth map (size, size) float32 in [0, 1] (1 = far)."""
    n = size * supersample
    coords = (np.arange(n) + 0.5) / n
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    upper, lower, _ = BACKGROUNDS[scene.background]
    ground = yy >= scene.horizon
    image = np.where(ground[..., None], np.array(lower), np.array(upper)).astype(np.float32)
    # vertical shading gives the ground and sky a little structure
    shade = np.where(ground, 0.75 + 0.35 * (yy - scene.horizon), 1.05 - 0.2 * yy)
    image *= shade[..., None]
    texture = np.random.default_rng(scene.texture_seed).normal(0, 0.035, (size, size, 1))
    image += np.kron(texture, np.ones((supersample, supersample, 1)))
    depth = np.where(ground, 1.0 - (yy - scene.horizon) / max(1e-6, 1.0 - scene.horizon), 1.0)
    for obj in scene.objects:
        cx, cy, r = _object_geometry(obj, scene.horizon)
        mask = _shape_mask(obj.shape, xx, yy, cx, cy, r)
        highlight = 1.1 - 0.35 * np.clip((yy - (cy - r)) / (2 * r), 0, 1)
        image[mask] = np.array(COLORS[obj.color]) * highlight[mask][:, None]
        depth[mask] = obj.depth
    image = image.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    depth = depth.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), depth.astype(np.float32)


def _phrase(obj: SceneObject, rng: np.random.Generator, with_size: bool) -> str:
    words = ["a"]
    if with_size:
        words.append(obj.size)
    words += [obj.color, obj.shape]
    return " ".join(words)


def captions(scene: Scene, rng: np.random.Generator, n: int = 5) -> list[str]:
    """``n`` captions from a small grammar: object phrases, positions and the background."""
    place = BACKGROUNDS[scene.background][2]
    out = []
    for k in range(n):
        with_size = k % 2 == 0
        phrases = [_phrase(o, rng, with_size) for o in scene.objects[::-1]]  # nearest first
        if k % 3 == 1:
            phrases = [f"{p} {'in the middle' if o.position == 'middle' else 'on the ' + o.position}" for p, o in zip(phrases, scene.objects[::-1])]
        subject = " and ".join(phrases)
        preposition = rng.choice(["in", "in front of"]) if k % 3 == 2 else "in"
        out.append(f"{subject} {preposition} {place}")
    return out


def attributes(scene: Scene) -> dict:
    """Flat attributes of a scene for tables (nearest object first)."""
    near = scene.objects[-1]
    return {
        "background": scene.background,
        "horizon": scene.horizon,
        "n_objects": len(scene.objects),
        "shape": near.shape,
        "color": near.color,
        "size": near.size,
        "x": near.x,
        "depth": near.depth,
        "shapes": "|".join(o.shape for o in scene.objects),
        "colors": "|".join(o.color for o in scene.objects),
    }


VOCABULARY = sorted(
    {"a", "and", "on", "the", "in", "front", "of", "left", "right", "middle", "grass", "field", "beach",
     "room", "dark", "street"}
    | set(SHAPES)
    | set(COLORS)
    | set(SIZES)
)
