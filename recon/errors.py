"""The one base class of every error that ``recon`` raises on purpose.

Each subclass also derives from the built-in error it refines (``ConfigError`` is a ``ValueError``,
``NSDFileError`` an ``OSError``...), so callers that catch those keep working. ``recon``'s command line
prints a :class:`ReconError` as one line and exits 1; the notebooks show its first line.
"""


class ReconError(Exception):
    """A problem ``recon`` found and named: bad input, a missing or damaged file, a cold cache."""
