"""What every run checks before it computes anything, in one place: the command line's ``run`` and ``compute``
and the notebooks' :func:`recon.book.start` all begin here, so a missing device or a missing file of the
authors' +G fails at once, naming it, and both plan the same GPU batches (and so read each other's cache)."""

from __future__ import annotations

from . import gpu_budget, models
from .config import Profile, check_device


def prepare(profile: Profile) -> Profile:
    """``profile`` as its run uses it: the device checked, the authors' +G files it names checked
    (:func:`recon.models.check_authors_files`), then fitted to the GPU (:func:`recon.gpu_budget.fit_to_device`)."""
    check_device(profile.device)
    models.check_authors_files(profile)
    return gpu_budget.fit_to_device(profile)
