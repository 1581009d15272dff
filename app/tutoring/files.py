"""The course files a student opens from a citation: which request paths name a stored file, how it is sent.

Files are looked up by name in the course's manifest, never on a disk, so no path can reach outside
the store; paths that try (``..``, absolute, backslashes, encoded slashes) are refused all the same,
with a 404 that says why, before the store is asked.
"""

from __future__ import annotations

from urllib.parse import quote

from app.errors import UnsafeFilePathError
from retrieval import CourseNotFoundError, CourseStore, InvalidCourseNameError
from retrieval.store import StoredFile

ENCODED_SEPARATORS = (b"%2f", b"%5c")  # an encoded '/' or '\' in the raw path
SOURCE_RULE = ("A course file is named by its path inside the course, as `tutor sources` lists it: no '..' "
               "or '.' parts, no leading '/', no backslashes, no encoded slashes.")


def file_url(course: str, source: str) -> str:
    """The path this server serves ``source`` of ``course`` at (each part percent-encoded)."""
    return f"/v1/courses/{quote(course, safe='')}/files/{quote(source, safe='/')}"


def check_source_path(source: str, raw_path: bytes) -> None:
    """Refuse a requested file path that tries to leave the course's files; the message says the rule."""
    parts = source.split("/")
    unsafe = (not source or "" in parts or "." in parts or ".." in parts or "\\" in source
              or any(ord(char) < 32 for char in source)
              or any(separator in raw_path.lower() for separator in ENCODED_SEPARATORS))
    if unsafe:
        raise UnsafeFilePathError(f"No course file is named {source!r}. {SOURCE_RULE}")


def course_file(course: str, source: str, *, store: CourseStore, raw_path: bytes = b"") -> StoredFile:
    """The stored file ``source`` of ``course``; an invalid course name is just an unknown course here."""
    check_source_path(source, raw_path)
    try:
        return store.source_file(course, source)
    except InvalidCourseNameError:
        raise CourseNotFoundError(course, store.courses()) from None


def file_headers(stored: StoredFile) -> dict[str, str]:
    """Shown inline by the browser under its own name; revalidated, since re-ingesting changes it."""
    name = stored.source.rsplit("/", 1)[-1]
    fallback = name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return {
        "Content-Disposition": f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}",
        "ETag": f'"{stored.file_hash}"',
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
