"""Ingestion benchmark: our pipeline against a plain LangChain pipeline on the same PDF.

Each pipeline runs in its own process, so peak memory (ru_maxrss) is its own. Both use
the same sentence-transformers model, the same chunk size and overlap in that model's
tokens, and a fresh embedded Chroma. Ours then re-ingests the unchanged file.

Ours runs twice: as shipped (``embed_precision="auto"``: bf16 autocast where the CPU multiplies
bf16 natively) and in fp32 like the plain pipeline, so that each gain shows on its own.

    .venv/bin/python bench/ingest.py                  # ../shared/data/pdfs/thinkpython2.pdf
    .venv/bin/python bench/ingest.py --pdf my.pdf --rounds 2
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PDF = REPO_ROOT.parent / "shared" / "data" / "pdfs" / "thinkpython2.pdf"
logger = logging.getLogger("bench.ingest")


def peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its finished children (e.g. page readers), MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def run_ours(pdf: Path, chunk_tokens: int, chunk_overlap: int, embedder_folder: Path,
             precision: str = "auto") -> dict:
    """tutor's ingestion: clean-up, token chunks with page ranges, hashing, crash-safe commit."""
    from ingest.run import ingest_paths
    from retrieval import CourseStore, Embedder

    started = time.perf_counter()
    embedder = Embedder(embedder_folder, precision=precision)
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        store = CourseStore(path=folder)
        first = ingest_paths([pdf], "bench", store, embedder, chunk_tokens=chunk_tokens,
                             chunk_overlap=chunk_overlap)
        again = ingest_paths([pdf], "bench", store, embedder, chunk_tokens=chunk_tokens,
                             chunk_overlap=chunk_overlap)
        assert first.failed == [] and again.unchanged == 1 and store.count("bench") == first.chunks
    own, children = peak_rss_mib()
    name = "ours" if precision == "auto" else f"ours-{precision}"
    return {"pipeline": name, "load_s": loaded - started, "pages": first.pages, "chunks": first.chunks,
            "ingest_s": first.seconds, "reingest_s": again.seconds, "peak_rss_mib": own,
            "workers_peak_rss_mib": children}


def run_langchain(pdf: Path, chunk_tokens: int, chunk_overlap: int, embedder_folder: Path) -> dict:
    """The plain pipeline: pypdf pages, RecursiveCharacterTextSplitter, Chroma.from_documents."""
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from pypdf import PdfReader
    from sentence_transformers import SentenceTransformer

    class SentenceTransformerEmbeddings(Embeddings):
        """What langchain_huggingface.HuggingFaceEmbeddings does, over the same model."""

        def __init__(self, model: SentenceTransformer):
            self.model = model

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.model.encode(texts, batch_size=64, normalize_embeddings=True).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    started = time.perf_counter()
    model = SentenceTransformer(str(embedder_folder), device="cpu", local_files_only=True)
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        reader = PdfReader(pdf)
        pages = [Document(page.extract_text(), metadata={"source": pdf.name, "page": number})
                 for number, page in enumerate(reader.pages, start=1)]
        splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
            model.tokenizer, chunk_size=chunk_tokens, chunk_overlap=chunk_overlap)
        chunks = splitter.split_documents(pages)
        Chroma.from_documents(chunks, SentenceTransformerEmbeddings(model), persist_directory=folder,
                              collection_name="bench", collection_metadata={"hnsw:space": "cosine"})
        seconds = time.perf_counter() - loaded
    own, children = peak_rss_mib()
    return {"pipeline": "langchain", "load_s": loaded - started, "pages": len(pages), "chunks": len(chunks),
            "ingest_s": seconds, "reingest_s": None, "peak_rss_mib": own, "workers_peak_rss_mib": children}


PIPELINES = {"ours": run_ours, "ours-float32": functools.partial(run_ours, precision="float32"),
             "langchain": run_langchain}


def run_in_subprocess(name: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--pipeline", name, "--pdf", str(args.pdf),
               "--chunk-tokens", str(args.chunk_tokens), "--chunk-overlap", str(args.chunk_overlap),
               "--embedder", str(args.embedder)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"The {name} pipeline failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: list[dict]) -> None:
    header = f"{'pipeline':<13} {'pages':>6} {'chunks':>7} {'ingest s':>9} {'pages/s':>8} {'chunks/s':>9} " \
             f"{'re-ingest s':>12} {'peak MiB':>9} {'workers MiB':>12}"
    logger.info(header)
    for r in results:
        reingest = f"{r['reingest_s']:.2f}" if r["reingest_s"] is not None else "-"
        logger.info("%-13s %6d %7d %9.1f %8.2f %9.2f %12s %9.0f %12.0f", r["pipeline"], r["pages"],
                    r["chunks"], r["ingest_s"], r["pages"] / r["ingest_s"], r["chunks"] / r["ingest_s"],
                    reingest, r["peak_rss_mib"], r["workers_peak_rss_mib"])
    def best(name: str) -> float:
        return min(r["ingest_s"] for r in results if r["pipeline"] == name)

    rounds = sum(r["pipeline"] == "langchain" for r in results)
    for name in ("ours", "ours-float32"):
        logger.info("First ingest, best of %d: %s %.1f s, LangChain %.1f s: %s takes %.2fx the plain time "
                    "(target <= 1.00).", rounds, name, best(name), best("langchain"), name,
                    best(name) / best("langchain"))
    best_ours = best("ours")
    reingest = min(r["reingest_s"] for r in results if r["pipeline"] == "ours")
    logger.info("Unchanged re-ingest: %.2f s = %.1f%% of our first ingest (target < 5%%).", reingest,
                100 * reingest / best_ours)


def main() -> None:
    from engine.runtime.models import default_embedder_path

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdf", type=Path, default=DEFAULT_PDF, help="The PDF to ingest.")
    parser.add_argument("--chunk-tokens", type=int, default=128, help="Chunk size in embedder tokens.")
    parser.add_argument("--chunk-overlap", type=int, default=24, help="Chunk overlap in embedder tokens.")
    parser.add_argument("--embedder", type=Path, default=None, help="A sentence-transformers folder.")
    parser.add_argument("--rounds", type=int, default=1, help="Runs of each pipeline, alternating.")
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.embedder = args.embedder or default_embedder_path()
    if args.pipeline:  # the child process: run one pipeline, print its figures as JSON
        logging.basicConfig(level=logging.WARNING)
        result = PIPELINES[args.pipeline](args.pdf, args.chunk_tokens, args.chunk_overlap, args.embedder)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.pdf.exists():
        raise SystemExit(f"{args.pdf} does not exist: pass --pdf PATH.")
    logger.info("Benchmarking ingestion of %s (chunks of %d tokens, overlap %d, %d CPU cores).", args.pdf,
                args.chunk_tokens, args.chunk_overlap, os.cpu_count() or 1)
    results = []
    for _ in range(args.rounds):
        for name in ("langchain", "ours", "ours-float32"):
            results.append(run_in_subprocess(name, args))
            logger.info("  %s: %.1f s", name, results[-1]["ingest_s"])
    report(results)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()
