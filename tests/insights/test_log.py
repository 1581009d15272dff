"""The question log on a real SQLite file: writes, retention, the off switch, concurrency, kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from app.resources import open_question_log, open_question_store
from app.settings import Settings
from insights import QuestionEntry, QuestionLog, QuestionLogUnavailableError, QuestionStore, record_answer
from insights.log import utc_now
from tests.conftest import REPO_ROOT
from tests.utils.fakes import make_hit

COURSE = "physics-101"


def entry(question: str = "What is inertia?", *, days_ago: float = 0, course: str = COURSE,
          not_covered: bool = False) -> QuestionEntry:
    sources = [] if not_covered else [{"source": "mechanics.pdf", "page": 2, "score": 0.81}]
    return QuestionEntry(course=course, question=question, route="ask", model="fake-model", sources=sources,
                         not_covered=not_covered, latency_s=0.5,
                         asked_at=utc_now() - timedelta(days=days_ago))


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_store_writes_and_reads_a_course_oldest_first(tmp_path):
    store = QuestionStore(f"sqlite:///{tmp_path / 'q.db'}")
    store.add([entry("second", days_ago=1), entry("first", days_ago=2), entry("other", course="chemistry")])
    rows = store.entries(COURSE)
    assert [row.question for row in rows] == ["first", "second"]
    assert rows[0].sources == [{"source": "mechanics.pdf", "page": 2, "score": 0.81}]
    assert store.courses() == ["chemistry", COURSE]
    assert [row.question for row in store.entries(COURSE, since_days=1.5)] == ["second"]


def test_purge_deletes_only_rows_past_the_retention_period(tmp_path):
    store = QuestionStore(f"sqlite:///{tmp_path / 'q.db'}", retention_days=30)
    store.add([entry("old", days_ago=31), entry("recent", days_ago=29), entry("today")])
    assert store.purge() == 1
    assert [row.question for row in store.entries(COURSE)] == ["recent", "today"]


def test_opening_the_log_purges_old_rows(tmp_path):
    settings = Settings(data_dir=tmp_path, question_log_retention_days=7)
    open_question_store(settings).add([entry("old", days_ago=8), entry("new")])
    log = open_question_log(settings)
    log.close()
    assert [row.question for row in open_question_store(settings).entries(COURSE)] == ["new"]


def test_log_stores_no_client_address_column(tmp_path):
    store = QuestionStore(f"sqlite:///{tmp_path / 'q.db'}")
    with sqlite3.connect(tmp_path / "q.db") as connection:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(asked_questions)")}
    assert columns == {"id", "course", "asked_at", "question", "route", "model", "sources", "not_covered",
                       "latency_s"}
    store.close()


def test_off_switch_opens_nothing_and_records_nothing(tmp_path):
    settings = Settings(data_dir=tmp_path, question_log=False)
    log = open_question_log(settings)
    assert log is None
    record_answer(log, course=COURSE, question="What is inertia?", route="ask", model="m",
                  sources=[make_hit("x")], not_covered=False, latency_s=0.1)
    assert not (tmp_path / "questions.db").exists()


def test_record_answer_logs_the_sources_pages_and_scores(tmp_path):
    log = QuestionLog(QuestionStore(f"sqlite:///{tmp_path / 'q.db'}"))
    record_answer(log, course=COURSE, question="What is inertia?", route="ask/stream", model="m",
                  sources=[make_hit("a", score=0.91234567, page=3), make_hit("b", score=0.4, page=7)],
                  not_covered=False, latency_s=1.234567)
    log.close()
    [row] = QuestionStore(f"sqlite:///{tmp_path / 'q.db'}").entries(COURSE)
    assert (row.route, row.model, row.not_covered, row.latency_s) == ("ask/stream", "m", False, 1.2346)
    assert row.sources == [{"source": "notes.pdf", "page": 3, "score": 0.9123},
                           {"source": "notes.pdf", "page": 7, "score": 0.4}]


def test_a_full_queue_drops_questions_without_blocking(tmp_path, caplog):
    class StuckStore(QuestionStore):
        def add(self, entries):
            writing.set()
            release.wait(10)
            super().add(entries)

    writing, release = threading.Event(), threading.Event()
    log = QuestionLog(StuckStore(f"sqlite:///{tmp_path / 'q.db'}"), max_pending=2)
    assert log.record(entry("first")) and writing.wait(5)  # the writer is stuck committing it
    started = time.perf_counter()
    accepted = [log.record(entry(f"q{i}")) for i in range(10)]
    assert time.perf_counter() - started < 1
    assert accepted == [True, True] + [False] * 8
    assert "questions are not logged" in caplog.text
    release.set()
    log.close()
    assert len(QuestionStore(log.store.url).entries(COURSE)) == 3


def test_a_database_error_is_a_warning_and_the_writer_keeps_going(tmp_path, caplog):
    class FailingOnce(QuestionStore):
        failed = False

        def add(self, entries):
            if not self.failed:
                self.failed = True
                raise sqlite3.OperationalError("disk I/O error")
            super().add(entries)

    log = QuestionLog(FailingOnce(f"sqlite:///{tmp_path / 'q.db'}"))
    log.record(entry("lost"))
    deadline = time.monotonic() + 5
    while not log.store.failed and time.monotonic() < deadline:
        time.sleep(0.01)
    log.record(entry("kept"))
    log.close()
    assert "Could not write 1 questions" in caplog.text
    assert [row.question for row in QuestionStore(log.store.url).entries(COURSE)] == ["kept"]


def test_an_unreachable_database_is_an_error_naming_the_setting(tmp_path):
    settings = Settings(data_dir=tmp_path, question_log_url="postgresql+nodriver://db/tutor")
    with pytest.raises(QuestionLogUnavailableError, match="TUTOR_QUESTION_LOG_URL.*TUTOR_QUESTION_LOG=false"):
        open_question_log(settings)


def test_concurrent_writers_lose_no_row_and_keep_the_database_sound(tmp_path):
    """8 threads × 25 questions through two logs on one file (as two server workers would share it)."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    logs = [QuestionLog(QuestionStore(url)), QuestionLog(QuestionStore(url))]

    def ask(thread: int) -> None:
        for n in range(25):
            assert logs[thread % 2].record(entry(f"thread {thread} question {n}"))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs:
        log.close()
    questions = [row.question for row in QuestionStore(url).entries(COURSE)]
    assert len(questions) == 200 and len(set(questions)) == 200
    assert integrity(tmp_path / "q.db") == "ok"


WRITER = """
import sys, time
from insights import QuestionEntry, QuestionLog, QuestionStore
log = QuestionLog(QuestionStore(sys.argv[1]))
n = 0
while True:
    log.record(QuestionEntry(course="physics-101", question=f"question {n} " + "x" * 500, route="ask",
                             model="m", sources=[{"source": "a.pdf", "page": n % 9, "score": 0.5}],
                             not_covered=False, latency_s=0.1))
    n += 1
    if n % 50 == 0:
        time.sleep(0.001)
"""


def test_kill_9_while_writing_leaves_a_sound_readable_database(tmp_path):
    path = tmp_path / "q.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, f"sqlite:///{path}"], cwd=REPO_ROOT,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists() and count_rows(path) > 500:
                break
            assert writer.poll() is None, "the writer exited before it was killed"
            time.sleep(0.1)
        else:
            pytest.fail("the writer wrote fewer than 500 rows in 60 s")
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert integrity(path) == "ok"
    rows = QuestionStore(f"sqlite:///{path}").entries(COURSE)
    assert len(rows) > 500
    assert all(row.question.startswith("question ") and row.sources for row in rows)


def count_rows(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=10) as connection:
            return connection.execute("SELECT count(*) FROM asked_questions").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
