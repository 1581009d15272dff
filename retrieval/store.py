"""The course store: one Chroma collection per course, embedded or on a Chroma server.

Crash safety without transactions: a file's new chunks are written first under a new
``version`` (invisible to search), then one collection-metadata write (the manifest,
``source -> version``) makes them live, then the old version's chunks are deleted.
A run killed at any point leaves either the old or the new version visible, never a
mix; ``repair`` deletes leftovers of killed runs and the next run redoes the file.

The original file's bytes are kept the same way, so every API process (embedded or on a Chroma
server) can serve the cited PDF: written under the new version into the course's file collection
before the commit, their old version deleted after it. A committed source always has its file.

Every manifest write also stores a fresh ``generation``, so the manifest's fingerprint changes with
each commit; the lexical index (retrieval/lexical.py) is labelled with the fingerprint it was built
from and rebuilt from the live chunks whenever the store shows another one.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from retrieval.lexical import LexicalIndex, LexicalIndexes, LexicalSettings

logger = logging.getLogger(__name__)

# Chroma's own collection-name rule, which course names follow.
COURSE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")
MANIFEST_PREFIX = "src:"
SCHEMA_KEY = "tutor_schema"
EMBEDDER_KEY = "tutor_embedder"  # the model that made the course's vectors
GENERATION_KEY = "tutor_generation"  # changes with every commit; the lexical index follows it
LEXICAL_FOLDER = "tutor-lexical"  # inside an embedded store's folder
# Each course's original files live in a collection of their own, named after the course's hash (a
# course name may already use all 63 characters Chroma allows); no course may take the prefix.
FILES_PREFIX = "tutor-files-"
# Pieces go into metadata, not documents: Chroma indexes documents for full-text search, which took
# 17 s for a 4 MB PDF against 0.4 s as metadata.
FILE_PIECE_BYTES = 512 * 1024
PIECES_PER_WRITE = 8  # about 5.5 MB of base64 per request to a Chroma server
MAX_FILE_BYTES = 64 * 1024 * 1024
# Extra neighbours a dense query asks for, so that a few chunks of a version not (or no longer) live do
# not leave it short of k live ones.
STALE_MARGIN = 16


class CourseNotFoundError(LookupError):
    """The course has no collection; the message lists the known ones."""

    def __init__(self, course: str, known: list[str]):
        self.course, self.known = course, known
        close = difflib.get_close_matches(course, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        listing = ", ".join(known) if known else "none yet"
        super().__init__(f"Unknown course {course!r}.{hint} Known courses: {listing}.")


class SourceNotFoundError(LookupError):
    """The course has no such file; the message suggests near matches."""

    def __init__(self, course: str, source: str, known: list[str]):
        self.course, self.source, self.known = course, source, known
        close = difflib.get_close_matches(source, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        super().__init__(f"Course {course!r} has no source {source!r}.{hint} "
                         "List its files with `tutor sources --course COURSE`.")


class EmbedderMismatchError(ValueError):
    """A course indexed by one embedding model, written to with another."""

    def __init__(self, course: str, stored: str, given: str):
        self.course, self.stored, self.given = course, stored, given
        super().__init__(
            f"Course {course!r} was indexed with the embedding model {stored!r}, but {given!r} is "
            f"configured. Vectors of different models cannot be mixed: configure {stored!r} again, or "
            f"remove the course (`tutor remove --course {course}`) and ingest it again."
        )


class InvalidCourseNameError(ValueError):
    """A course name Chroma cannot use as a collection name, or one the store keeps for itself."""

    def __init__(self, course: str):
        if COURSE_NAME.match(course or ""):
            super().__init__(f"Invalid course name {course!r}: names starting with {FILES_PREFIX!r} are "
                             "kept for the course files; choose another name.")
            return
        super().__init__(
            f"Invalid course name {course!r}: use 3 to 63 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit."
        )


class FileTooLargeError(ValueError):
    """A file larger than the store keeps for students to open (MAX_FILE_BYTES)."""

    def __init__(self, source: str, size: int):
        self.source, self.size = source, size
        self.reason = (f"it is {size / 2**20:.1f} MiB; the course store keeps files of up to "
                       f"{MAX_FILE_BYTES // 2**20} MiB for students to open. Split the PDF into parts and "
                       "ingest those.")
        super().__init__(f"{source}: {self.reason}")


class SourceFileMissingError(LookupError):
    """A live source whose original file the store does not hold (ingested before files were kept)."""

    def __init__(self, course: str, source: str):
        self.course, self.source = course, source
        super().__init__(
            f"Course {course!r} does not keep the file {source!r}: it was ingested before the tutor kept "
            f"files. Ingest it again (`tutor ingest PATH --course {course}`) to store it."
        )


@dataclass
class Chunk:
    """One piece of a course file, with where it came from."""

    text: str
    source: str  # the file's name relative to the ingested folder
    page_start: int  # 1-based, as a reader sees the page numbers
    page_end: int
    index: int  # position of the chunk within its file
    file_hash: str  # sha256 of the file's bytes


@dataclass
class StoredFile:
    """The original bytes of a course file, as ingested."""

    source: str
    file_hash: str  # the live version's content hash (the manifest's)
    content: bytes


@dataclass
class SourceInfo:
    """A file stored in a course."""

    source: str
    file_hash: str
    chunks: int
    pages: int


def check_course_name(course: str) -> str:
    if not COURSE_NAME.match(course or "") or course.startswith(FILES_PREFIX):
        raise InvalidCourseNameError(course)
    return course


def check_file_size(source: str, size: int) -> None:
    """Raise FileTooLargeError for a file the store would not keep; cheap enough to ask before parsing."""
    if size > MAX_FILE_BYTES:
        raise FileTooLargeError(source, size)


def files_collection_name(course: str) -> str:
    return FILES_PREFIX + hashlib.sha256(course.encode()).hexdigest()[:32]


def _version(source: str, file_hash: str) -> str:
    return hashlib.sha256(f"{source}\0{file_hash}".encode()).hexdigest()[:16]


def _chunk_id(version: str, index: int) -> str:
    """A chunk's Chroma id: its file version and its position in the file."""
    return f"{version}:{index}"


class CourseStore:
    """All reads and writes of course chunks.

    Args:
        path: folder of an embedded (persistent) Chroma; used when ``url`` is None.
        url: a Chroma server, e.g. "http://127.0.0.1:8001".
        lexical: how the lexical (BM25) indexes tokenise; kept on disk beside an embedded store,
            built in memory by each process for a server.
    """

    def __init__(self, path: str | Path | None = None, url: str | None = None,
                 lexical: LexicalSettings | None = None):
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if url:
            from urllib.parse import urlparse

            parsed = urlparse(url)
            self.client = chromadb.HttpClient(
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or 8000,
                ssl=parsed.scheme == "https",
                settings=chroma_settings,
            )
            self.location = url
            lexical_folder = None
        elif path is not None:
            Path(path).mkdir(parents=True, exist_ok=True)
            self.client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            self.location = str(path)
            lexical_folder = Path(path) / LEXICAL_FOLDER
        else:
            raise ValueError("CourseStore needs a path (embedded Chroma) or a url (Chroma server).")
        self.max_batch = self.client.get_max_batch_size()
        self._manifest_lock = threading.Lock()
        self._tables: dict[str, LiveChunks] = {}
        self._tables_lock = threading.Lock()
        self.lexical = LexicalIndexes(lexical_folder, lexical or LexicalSettings())

    # -- courses ---------------------------------------------------------------------
    def courses(self) -> list[str]:
        return sorted(c.name for c in self.client.list_collections() if not c.name.startswith(FILES_PREFIX))

    def _collection(self, course: str):
        from chromadb.errors import NotFoundError

        try:
            return self.client.get_collection(check_course_name(course), embedding_function=None)
        except (NotFoundError, ValueError) as error:
            if isinstance(error, InvalidCourseNameError):
                raise
            raise CourseNotFoundError(course, self.courses()) from None

    def _collection_or_create(self, course: str, embedder: str | None = None):
        return self.client.get_or_create_collection(
            check_course_name(course),
            configuration={"hnsw": {"space": "cosine"}},
            metadata={SCHEMA_KEY: 1, **({EMBEDDER_KEY: embedder} if embedder else {})},
            embedding_function=None,
        )

    def check_embedder(self, course: str, embedder: str) -> None:
        """Raise EmbedderMismatchError if ``course`` exists and was indexed with another model."""
        if check_course_name(course) not in self.courses():
            return
        stored = (self._collection(course).metadata or {}).get(EMBEDDER_KEY)
        if stored is not None and stored != embedder:
            raise EmbedderMismatchError(course, str(stored), embedder)

    def require_course(self, course: str) -> None:
        """Raise CourseNotFoundError (listing the known courses) unless ``course`` exists."""
        self._collection(course)

    def remove_course(self, course: str) -> None:
        """Delete the course, then its files (a run killed between leaves files no course shows)."""
        self._collection(course)
        self.client.delete_collection(course)
        self.lexical.drop(course)
        self._tables.pop(course, None)
        self._drop_files(course)

    # -- the original files: pieces of base64 in metadata, by source and version ----------
    def _files(self, course: str, *, create: bool = False):
        """The course's file collection; None when it has none and ``create`` is false."""
        from chromadb.errors import NotFoundError

        name = files_collection_name(check_course_name(course))
        if create:
            return self.client.get_or_create_collection(name, metadata={"tutor_files_of": course},
                                                        embedding_function=None)
        try:
            return self.client.get_collection(name, embedding_function=None)
        except (NotFoundError, ValueError):
            return None

    def _drop_files(self, course: str) -> None:
        if self._files(course) is not None:
            self.client.delete_collection(files_collection_name(course))

    def _write_file(self, course: str, source: str, version: str, content: bytes) -> None:
        """Store ``content`` under ``version``; unseen until the manifest points ``source`` at it."""
        import base64

        files = self._files(course, create=True)
        pieces = [content[i : i + FILE_PIECE_BYTES] for i in range(0, max(len(content), 1), FILE_PIECE_BYTES)]
        digest = hashlib.sha256(content).hexdigest()
        for start in range(0, len(pieces), PIECES_PER_WRITE):
            numbers = range(start, min(start + PIECES_PER_WRITE, len(pieces)))
            files.upsert(ids=[f"{version}:{i}" for i in numbers], embeddings=[[1.0] for _ in numbers],
                         metadatas=[{"source": source, "version": version, "piece": i, "pieces": len(pieces),
                                     "sha256": digest, "data": base64.b64encode(pieces[i]).decode("ascii")}
                                    for i in numbers])

    def _read_file(self, course: str, source: str, version: str) -> bytes | None:
        """The bytes stored under ``version``, or None when they are absent or incomplete."""
        import base64

        files = self._files(course)
        if files is None:
            return None
        found = files.get(where={"version": version}, include=["metadatas"])["metadatas"]
        pieces = sorted(found, key=lambda meta: meta["piece"])
        if not pieces or [meta["piece"] for meta in pieces] != list(range(pieces[0]["pieces"])):
            return None
        content = b"".join(base64.b64decode(meta["data"]) for meta in pieces)
        if hashlib.sha256(content).hexdigest() != pieces[0]["sha256"]:
            logger.warning("The stored file %s of %s is damaged; ingest it again.", source, course)
            return None
        return content

    def source_file(self, course: str, source: str) -> StoredFile:
        """The live file ``source`` of ``course`` as it was ingested.

        Raises CourseNotFoundError, SourceNotFoundError, or SourceFileMissingError for a source
        ingested before files were kept. A file replaced while it was read (its old version deleted
        after the commit) is read again in its new version.
        """
        seen = None
        while True:
            manifest = self._manifest(self._collection(course))
            entry = manifest.get(source)
            if entry is None:
                raise SourceNotFoundError(course, source, sorted(manifest))
            if entry["file_hash"] == seen:
                raise SourceFileMissingError(course, source)
            content = self._read_file(course, source, _version(source, entry["file_hash"]))
            if content is not None:
                return StoredFile(source=source, file_hash=entry["file_hash"], content=content)
            seen = entry["file_hash"]

    def keeps_file(self, course: str, source: str, file_hash: str) -> bool:
        """Whether the file of ``source`` with this content hash is stored whole."""
        return self._read_file(course, source, _version(source, file_hash)) is not None

    def keep_file(self, course: str, source: str, content: bytes) -> None:
        """Store the file of a live source ingested before files were kept (its chunks stay as they are)."""
        manifest = self._manifest(self._collection(course))
        if source not in manifest:
            raise SourceNotFoundError(course, source, sorted(manifest))
        check_file_size(source, len(content))
        self._write_file(course, source, _version(source, manifest[source]["file_hash"]), content)

    # -- the manifest: which version of each source is live ---------------------------
    @staticmethod
    def _manifest(collection) -> dict[str, dict]:
        manifest = {}
        for key, value in (collection.metadata or {}).items():
            if key.startswith(MANIFEST_PREFIX):
                file_hash, chunks, pages = str(value).split(":")
                manifest[key[len(MANIFEST_PREFIX) :]] = {
                    "file_hash": file_hash,
                    "chunks": int(chunks),
                    "pages": int(pages),
                }
        return manifest

    def _write_manifest(self, collection, source: str, entry: dict | None) -> None:
        metadata = dict(collection.metadata or {})
        metadata.pop("hnsw:space", None)  # configuration, not ours to rewrite
        key = MANIFEST_PREFIX + source
        if entry is None:
            metadata.pop(key, None)
        else:
            metadata[key] = f"{entry['file_hash']}:{entry['chunks']}:{entry['pages']}"
        metadata[SCHEMA_KEY] = 1
        metadata[GENERATION_KEY] = uuid.uuid4().hex
        collection.modify(metadata=metadata)

    def _fingerprint(self, collection) -> str:
        """Names the live content of a course: the manifest and the generation of its last commit."""
        metadata = collection.metadata or {}
        state = [sorted(self._manifest(collection).items()), str(metadata.get(GENERATION_KEY))]
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]

    def _live_versions(self, collection) -> list[str]:
        return [_version(s, e["file_hash"]) for s, e in self._manifest(collection).items()]

    def sources(self, course: str) -> list[SourceInfo]:
        manifest = self._manifest(self._collection(course))
        return [SourceInfo(source=s, **entry) for s, entry in sorted(manifest.items())]

    def source_hash(self, course: str, source: str) -> str | None:
        """The live content hash of ``source`` in ``course``, or None if not stored."""
        if check_course_name(course) not in self.courses():
            return None
        entry = self._manifest(self._collection(course)).get(source)
        return entry["file_hash"] if entry else None

    # -- writes ----------------------------------------------------------------------
    def replace_source(self, course: str, source: str, chunks: list[Chunk], embeddings: list[list[float]],
                       pages: int, embedder: str | None = None, content: bytes | None = None) -> None:
        """Make ``chunks`` (and the file's ``content``) the live content of ``source``, replacing any
        earlier version in one commit.

        ``embedder`` names the model that made ``embeddings``; a new course records it. ``content`` is
        the original file, which students open from the citations; ingestion always passes it.
        """
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings for {source}.")
        if content is not None:  # before anything is written, so a refused file leaves no course behind
            check_file_size(source, len(content))
        file_hash = chunks[0].file_hash if chunks else "empty"
        version = _version(source, file_hash)
        collection = self._collection_or_create(course, embedder)
        if content is not None:
            self._write_file(course, source, version, content)
        ids = [_chunk_id(version, c.index) for c in chunks]
        metadatas = [{**asdict(c), "course": course, "version": version} for c in chunks]
        for meta in metadatas:
            meta.pop("text")
        for start in range(0, len(chunks), self.max_batch):
            end = start + self.max_batch
            collection.upsert(ids=ids[start:end], embeddings=embeddings[start:end],
                              documents=[c.text for c in chunks[start:end]], metadatas=metadatas[start:end])
        with self._manifest_lock:  # the commit: one metadata write
            collection = self._collection(course)
            self._write_manifest(collection, source, {"file_hash": file_hash, "chunks": len(chunks),
                                                      "pages": pages})
        older = {"$and": [{"source": source}, {"version": {"$ne": version}}]}
        collection.delete(where=older)
        if (files := self._files(course)) is not None:
            files.delete(where=older)

    def remove_source(self, course: str, source: str) -> int:
        """Delete one file's chunks from a course; returns how many were removed."""
        collection = self._collection(course)
        entry = self._manifest(collection).get(source)
        if entry is None:
            raise SourceNotFoundError(course, source, sorted(self._manifest(collection)))
        with self._manifest_lock:
            self._write_manifest(collection, source, None)
        collection.delete(where={"source": source})
        if (files := self._files(course)) is not None:
            files.delete(where={"source": source})
        self.lexical_index(course)
        return entry["chunks"]

    def repair(self, course: str) -> int:
        """Delete chunks and files no manifest entry points to (left by a killed run); returns how many
        chunks."""
        if course not in self.courses():
            self._drop_files(course)  # a course removal killed before it removed the files
            return 0
        collection = self._collection(course)
        live = self._live_versions(collection)
        stale = self._delete_stale(collection, live)
        if (files := self._files(course)) is not None:
            self._delete_stale(files, live)
        if stale:
            logger.info("Removed %d chunks left by an interrupted ingestion of %s.", stale, course)
        return stale

    def _delete_stale(self, collection, live: list[str]) -> int:
        where = {"version": {"$nin": live}} if live else None
        stale = collection.get(where=where, include=[])["ids"]
        for start in range(0, len(stale), self.max_batch):
            collection.delete(ids=stale[start : start + self.max_batch])
        return len(stale)

    # -- reads -----------------------------------------------------------------------
    def count(self, course: str) -> int:
        """Chunks stored for ``course``, live or not (used by tests and repair checks)."""
        return self._collection(course).count()

    def chunks(self, course: str, source: str | None = None) -> list[Chunk]:
        """The live chunks of ``course`` (of one ``source`` if given), by source and index."""
        return self._live_chunks(self._collection(course), source)

    def _live_chunks(self, collection, source: str | None = None) -> list[Chunk]:
        live = self._live_versions(collection)
        if not live:
            return []
        where: dict = {"version": {"$in": live}}
        if source is not None:
            where = {"$and": [where, {"source": source}]}
        found: list[Chunk] = []
        # Pages of at most max_batch: one get of a 100,000-chunk course fails in Chroma's SQLite
        # ("too many SQL variables").
        while True:
            result = collection.get(where=where, include=["documents", "metadatas"], limit=self.max_batch,
                                    offset=len(found))
            found += [_chunk(text, meta) for text, meta in zip(result["documents"], result["metadatas"],
                                                                strict=True)]
            if len(result["ids"]) < self.max_batch:
                return sorted(found, key=lambda chunk: (chunk.source, chunk.index))

    # -- searching: one read of the store per search ---------------------------------------
    def view(self, course: str) -> CourseView:
        """``course`` as of its current manifest: the collection and the lexical index of its live chunks.

        One collection read per call (about a millisecond), so a search through the view sees every
        commit made before it, by this process or another, and its dense and lexical sides agree.
        """
        collection, index = self._lexical_state(course)
        return CourseView(collection, index, self._live_table(course, index),
                          lambda: self._live_versions(collection))

    def _live_table(self, course: str, index: LexicalIndex) -> LiveChunks:
        """The live chunks (those of ``index``) by Chroma id and by place, made once per store state."""
        with self._tables_lock:
            table = self._tables.get(course)
            if table is None or table.fingerprint != index.fingerprint:
                table = self._tables[course] = LiveChunks.of(index)
        return table

    # -- the lexical index -------------------------------------------------------------
    def lexical_index(self, course: str) -> LexicalIndex:
        """The BM25 index of exactly the live chunks of ``course``, rebuilt if the store changed."""
        return self._lexical_state(course)[1]

    def _lexical_state(self, course: str):
        """The collection and the lexical index of one state of the store.

        The fingerprint is read again after building: a commit that landed meanwhile means another
        pass, so the index returned always matches one state of the store.
        """
        for _ in range(3):
            collection = self._collection(course)
            fingerprint = self._fingerprint(collection)
            index = self.lexical.cached(course, fingerprint)
            if index is not None:
                return collection, index
            index = self.lexical.get(course, fingerprint, lambda c=collection: self._live_chunks(c))
            if self._fingerprint(self._collection(course)) == fingerprint:
                return collection, index
        logger.warning("Course %s kept changing while its lexical index was built; using the last build.",
                       course)
        return collection, index

    def lexical_query(self, course: str, text: str, k: int) -> list[tuple[Chunk, float]]:
        """The ``k`` live chunks that best match ``text`` by BM25, with their scores."""
        return self.lexical_index(course).search(text, k)


@dataclass
class LiveChunks:
    """The live chunks of one store state (a lexical index's), by Chroma id and by (source, index)."""

    fingerprint: str
    by_id: dict[str, Chunk]
    by_place: dict[tuple[str, int], Chunk]

    @classmethod
    def of(cls, index: LexicalIndex) -> LiveChunks:
        versions = {(c.source, c.file_hash): _version(c.source, c.file_hash) for c in index.chunks}
        return cls(index.fingerprint,
                   {_chunk_id(versions[c.source, c.file_hash], c.index): c for c in index.chunks},
                   {(c.source, c.index): c for c in index.chunks})


@dataclass
class CourseView:
    """Dense and lexical search over the live chunks of one state of a course (``CourseStore.view``).

    Dense search asks Chroma for ids and distances only, without a filter, and takes the chunks from
    ``live`` (the lexical index's chunks, by Chroma id): Chroma's filtered search and its reads of
    texts and metadata cost 30 to 60 times its unfiltered vector search on a 10,000-chunk course.
    A hit outside ``live`` is a chunk not (or no longer) live, dropped; a query left with fewer than
    ``k`` hits by them (an ingestion between its write and its commit, or a killed one not yet
    repaired) is asked again with the filter on live versions.
    """

    collection: object
    lexical: LexicalIndex
    live: LiveChunks
    live_versions: Callable[[], list[str]]

    def dense(self, embeddings: list[list[float]], k: int) -> list[list[tuple[Chunk, float]]]:
        """The ``k`` live chunks nearest to each embedding, with cosine similarity, best first."""
        if not embeddings or not self.live.by_id or k < 1:
            return [[] for _ in embeddings]
        wanted = min(k, len(self.live.by_id))
        result = self.collection.query(query_embeddings=embeddings, n_results=k + STALE_MARGIN,
                                       include=["distances"])
        hits = [self._known(ids, distances)[:k] for ids, distances in zip(result["ids"], result["distances"],
                                                                          strict=True)]
        short = [n for n, found in enumerate(hits) if len(found) < wanted]
        if short:
            logger.debug("%d of %d dense queries met stale chunks; asking again with the live filter.",
                         len(short), len(hits))
            again = self.collection.query(query_embeddings=[embeddings[n] for n in short], n_results=k,
                                          where={"version": {"$in": self.live_versions()}},
                                          include=["distances"])
            for n, ids, distances in zip(short, again["ids"], again["distances"], strict=True):
                hits[n] = self._known(ids, distances)
        return hits

    def _known(self, ids: list[str], distances: list[float]) -> list[tuple[Chunk, float]]:
        live = self.live.by_id
        return [(live[i], 1.0 - float(d)) for i, d in zip(ids, distances, strict=True) if i in live]

    def lexical_search(self, texts: list[str], k: int) -> list[list[tuple[Chunk, float]]]:
        """The ``k`` best BM25 matches of each text, with their scores."""
        return self.lexical.search_many(texts, k)

    def around(self, source: str, index: int, neighbours: int) -> list[Chunk]:
        """The live chunk at ``index`` of ``source`` and up to ``neighbours`` on each side, in order."""
        places = ((source, n) for n in range(index - neighbours, index + neighbours + 1))
        return [self.live.by_place[place] for place in places if place in self.live.by_place]


def _chunk(text: str, meta: dict) -> Chunk:
    return Chunk(text=text, source=meta["source"], page_start=meta["page_start"], page_end=meta["page_end"],
                 index=meta["index"], file_hash=meta["file_hash"])
