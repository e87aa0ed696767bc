"""Procedural scenes for the toy NSD: everyday objects over patterned backgrounds, with captions and depth.

Every scene is a small record of attributes (:class:`Scene`) rendered deterministically to an
RGB image and a depth map, and described by a caption grammar. The attributes are what the
simulated brain is tuned to; the images are what the models see.

The world: twelve object categories that differ in silhouette and parts (a car's wheels and
windows, a tree's trunk, a house's roof and door), eight colours, two sizes, one to three objects
placed at a depth (nearer objects sit lower, look larger and occlude farther ones), six
backgrounds with their own patterns (grass, waves, wallpaper and floorboards, a road's markings,
snow, floor tiles), and a light that comes from the left, the right or above, bright or dim. Each
scene gets five captions in the manner of COCO's: synonyms, counts, positions and relations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: category -> the nouns captions use for it (the first is the category's own name)
NOUNS = {
    "ball": ("ball", "sphere"),
    "box": ("box", "crate"),
    "tent": ("tent",),
    "star": ("star",),
    "ring": ("ring", "donut"),
    "house": ("house", "hut"),
    "tree": ("tree",),
    "car": ("car",),
    "mushroom": ("mushroom",),
    "moon": ("moon", "crescent"),
    "kite": ("kite",),
    "bottle": ("bottle", "vase"),
}
CATEGORIES = tuple(NOUNS)
PLURALS = {"box": "boxes"}  # every other noun takes an "s"
COLORS = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.10, 0.70, 0.20),
    "blue": (0.12, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "white": (0.95, 0.95, 0.95),
    "purple": (0.60, 0.15, 0.75),
    "orange": (0.95, 0.50, 0.05),
    "pink": (0.95, 0.55, 0.70),
}
#: background name -> (upper colour, lower colour, where captions put it); each has its own pattern in :func:`_background`
BACKGROUNDS = {
    "field": ((0.55, 0.75, 0.95), (0.35, 0.60, 0.25), "in a grass field"),
    "beach": ((0.50, 0.72, 0.95), (0.90, 0.80, 0.55), "on a beach"),
    "room": ((0.80, 0.72, 0.58), (0.50, 0.33, 0.20), "in a room"),
    "street": ((0.05, 0.07, 0.25), (0.25, 0.25, 0.27), "on a dark street"),
    "snow": ((0.72, 0.76, 0.82), (0.93, 0.95, 0.98), "in the snow"),
    "kitchen": ((0.90, 0.88, 0.70), (0.85, 0.85, 0.85), "in a kitchen"),
}
SIZES = ("small", "large")
LIGHTS = ("left", "right", "above")
BRIGHTNESS = ("bright", "dim")
OBJECT_COUNT_PROBABILITIES = (0.45, 0.35, 0.20)  # one, two, three objects
PART_COLOURS = {"dark": (0.12, 0.12, 0.14), "light": (0.92, 0.95, 0.98), "wood": (0.45, 0.28, 0.12)}


@dataclass(frozen=True)
class SceneObject:
    category: str
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
    objects: tuple[SceneObject, ...]  # far to near: later objects occlude earlier ones
    light: str
    brightness: str
    texture_seed: int


def sample_scene(rng: np.random.Generator) -> Scene:
    n_objects = 1 + int(rng.choice(len(OBJECT_COUNT_PROBABILITIES), p=OBJECT_COUNT_PROBABILITIES))
    objects = [
        SceneObject(
            category=str(rng.choice(CATEGORIES)),
            color=str(rng.choice(list(COLORS))),
            size=str(rng.choice(SIZES)),
            x=float(rng.uniform(0.18, 0.82)),
            depth=float(rng.uniform(0.0, 1.0)),
        )
        for _ in range(n_objects)
    ]
    objects.sort(key=lambda o: -o.depth)  # far first, so near objects occlude
    return Scene(
        background=str(rng.choice(list(BACKGROUNDS))),
        horizon=float(rng.uniform(0.35, 0.6)),
        objects=tuple(objects),
        light=str(rng.choice(LIGHTS)),
        brightness=str(rng.choice(BRIGHTNESS)),
        texture_seed=int(rng.integers(2**31)),
    )


def object_geometry(obj: SceneObject, horizon: float) -> tuple[float, float, float]:
    """Centre (x, y) and half-height in unit image coordinates; nearer objects are lower and larger."""
    scale = 1.15 - 0.5 * obj.depth
    radius = (0.22 if obj.size == "large" else 0.14) * scale
    ground_y = horizon + (1.0 - obj.depth) * (1.0 - horizon) * 0.85 + 0.05 * obj.depth
    return obj.x, min(ground_y, 0.98) - radius, radius


def _disc(xx, yy, cx, cy, r):
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2


def _rect(xx, yy, x0, x1, y0, y1):
    return (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)


def _triangle(xx, yy, cx, top, bottom, half_base):
    """An upright isosceles triangle: apex at (cx, top), base from cx - half_base to cx + half_base."""
    t = (yy - top) / max(bottom - top, 1e-6)
    return (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= t * half_base)


def object_masks(category: str, xx, yy, cx, cy, r) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(body mask, {part colour: mask}) of one object; parts are drawn over the body in :data:`PART_COLOURS`."""
    dx, dy = xx - cx, yy - cy
    if category == "ball":
        return _disc(xx, yy, cx, cy, r), {}
    if category == "box":
        body = _rect(xx, yy, cx - 0.85 * r, cx + 0.85 * r, cy - 0.85 * r, cy + 0.85 * r)
        lid = _rect(xx, yy, cx - 0.85 * r, cx + 0.85 * r, cy - 0.38 * r, cy - 0.3 * r)
        return body, {"dark": lid}
    if category == "tent":
        body = _triangle(xx, yy, cx, cy - r, cy + r, 1.05 * r)
        door = _triangle(xx, yy, cx, cy + 0.15 * r, cy + r, 0.3 * r)
        return body, {"dark": door}
    if category == "star":
        angle = np.arctan2(dy, dx) + np.pi / 2
        reach = r * (0.42 + 0.58 * ((1 + np.cos(5 * angle)) / 2) ** 2)
        return dx**2 + dy**2 <= reach**2, {}
    if category == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.5 * r) ** 2), {}
    if category == "house":
        walls = _rect(xx, yy, cx - 0.75 * r, cx + 0.75 * r, cy - 0.1 * r, cy + r)
        roof = _triangle(xx, yy, cx, cy - r, cy - 0.1 * r, 1.0 * r)
        door = _rect(xx, yy, cx - 0.18 * r, cx + 0.18 * r, cy + 0.4 * r, cy + r)
        window = _rect(xx, yy, cx + 0.3 * r, cx + 0.6 * r, cy + 0.1 * r, cy + 0.4 * r)
        return walls | roof, {"dark": door | roof & (yy > cy - 0.25 * r), "light": window}
    if category == "tree":
        crown = _disc(xx, yy, cx, cy - 0.3 * r, 0.68 * r)
        trunk = _rect(xx, yy, cx - 0.12 * r, cx + 0.12 * r, cy + 0.2 * r, cy + r)
        return crown | trunk, {"wood": trunk & ~crown}
    if category == "car":
        body = _rect(xx, yy, cx - r, cx + r, cy - 0.05 * r, cy + 0.55 * r)
        cabin = _rect(xx, yy, cx - 0.55 * r, cx + 0.45 * r, cy - 0.55 * r, cy - 0.05 * r)
        windows = _rect(xx, yy, cx - 0.45 * r, cx + 0.35 * r, cy - 0.45 * r, cy - 0.12 * r) & (np.abs(dx + 0.05 * r) > 0.05 * r)
        wheels = _disc(xx, yy, cx - 0.55 * r, cy + 0.6 * r, 0.3 * r) | _disc(xx, yy, cx + 0.55 * r, cy + 0.6 * r, 0.3 * r)
        return body | cabin | wheels, {"light": windows, "dark": wheels}
    if category == "mushroom":
        cap = _disc(xx, yy, cx, cy, 0.95 * r) & (yy <= cy)
        stem = _rect(xx, yy, cx - 0.25 * r, cx + 0.25 * r, cy, cy + r)
        spots = (_disc(xx, yy, cx - 0.4 * r, cy - 0.35 * r, 0.15 * r) | _disc(xx, yy, cx + 0.3 * r, cy - 0.55 * r, 0.15 * r))
        return cap | stem, {"light": stem | spots & cap}
    if category == "moon":
        return _disc(xx, yy, cx, cy, r) & ~_disc(xx, yy, cx + 0.45 * r, cy - 0.25 * r, 0.8 * r), {}
    if category == "kite":
        body = np.abs(dx) / (0.7 * r) + np.abs(dy) / r <= 1
        spars = body & ((np.abs(dx) < 0.05 * r) | (np.abs(dy + 0.1 * r) < 0.05 * r))
        return body, {"dark": spars}
    if category == "bottle":
        body = _rect(xx, yy, cx - 0.4 * r, cx + 0.4 * r, cy - 0.2 * r, cy + r) | _disc(xx, yy, cx, cy - 0.2 * r, 0.4 * r)
        neck = _rect(xx, yy, cx - 0.14 * r, cx + 0.14 * r, cy - r, cy - 0.2 * r)
        return body | neck, {"dark": _rect(xx, yy, cx - 0.16 * r, cx + 0.16 * r, cy - r, cy - 0.85 * r)}
    raise ValueError(f"unknown object category {category!r}; expected one of {CATEGORIES}")


def _background(scene: Scene, xx, yy, rng: np.random.Generator) -> np.ndarray:
    """The background's colours and pattern (before lighting), (n, n, 3) float."""
    upper, lower, _ = BACKGROUNDS[scene.background]
    h = scene.horizon
    ground = yy >= h
    below = np.clip((yy - h) / max(1e-6, 1 - h), 0, 1)  # 0 at the horizon .. 1 at the bottom
    image = np.where(ground[..., None], np.array(lower), np.array(upper)).astype(np.float32)
    image *= np.where(ground, 0.8 + 0.3 * below, 1.05 - 0.2 * yy)[..., None]
    # perspective: ground patterns get finer towards the horizon
    ground_depth = 1.0 / (0.15 + below)
    if scene.background == "field":
        blades = 0.5 + 0.5 * np.sin(xx * 90 * (1 + rng.random()) + 3 * np.sin(yy * 40))
        image += (ground * (blades - 0.5) * 0.12)[..., None]
    elif scene.background == "beach":
        sea = (yy >= h) & (yy < h + 0.08)
        image[sea] = (0.15, 0.40, 0.75)
        waves = (np.sin(ground_depth * 6 + xx * 4) > 0.85) & ground & ~sea
        image[waves] += 0.12
    elif scene.background == "room":
        stripes = (np.floor(xx / 0.08) % 2 == 0) & ~ground
        image[stripes] *= 0.85
        boards = (np.sin(ground_depth * 9) > 0.9) & ground
        image[boards] *= 0.6
    elif scene.background == "street":
        road_line = ground & (np.abs(xx - 0.5) < 0.02 + 0.03 * below) & (np.sin(ground_depth * 5) > 0)
        image[road_line] = (0.95, 0.90, 0.45)
        stars = (~ground) & (rng.random(xx.shape) < 0.006)
        image[stars] = (0.95, 0.95, 0.85)
    elif scene.background == "snow":
        flakes = rng.random(xx.shape) < 0.01
        image[flakes] = (1.0, 1.0, 1.0)
    elif scene.background == "kitchen":
        checks = ((np.floor((xx - 0.5) * ground_depth * 4 + 100) + np.floor(ground_depth * 2)) % 2 == 0) & ground
        image[checks] *= 0.35
    return image


def render(scene: Scene, size: int = 64, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """RGB image (size, size, 3) uint8 and depth map (size, size) float32 in [0, 1] (1 = far)."""
    n = size * supersample
    coords = (np.arange(n) + 0.5) / n
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    rng = np.random.default_rng(scene.texture_seed)
    image = _background(scene, xx, yy, rng)
    texture = rng.normal(0, 0.03, (size, size, 1))
    image += np.kron(texture, np.ones((supersample, supersample, 1)))
    ground = yy >= scene.horizon
    depth = np.where(ground, 1.0 - (yy - scene.horizon) / max(1e-6, 1.0 - scene.horizon), 1.0)
    lit = {"left": 1 - xx, "right": xx, "above": 1 - yy}[scene.light]  # 1 where the light comes from
    for obj in scene.objects:
        cx, cy, r = object_geometry(obj, scene.horizon)
        body, parts = object_masks(obj.category, xx, yy, cx, cy, r)
        # the side facing the light is brighter
        toward = {"left": cx - xx, "right": xx - cx, "above": cy - yy}[scene.light] / max(r, 1e-6)
        shade = np.clip(0.95 + 0.3 * toward, 0.55, 1.25)
        image[body] = np.array(COLORS[obj.color]) * shade[body][:, None]
        for part, mask in parts.items():
            image[mask] = np.array(PART_COLOURS[part]) * shade[mask][:, None]
        depth[body] = obj.depth
    image *= (0.8 + 0.35 * lit)[..., None] * (1.0 if scene.brightness == "bright" else 0.6)
    image = image.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    depth = depth.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), depth.astype(np.float32)


# ---------------------------------------------------------------------------- captions
NUMBERS = ("one", "two", "three")
TEMPLATES = ("{objects} {place}", "a photo of {objects} {place}", "there is {objects} {place}",
             "{objects} {light}", "{relation} {place}")
LIGHT_PHRASES = {"bright": "on a sunny day", "dim": "in dim light"}


def _noun(category: str, rng: np.random.Generator, plural: bool = False) -> str:
    word = str(rng.choice(NOUNS[category]))
    return (PLURALS.get(word, word + "s")) if plural else word


def _with_article(adjectives: list[str], noun: str) -> list[str]:
    return ["an" if adjectives[0][0] in "aeiou" else "a"] + adjectives + [noun]


def _object_phrase(obj: SceneObject, rng: np.random.Generator, with_size: bool, with_position: bool) -> str:
    adjectives = ([obj.size] if with_size else []) + [obj.color]
    words = _with_article(adjectives, _noun(obj.category, rng))
    if with_position:
        words += ["in the middle"] if obj.position == "middle" else ["on the", obj.position]
    return " ".join(words)


def _objects_phrase(scene: Scene, rng: np.random.Generator, with_size: bool, with_position: bool) -> str:
    """The objects, nearest first; identical ones are counted ("two red balls")."""
    near_first = scene.objects[::-1]
    kinds = [(o.category, o.color) for o in near_first]
    if len(near_first) > 1 and len(set(kinds)) == 1:
        category, color = kinds[0]
        return f"{NUMBERS[len(kinds) - 1]} {color} {_noun(category, rng, plural=True)}"
    phrases = [_object_phrase(o, rng, with_size, with_position) for o in near_first]
    return " and ".join(phrases)  # no commas: the toy tokenizers know words only


def _relation_phrase(scene: Scene, rng: np.random.Generator) -> str:
    """How the two nearest objects stand to each other, or where a single object is."""
    if len(scene.objects) == 1:
        return _object_phrase(scene.objects[0], rng, with_size=True, with_position=True)
    near, far = scene.objects[-1], scene.objects[-2]
    if abs(near.x - far.x) > 0.2:
        relation = "to the left of" if near.x < far.x else "to the right of"
    else:
        relation = str(rng.choice(["in front of", "next to"]))
    phrase = f"{_object_phrase(near, rng, False, False)} {relation} {_object_phrase(far, rng, False, False)}"
    if len(scene.objects) == 3:
        phrase = f"{NUMBERS[2]} objects with {phrase}"
    return phrase


def captions(scene: Scene, rng: np.random.Generator, n: int = 5) -> list[str]:
    """``n`` captions, one per template in turn: objects, counts, sizes, positions, relations, light and place."""
    place = BACKGROUNDS[scene.background][2]
    out = []
    for k in range(n):
        template = TEMPLATES[k % len(TEMPLATES)]
        # positions only where they keep the caption short (COCO's captions run to about a dozen words)
        objects = _objects_phrase(scene, rng, with_size=k % 2 == 0, with_position=k == 2 and len(scene.objects) < 3)
        if template == TEMPLATES[3]:
            out.append(template.format(objects=objects, light=LIGHT_PHRASES[scene.brightness]))
        elif template == TEMPLATES[4]:
            out.append(template.format(relation=_relation_phrase(scene, rng), place=place))
        else:
            out.append(template.format(objects=objects, place=place))
    return out


def object_captions(color: str, category: str) -> list[str]:
    """Every caption :func:`captions` can write for a single object of this colour and category, leaving out
    those that name where it stands.

    Zero-shot prompts in the world's own phrasing: a text tower trained on these captions has never read a bare
    "a red kite", which names no place (the reason CLIP's authors ensemble prompts such as "a photo of a {}").
    """
    phrases = [" ".join(_with_article(adjectives, noun)) for noun in NOUNS[category]
               for adjectives in ([color], *([size, color] for size in SIZES))]
    places = [place for _, _, place in BACKGROUNDS.values()]
    return ([template.format(objects=p, place=place) for p in phrases for template in TEMPLATES[:3] for place in places]
            + [TEMPLATES[3].format(objects=p, light=light) for p in phrases for light in LIGHT_PHRASES.values()])


def attributes(scene: Scene) -> dict:
    """Flat attributes of a scene for tables (nearest object first)."""
    near = scene.objects[-1]
    return {
        "background": scene.background,
        "horizon": scene.horizon,
        "light": scene.light,
        "brightness": scene.brightness,
        "n_objects": len(scene.objects),
        "category": near.category,
        "color": near.color,
        "size": near.size,
        "x": near.x,
        "depth": near.depth,
        "categories": "|".join(o.category for o in scene.objects),
        "colors": "|".join(o.color for o in scene.objects),
    }


def label_names() -> list[str]:
    """Names of :func:`label_vector`'s entries: every object category, colour and background."""
    return [f"category:{c}" for c in CATEGORIES] + [f"colour:{c}" for c in COLORS] + [f"background:{b}" for b in BACKGROUNDS]


def label_vector(scene: Scene) -> np.ndarray:
    """Multi-hot float32 labels of a scene (what is in it), for training the toy's feature networks."""
    names = label_names()
    out = np.zeros(len(names), dtype=np.float32)
    for obj in scene.objects:
        out[names.index(f"category:{obj.category}")] = 1
        out[names.index(f"colour:{obj.color}")] = 1
    out[names.index(f"background:{scene.background}")] = 1
    return out


def _caption_words() -> set[str]:
    words = {w for nouns in NOUNS.values() for noun in nouns for w in (noun, PLURALS.get(noun, noun + "s"))}
    words |= set(COLORS) | set(SIZES) | set(NUMBERS)
    for text in list(TEMPLATES) + [p for _, _, p in BACKGROUNDS.values()] + list(LIGHT_PHRASES.values()):
        words |= {w for w in text.replace("{", " ").replace("}", " ").split() if w.isalpha() and w.islower()}
    words |= {"a", "an", "and", "on", "the", "in", "middle", "left", "right", "to", "of", "front", "next", "objects", "with"}
    return words - {"place", "light", "relation"}  # template fields, not words


VOCABULARY = sorted(_caption_words())
