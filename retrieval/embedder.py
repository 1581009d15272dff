"""Sentence-transformers embeddings, normalised so that dot product is cosine similarity."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


class Embedder:
    """A sentence-transformers model loaded once, plus its tokenizer for token counts.

    Args:
        folder: a sentence-transformers model folder (the default all-MiniLM-L6-v2 is
            resolved by the caller; see ``app.runtime.models.default_embedder_path``).
        device: "cpu" or "cuda".
        batch_size: texts embedded per forward pass.
    """

    def __init__(self, folder: str | Path, *, device: str = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"Embedding model folder {self.folder} does not exist.")
        self.model = SentenceTransformer(str(self.folder), device=device, local_files_only=True)
        self.tokenizer = self.model.tokenizer
        self._counter = _untruncated_backend(self.tokenizer)
        self.batch_size = batch_size
        self.name = self.folder.name if self.folder.name != "model" else self.folder.parent.name
        # Text beyond this many tokens is truncated by the model: chunks must fit inside it.
        self.max_tokens = int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without special tokens, as the splitter measures chunks."""
        if self._counter is not None:
            return len(self._counter.encode(text, add_special_tokens=False).ids)
        return len(self.tokenizer.encode(text, add_special_tokens=False, verbose=False))

    def embed(self, texts: list[str], *, show_progress: bool = False) -> list[list[float]]:
        """Unit-length embeddings, one per text, in order."""
        if not texts:
            return []
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return vectors.tolist()


def _untruncated_backend(tokenizer):
    """A copy of the fast (Rust) tokenizer without truncation or padding, or None for a slow one.

    The model's own copy truncates to its window, which would make every long text count as
    "fits"; the copy also counts without the per-call Python overhead and length warnings.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    counter.no_padding()
    return counter
