"""Sentence-transformers embeddings, normalised so that dot product is cosine similarity."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

EmbedPrecision = Literal["auto", "float32", "bfloat16"]
# Batches up to this size go through ONNX Runtime when it is on: a question takes 5 ms there against
# 13 to 15 ms in torch on 2 cores, while torch stays faster for ingest's large padded batches.
ONNX_MAX_BATCH = 8
ONNX_MIN_COSINE = 0.999  # an export whose probe vector strays further from torch's is not used


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
        onnx_dir: where to export the model to ONNX (once) and embed batches of up to
            ``ONNX_MAX_BATCH`` texts (questions) with ONNX Runtime; None embeds everything in torch.
            Only on the CPU; the vectors keep a cosine of at least 0.9999 to torch's.
        precision: "bfloat16" runs the model under bf16 autocast (weights stay fp32; on
            all-MiniLM-L6-v2 the vectors keep a cosine of at least 0.9999 to fp32 ones, and
            embedding is 2.5x faster on an AMX CPU); "auto" picks it where the hardware multiplies
            bf16 natively and fp32 elsewhere.
    """

    def __init__(self, folder: str | Path, *, device: str = "cpu", batch_size: int = 64,
                 precision: EmbedPrecision = "auto", onnx_dir: str | Path | None = None):
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
        self.onnx = None
        if onnx_dir is not None and device == "cpu":
            self.onnx = OnnxEncoder.exported(self, Path(onnx_dir))

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without special tokens, as the splitter measures chunks."""
        if self._counter is not None:
            return len(self._counter.encode(text, add_special_tokens=False).ids)
        return len(self.tokenizer.encode(text, add_special_tokens=False, verbose=False))

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit-length embeddings, one per text, in order."""
        if not texts:
            return []
        if self.onnx is not None and len(texts) <= ONNX_MAX_BATCH:
            return self.onnx.embed(texts).tolist()
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


class OnnxEncoder:
    """The embedder's whole sentence-transformers pipeline (transformer, pooling, normalisation) as one
    ONNX graph run by ONNX Runtime, fed by the model's own fast tokenizer.

    >>> encoder = OnnxEncoder.exported(embedder, data_dir / "models")    # doctest: +SKIP
    >>> encoder.embed(["What is inertia?"]).shape                       # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, model_file: Path, tokenizer, input_names: list[str], max_tokens: int):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer
        self.input_names = input_names
        tokenizer.enable_truncation(max_tokens)
        self.model_file = model_file

    @classmethod
    def exported(cls, embedder: Embedder, models_dir: Path) -> OnnxEncoder | None:
        """The encoder of ``embedder``'s model, exported into ``models_dir`` on first use; None (torch
        is used) for a model without a fast tokenizer or whose export does not reproduce its vectors."""
        tokenizer = _untruncated_backend(embedder.tokenizer)
        input_names = list(embedder.tokenizer.model_input_names)
        if tokenizer is None or not set(input_names) <= set(ENCODING_FIELDS):
            logger.info("Embedder %s has no fast tokenizer or has unusual inputs: questions embed in torch.",
                        embedder.name)
            return None
        pad = embedder.tokenizer
        tokenizer.enable_padding(pad_id=pad.pad_token_id, pad_token=pad.pad_token)
        model_file = models_dir / f"{embedder.name}-{_folder_digest(embedder.folder)}.onnx"
        if not model_file.exists():
            _export(embedder, input_names, model_file)
        encoder = cls(model_file, tokenizer, input_names, embedder.max_tokens)
        probe = "How does a lever multiply the force applied to it?"
        cosine = float(encoder.embed([probe])[0] @ embedder.model.encode(
            [probe], normalize_embeddings=True, show_progress_bar=False)[0])
        if cosine < ONNX_MIN_COSINE:
            logger.warning("The ONNX export %s gives vectors at cosine %.4f to the model's own: questions "
                           "embed in torch. Delete the file to export it again.", model_file, cosine)
            return None
        return encoder

    def embed(self, texts: list[str]):
        """Unit-length embeddings as a float32 array of shape (len(texts), dimensions)."""
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        inputs = {name: np.array([getattr(e, ENCODING_FIELDS[name]) for e in encodings], dtype=np.int64)
                  for name in self.input_names}
        vectors = self.session.run(None, inputs)[0].astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)  # as torch's normalize_embeddings


# The fast tokenizer's field for each model input name.
ENCODING_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


def _folder_digest(folder: Path) -> str:
    """A short digest of the folder's path and its files' sizes and times: a changed model exports again."""
    stats = sorted(f"{p.relative_to(folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                   for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256("\n".join([str(folder.resolve()), *stats]).encode()).hexdigest()[:10]


def _export(embedder: Embedder, input_names: list[str], model_file: Path) -> None:
    """Trace the sentence-transformers model into ``model_file``, written whole or not at all."""
    import torch

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(dict(zip(input_names, inputs, strict=True)))["sentence_embedding"]

    logger.info("Exporting embedder %s to ONNX at %s (once).", embedder.name, model_file)
    model_file.parent.mkdir(parents=True, exist_ok=True)
    example = embedder.tokenizer(["an example sentence"], return_tensors="pt")
    partial = model_file.with_name(f"{model_file.name}.{os.getpid()}.partial")
    axes = {name: {0: "batch", 1: "tokens"} for name in input_names} | {"embedding": {0: "batch"}}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation notes about the exporter itself
            torch.onnx.export(SentenceEmbedding(embedder.model.eval()),
                              tuple(example[n] for n in input_names), str(partial), input_names=input_names,
                              output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False)
        os.replace(partial, model_file)
    finally:
        partial.unlink(missing_ok=True)


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
