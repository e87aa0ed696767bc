"""The thread count a product is computed with: part of its arithmetic, so part of the profile.

A multithreaded reduction sums in an order that depends on how many threads share it, so one thread and two
give results that differ in the last bits (``tests/test_parallel.py`` measured it on the smoke profile: decoded
features in float16's last bit, +G images by up to 2 grey levels). On the CPU profiles every product is
therefore computed on ``Profile.compute_threads`` threads, whatever the machine: the same numbers on 2 cores
as on 64, and in a worker of ``recon compute`` as in a notebook. More cores go to more processes
(:mod:`recon.parallel`), not to more threads per product.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def fixed_threads(threads: int | None) -> Iterator[None]:
    """Inside the block, torch and the BLAS libraries use ``threads`` threads (None: leave them as they are).
    The previous torch setting is restored on exit."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"compute_threads must be at least 1 or None, got {threads}")
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        torch.set_num_threads(before)


def pin_threads(threads: int | None) -> None:
    """From now on in this process, torch and the BLAS libraries use ``threads`` threads (None: leave them).

    For a notebook's kernel: what a section computes outside the cache (the simulated dataset's probes, the zoo's
    checks) then runs like the cached products, on the profile's threads. With 2 BLAS threads on 2 cores, one
    busy core made those sections 11 times slower (a 3000 x 400 SVD: 12 s on 2 threads, 0.12 s on 1).
    """
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"compute_threads must be at least 1 or None, got {threads}")
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)  # applies at once and stays: it is not used as a context here
