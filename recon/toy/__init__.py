"""The stand-in world of the ``toy`` profile, kept apart from the science.

Nothing here is part of the method being reproduced. It exists so that the same code path can run
without NSD or the Hugging Face Hub: procedural scenes (:mod:`~recon.toy.scenes`), a simulated
brain written in NSD's official file layout (:mod:`~recon.toy.simulate`), a probe of what that brain
encodes (:mod:`~recon.toy.probe`), and the zoo of tiny models trained on the scenes
(:mod:`~recon.toy.zoo`). The ``nsd`` profile never imports it, except to verify zoo folders.
"""
