"""A terminal progress bar with an ETA for the long `tutor` commands (evaluations, quantisation)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """Show a bar while the block runs; yields ``update(done, total)`` for the work to report to.

    The total is given with each update, since the work often learns it only after reading its input.
    """
    from ingest.progress import bar_with_eta

    with bar_with_eta() as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
