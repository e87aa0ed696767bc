"""The toy model zoo: tiny models of the real classes, saved with ``save_pretrained``.

``python -m recon.toy.zoo build`` writes every model folder under ``zoo/`` (or ``$RECON_ZOO``) and a
``manifest.json`` with each folder's recipe, seed, training steps and time, and the sha256 and
size of every file. The manifest is the model loader's contract (:mod:`recon.manifest`), which the zoo
writes; its names are kept here for the zoo's own modules.
"""

from __future__ import annotations

from ...manifest import MANIFEST, REBUILD_COMMAND, file_table, sha256, verify
from ...manifest import ManifestError as ZooError
from ...manifest import read as read_manifest

__all__ = ["MANIFEST", "REBUILD_COMMAND", "ZooError", "file_table", "read_manifest", "sha256", "verify"]
