"""A fake embedder with the real one's interface: fast, deterministic, no model to load."""

from __future__ import annotations

import hashlib
import math
import re

WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Bag-of-words vectors hashed into ``dimensions`` buckets; one token per word or punctuation mark.

    Texts sharing words get similar vectors, which is enough to test search order without a model.
    """

    def __init__(self, dimensions: int = 64, max_tokens: int = 256):
        self.dimensions = dimensions
        self.max_tokens = max_tokens
        self.name = "hashing-fake"
        self.embedded: list[str] = []  # every text embedded, to check what a run recomputed

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text))

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for word in WORD.findall(text.lower()):
            bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
            vector[bucket % self.dimensions] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return [self._vector(text) for text in texts]
