"""The builder's small exception tree.

Every error a user can cause is a ``BuilderError``; it is also a ``ValueError`` so callers that only
know the standard library still catch it. Pages catch ``BuilderError`` and show its message; anything
else is a bug and must surface in tests. Messages are written for an analyst: what is wrong, where
(column, layer number, parameter), the value received, and the fix.
"""

from __future__ import annotations


class BuilderError(ValueError):
    """A problem the user can fix; ``str(error)`` is a complete sentence for the UI or the CLI."""


class DataError(BuilderError):
    """The data cannot be used as it is (unreadable file, missing target, too few rows...)."""


class SpecError(BuilderError):
    """A model design (``ModelSpec``) or a setting is invalid."""


class ShapeError(SpecError):
    """A layer cannot accept the shape that reaches it.

    Attributes:
        layer_index: 0-based position of the layer in the design (messages say ``index + 1``).
        fix: a mechanical fix the editor can offer as one click, or ``None``.
    """

    def __init__(self, message: str, layer_index: int | None = None, fix: object | None = None):
        super().__init__(message)
        self.layer_index = layer_index
        self.fix = fix


class TrainingError(BuilderError):
    """Training could not start or could not go on (diverged, out of memory, bad settings)."""


class BundleError(BuilderError):
    """An export bundle cannot be written or read (corrupt, unsafe, wrong version)."""


class ReadOnlyError(BuilderError):
    """A read-only (shared) view of a workspace was asked to change it."""
