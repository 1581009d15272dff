"""The lexical (BM25) index of a course, derived from exactly the live chunks of the store.

Chroma's local mode has no sparse index, so the tutor keeps one per course with ``bm25s``.
It is never the source of truth: each index is labelled with the fingerprint of the manifest
it was built from (the store writes a fresh generation into the manifest on every commit), and
a reader whose store shows another fingerprint rebuilds it from the store's live chunks. An
index on disk sits in a folder named by that fingerprint, written under a temporary name and
renamed into place, so a process killed at any moment leaves either a whole index or none.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retrieval.store import Chunk

logger = logging.getLogger(__name__)

CHUNKS_FILE = "chunks.jsonl"
META_FILE = "meta.json"


@dataclass(frozen=True)
class LexicalSettings:
    """How chunk text becomes BM25 terms.

    Args:
        stemmer: a Snowball language for PyStemmer ("english"), or None to keep words whole.
        stopwords: a bm25s stop-word list ("en"), or None to keep every word.
        k1, b: the BM25 saturation and length-normalisation parameters (Lucene's variant).
    """

    stemmer: str | None = "english"
    stopwords: str | None = "en"
    k1: float = 1.5
    b: float = 0.75

    def key(self) -> str:
        return f"{self.stemmer}-{self.stopwords}-{self.k1}-{self.b}"


# Words that frame a question rather than say what it is about: "What does integer mean?" is about
# "integer". Left in, they match every chunk that asks or explains something, which outweighs a lone term.
QUESTION_WORDS = frozenset("what which who whom whose when where why how do does did can could would should "
                           "will shall may might must mean means meant".split())

_THREAD = threading.local()


def _stemmer(language: str):
    """One PyStemmer per thread and language: making one costs more than stemming a question, and a
    stemmer's word cache must not be shared between threads."""
    stemmers = _THREAD.__dict__.setdefault("stemmers", {})
    if language not in stemmers:
        import Stemmer

        stemmers[language] = Stemmer.Stemmer(language)
    return stemmers[language]


def tokenize(texts: list[str], settings: LexicalSettings) -> list[list[str]]:
    """Lower-cased words of each text, stop words removed and stemmed as ``settings`` say."""
    import bm25s

    stemmer = _stemmer(settings.stemmer) if settings.stemmer else None
    return bm25s.tokenize(texts, stopwords=settings.stopwords, stemmer=stemmer, return_ids=False,
                          show_progress=False)


@functools.cache
def question_terms(settings: LexicalSettings) -> frozenset[str]:
    """QUESTION_WORDS as terms of an index with ``settings`` (stemmed as its chunks are)."""
    return frozenset(word for words in tokenize(sorted(QUESTION_WORDS), settings) for word in words)


@dataclass
class LexicalIndex:
    """One course's BM25 index and the chunks it ranks.

    ``fingerprint`` names the store state it was built from; ``build_s`` is how long building took.
    """

    fingerprint: str
    settings: LexicalSettings
    chunks: list[Chunk]
    bm25: object | None  # a bm25s.BM25, None when the course has no chunks
    build_s: float = 0.0

    @classmethod
    def build(cls, chunks: list[Chunk], fingerprint: str, settings: LexicalSettings) -> LexicalIndex:
        import bm25s

        started = time.perf_counter()
        bm25 = None
        if chunks:
            bm25 = bm25s.BM25(k1=settings.k1, b=settings.b)
            bm25.index(tokenize([c.text for c in chunks], settings), show_progress=False)
        return cls(fingerprint, settings, chunks, bm25, time.perf_counter() - started)

    def search(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        """The ``k`` best chunks for ``query`` with their BM25 scores; chunks sharing no term are left out."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: list[str], k: int) -> list[list[tuple[Chunk, float]]]:
        """``search`` of each query, in order, with one tokenisation and one bm25s call for all of them."""
        if self.bm25 is None or k < 1 or not queries:
            return [[] for _ in queries]
        vocabulary = self.bm25.vocab_dict
        framing = question_terms(self.settings)
        terms = [[word for word in words if word not in framing]
                 for words in tokenize(queries, self.settings)]
        # bm25s cannot score a query none of whose terms it knows; such a query finds nothing.
        known = [n for n, words in enumerate(terms) if any(word in vocabulary for word in words)]
        results: list[list[tuple[Chunk, float]]] = [[] for _ in queries]
        if not known:
            return results
        # n_threads=0: in the calling thread (1 would start a thread pool per call).
        documents, scores = self.bm25.retrieve([terms[n] for n in known], k=min(k, len(self.chunks)),
                                               show_progress=False, n_threads=0)
        for n, row_documents, row_scores in zip(known, documents, scores, strict=True):
            results[n] = [(self.chunks[int(doc)], float(score))
                          for doc, score in zip(row_documents, row_scores, strict=True) if score > 0]
        return results

    @property
    def size_bytes(self) -> int:
        """Memory held by the term matrix, the vocabulary and the chunk texts."""
        text = sum(len(c.text.encode()) for c in self.chunks)
        if self.bm25 is None:
            return text
        matrix = sum(getattr(array, "nbytes", 0) for array in self.bm25.scores.values())
        vocab = sum(len(term) + 8 for term in self.bm25.vocab_dict)
        return text + matrix + vocab

    def save(self, folder: Path) -> None:
        """Write the index into ``folder`` (which must not exist yet)."""
        folder.mkdir(parents=True)
        with (folder / CHUNKS_FILE).open("w") as handle:
            for chunk in self.chunks:
                handle.write(json.dumps(asdict(chunk)) + "\n")
        if self.bm25 is not None:
            self.bm25.save(str(folder), show_progress=False)
        meta = {"fingerprint": self.fingerprint, "settings": asdict(self.settings), "build_s": self.build_s,
                "chunks": len(self.chunks)}
        (folder / META_FILE).write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import bm25s

        from retrieval.store import Chunk

        meta = json.loads((folder / META_FILE).read_text())
        with (folder / CHUNKS_FILE).open() as handle:
            chunks = [Chunk(**json.loads(line)) for line in handle]
        bm25 = bm25s.BM25.load(str(folder), show_progress=False) if chunks else None
        return cls(meta["fingerprint"], LexicalSettings(**meta["settings"]), chunks, bm25, meta["build_s"])


@dataclass
class LexicalIndexes:
    """The lexical indexes of one store's courses: kept in memory, and on disk when ``folder`` is set.

    An embedded store keeps them in a folder beside its Chroma files, so a restart loads instead of
    rebuilding; a store on a Chroma server has no local folder, so each process builds its own.
    """

    folder: Path | None
    settings: LexicalSettings = field(default_factory=LexicalSettings)
    _loaded: dict[str, LexicalIndex] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _key(self, fingerprint: str) -> str:
        return f"{fingerprint}-{self.settings.key()}"

    def cached(self, course: str, fingerprint: str) -> LexicalIndex | None:
        """The index of ``course`` already in memory for the store state ``fingerprint``, if any."""
        index = self._loaded.get(course)
        return index if index is not None and index.fingerprint == self._key(fingerprint) else None

    def get(self, course: str, fingerprint: str, live_chunks: Callable[[], list[Chunk]]) -> LexicalIndex:
        """The index of ``course`` for the store state ``fingerprint``: cached, loaded or built."""
        key = self._key(fingerprint)
        with self._lock:
            index = self._loaded.get(course)
            if index is None or index.fingerprint != key:
                index = self._load(course, key) or self._build(course, key, live_chunks)
                self._loaded[course] = index
        return index

    def drop(self, course: str) -> None:
        """Forget ``course``'s index, in memory and on disk."""
        with self._lock:
            self._loaded.pop(course, None)
            if self.folder is not None:
                shutil.rmtree(self.folder / course, ignore_errors=True)

    def _load(self, course: str, key: str) -> LexicalIndex | None:
        if self.folder is None or not (self.folder / course / key).is_dir():
            return None
        try:
            return LexicalIndex.load(self.folder / course / key)
        except (OSError, ValueError, KeyError) as error:
            logger.warning("The lexical index of %s could not be read (%s); rebuilding it.", course, error)
            return None

    def _build(self, course: str, key: str, live_chunks: Callable[[], list[Chunk]]) -> LexicalIndex:
        index = LexicalIndex.build(live_chunks(), key, self.settings)
        logger.info("Built the lexical index of %s: %d chunks in %.2f s.", course, len(index.chunks),
                    index.build_s)
        if self.folder is not None:
            self._persist(course, key, index)
        return index

    def _persist(self, course: str, key: str, index: LexicalIndex) -> None:
        """Write under a temporary name, rename into place, then delete older versions."""
        course_folder = self.folder / course
        temporary = course_folder / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        index.save(temporary)
        try:
            temporary.rename(course_folder / key)
        except OSError:  # another process put the same version in place first
            shutil.rmtree(temporary, ignore_errors=True)
        for other in course_folder.iterdir():
            if other.name != key and not (other.name.startswith(".tmp-") and _is_recent(other)):
                shutil.rmtree(other, ignore_errors=True)


def _is_recent(path: Path, seconds: float = 600) -> bool:
    """A temporary folder younger than this may belong to a build still running in another process."""
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False
