"""The log of asked questions: one row per answered question, in any database SQLAlchemy reaches.

SQLite (the default) runs in WAL mode with a busy timeout, so several writers (threads, or server
workers sharing the file) wait for each other instead of failing, and a process killed mid-write
leaves the last committed rows readable. The server writes through ``QuestionLog``: a background
thread behind a bounded queue, so an answer never waits for, or fails because of, the log.
No client address is stored anywhere.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import JSON, DateTime, Engine, Index, String, Text, create_engine, delete, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
PURGE_EVERY_S = 24 * 3600
MAX_PENDING = 1000
WRITE_BATCH = 100  # rows committed together when questions arrive faster than one commit each


def utc_now() -> datetime:
    """Naive UTC: SQLite keeps no time zone, so every stored time is UTC by convention."""
    return datetime.now(UTC).replace(tzinfo=None)


class QuestionLogUnavailableError(RuntimeError):
    """The question log's database cannot be opened."""


class QuestionLogOffError(LookupError):
    """The question log is switched off, so there is no report to show."""


class Base(DeclarativeBase):
    pass


class AskedQuestion(Base):
    """One answered question of a course (the table ``asked_questions``)."""

    __tablename__ = "asked_questions"
    __table_args__ = (Index("ix_asked_questions_course_time", "course", "asked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course: Mapped[str] = mapped_column(String(200))
    asked_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    question: Mapped[str] = mapped_column(Text())
    route: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(300))
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON())
    not_covered: Mapped[bool]
    latency_s: Mapped[float]


class SourceLike(Protocol):
    """What a retrieved chunk tells the log (``retrieval.Hit`` has it)."""

    source: str
    page: int
    score: float


@dataclass(frozen=True)
class QuestionEntry:
    """A logged question. ``sources`` are {"source", "page", "score"} dicts in the order they were cited."""

    course: str
    question: str
    route: str
    model: str
    sources: list[dict[str, Any]]
    not_covered: bool
    latency_s: float
    asked_at: datetime = field(default_factory=utc_now)


def sqlite_pragmas(connection, _record) -> None:
    """WAL lets readers work while one writer commits; the busy timeout makes writers queue, not fail."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: safe against a killed process
    cursor.close()


def open_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file gets its folder created and the pragmas above."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", sqlite_pragmas)
    return engine


class QuestionStore:
    """Synchronous reads and writes of the question log; ``tutor report`` uses it directly.

    Args:
        url: a SQLAlchemy URL (``sqlite:///path/questions.db``, ``postgresql+psycopg://...``).
        retention_days: rows older than this are deleted by ``purge``.
    """

    def __init__(self, url: str, *, retention_days: int = 180):
        self.url = url
        self.retention_days = retention_days
        self.engine = open_engine(url)
        Base.metadata.create_all(self.engine)

    @property
    def location(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def add(self, entries: Sequence[QuestionEntry]) -> None:
        """Commit ``entries`` in one transaction."""
        with Session(self.engine) as session, session.begin():
            session.add_all(AskedQuestion(**vars(entry)) for entry in entries)

    def purge(self, now: datetime | None = None) -> int:
        """Delete the rows older than the retention period; returns how many went."""
        cutoff = (now or utc_now()) - timedelta(days=self.retention_days)
        with Session(self.engine) as session, session.begin():
            deleted = session.execute(delete(AskedQuestion).where(AskedQuestion.asked_at < cutoff)).rowcount
        if deleted:
            logger.info("Deleted %d logged questions older than %d days.", deleted, self.retention_days)
        return deleted

    def entries(self, course: str, *, since_days: float | None = None) -> list[QuestionEntry]:
        """The course's logged questions, oldest first; with ``since_days``, only that many recent days."""
        query = select(AskedQuestion).where(AskedQuestion.course == course).order_by(AskedQuestion.asked_at)
        if since_days is not None:
            query = query.where(AskedQuestion.asked_at >= utc_now() - timedelta(days=since_days))
        with Session(self.engine) as session:
            return [QuestionEntry(course=row.course, question=row.question, route=row.route, model=row.model,
                                  sources=row.sources, not_covered=row.not_covered, latency_s=row.latency_s,
                                  asked_at=row.asked_at) for row in session.scalars(query)]

    def courses(self) -> list[str]:
        """The courses with logged questions."""
        with Session(self.engine) as session:
            return sorted(session.scalars(select(AskedQuestion.course).distinct()))

    def close(self) -> None:
        self.engine.dispose()


class QuestionLog:
    """Logs questions from the server without slowing or failing it: ``record`` only queues the entry.

    A background thread commits what is queued (at most ``WRITE_BATCH`` rows per transaction) and
    purges old rows once a day; a full queue or a database error drops rows with a warning.
    ``close`` writes what is queued, then stops the thread.
    """

    def __init__(self, store: QuestionStore, *, max_pending: int = MAX_PENDING):
        self.store = store
        self._queue: queue.Queue[QuestionEntry | None] = queue.Queue(max_pending)
        self._purged_at = time.monotonic()
        self._warned_full = False
        self.store.purge()
        self._thread = threading.Thread(target=self._write_loop, name="question-log", daemon=True)
        self._thread.start()

    def record(self, entry: QuestionEntry) -> bool:
        """Queue ``entry`` for writing; False (and a warning) when the queue is full."""
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            if not self._warned_full:  # once per overload, not once per question
                logger.warning("The question log is %d rows behind; questions are not logged until it "
                               "catches up. Check that %s is reachable.", self._queue.maxsize,
                               self.store.location)
                self._warned_full = True
            return False
        self._warned_full = False
        return True

    def close(self) -> None:
        """Write every queued entry, then stop the writer and release the database."""
        self._queue.put(None)
        self._thread.join()
        self.store.close()

    def _next_batch(self) -> tuple[list[QuestionEntry], bool]:
        """Wait for one entry, then take what else is queued; the flag says whether to stop after it."""
        batch: list[QuestionEntry] = []
        item = self._queue.get()
        while item is not None:
            batch.append(item)
            if len(batch) >= WRITE_BATCH:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._next_batch()
            try:
                if batch:
                    self.store.add(batch)
                if time.monotonic() - self._purged_at > PURGE_EVERY_S:
                    self._purged_at = time.monotonic()
                    self.store.purge()
            except Exception as error:  # a bad row or a lost database must not stop the writer
                logger.warning("Could not write %d questions to the question log at %s: %s", len(batch),
                               self.store.location, error)


def record_answer(log: QuestionLog | None, *, course: str, question: str, route: str, model: str,
                  sources: Sequence[SourceLike], not_covered: bool, latency_s: float) -> None:
    """Log one answered question, if the log is on; the one call every answering route makes.

    Never raises: a question that cannot be logged is dropped with a warning, and the answer goes out.
    """
    if log is None:
        return
    try:
        cited = [{"source": hit.source, "page": hit.page, "score": round(float(hit.score), 4)}
                 for hit in sources]
        log.record(QuestionEntry(course=course, question=question, route=route, model=model, sources=cited,
                                 not_covered=not_covered, latency_s=round(latency_s, 4)))
    except Exception as error:  # logging must never fail the answer
        logger.warning("Could not log a question of %s: %s", course, error)
