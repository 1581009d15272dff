"""A terminal progress bar for the ingestion run: files done, and chunks embedded of the current file."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def bar_with_eta():
    """A rich ``Progress``: description, bar, done/total, time taken and ETA (every long command's look)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn())


class IngestProgress:
    """Two rich bars (files, chunks of the current file); only log lines when disabled."""

    def __init__(self, total_files: int, *, enabled: bool = True):
        self.total_files = total_files
        self.enabled = enabled
        self._progress = None
        self._files_task = self._chunks_task = None

    def __enter__(self) -> IngestProgress:
        if self.enabled:
            self._progress = bar_with_eta()
            self._progress.start()
            self._files_task = self._progress.add_task("files", total=self.total_files)
            self._chunks_task = self._progress.add_task("chunks", total=None, visible=False)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start_file(self, source: str) -> None:
        logger.debug("Ingesting %s.", source)
        if self._progress is not None:
            self._progress.update(self._files_task, description=f"files ({source})")

    def start_chunks(self, source: str, total: int) -> None:
        # With the bar on screen a log line would only break it up.
        level = logging.DEBUG if self._progress is not None else logging.INFO
        logger.log(level, "Embedding %d chunks of %s.", total, source)
        if self._progress is not None:
            self._progress.reset(self._chunks_task, total=total, description="chunks", visible=True)

    def advance_chunks(self, count: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._chunks_task, count)

    def finish_file(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._files_task)
