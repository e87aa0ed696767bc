"""Every profile by name: the composition root, where the science (``nsd``, :mod:`recon.config`) and the stand-in
world (``toy`` and ``smoke``, :mod:`recon.toy.profiles`) meet. The notebooks, the command line and the workflow
open a profile here; the science below never imports the toy world.
"""

from __future__ import annotations

from pathlib import Path

from .config import ConfigError, Profile, check_parameters, nsd
from .toy.profiles import smoke, toy

PROFILES = {"toy": toy, "nsd": nsd, "smoke": smoke}


def get_profile(name: str = "toy", **overrides) -> Profile:
    """Build a profile by name; keyword arguments override its fields (papermill parameters)."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; valid profiles are {', '.join(PROFILES)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key in ("cache_dir", "nsd_root", "overlap_list", "results_dir", "authors_gan_dir"):
        if key in overrides:
            overrides[key] = Path(overrides[key])
    profile = PROFILES[name](**overrides)
    check_parameters(profile)
    return profile
