"""Domain exceptions of the training package; messages name the problem and the fix."""

from __future__ import annotations


class TrainingError(Exception):
    """Base class of the errors the training package raises on purpose."""


class DataFormatError(TrainingError, ValueError):
    """A data file or one of its rows does not have the expected shape."""


class RecipeError(TrainingError, ValueError):
    """A training recipe (YAML or flags) holds an invalid or contradictory value."""
