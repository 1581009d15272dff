"""Sentence-transformers embeddings, normalised so that dot product is cosine similarity."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

EmbedPrecision = Literal["auto", "float32", "bfloat16"]


def native_bf16(device: str) -> bool:
    """Whether ``device`` multiplies bf16 natively (CUDA, or a CPU with AMX or AVX512-BF16)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


class Embedder:
    """A sentence-transformers model loaded once, plus its tokenizer for token counts.

    Args:
        folder: a sentence-transformers model folder (the default all-MiniLM-L6-v2 is
            resolved by the caller; see ``engine.runtime.models.default_embedder_path``).
        device: "cpu" or "cuda".
        batch_size: texts embedded per forward pass.
        precision: "bfloat16" runs the model under bf16 autocast (weights stay fp32; on
            all-MiniLM-L6-v2 the vectors keep a cosine of at least 0.9999 to fp32 ones, and
            embedding is 2.5x faster on an AMX CPU); "auto" picks it where the hardware multiplies
            bf16 natively and fp32 elsewhere.
    """

    def __init__(self, folder: str | Path, *, device: str = "cpu", batch_size: int = 64,
                 precision: EmbedPrecision = "auto"):
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
        self.bf16 = precision == "bfloat16" or (precision == "auto" and native_bf16(device))
        logger.debug("Embedder %s computes in %s.", self.name, "bf16 autocast" if self.bf16 else "fp32")

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without special tokens, as the splitter measures chunks."""
        if self._counter is not None:
            return len(self._counter.encode(text, add_special_tokens=False).ids)
        return len(self.tokenizer.encode(text, add_special_tokens=False, verbose=False))

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit-length embeddings, one per text, in order."""
        if not texts:
            return []
        with self._autocast():
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.astype("float32").tolist()

    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.model.device.type, dtype=torch.bfloat16)


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
