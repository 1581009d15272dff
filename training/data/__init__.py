"""Data readers: preference pairs and SFT examples from the formats the tutor trains on."""

from training.data.readers import READERS, detect_format, read_dataset
from training.data.schema import BadRow, PreferencePair, ReadResult, SFTExample

__all__ = ["READERS", "BadRow", "PreferencePair", "ReadResult", "SFTExample", "detect_format", "read_dataset"]
