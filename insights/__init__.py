"""What the instructor learns from the questions asked: the question log and the course report.

No FastAPI here: the server (app/) writes the log and serves the report page, ``tutor report``
reads the same database and writes the same report.
"""

from insights.log import (
    QuestionEntry,
    QuestionLog,
    QuestionLogOffError,
    QuestionLogUnavailableError,
    QuestionStore,
    record_answer,
)

__all__ = ["QuestionEntry", "QuestionLog", "QuestionLogOffError", "QuestionLogUnavailableError",
           "QuestionStore", "record_answer"]
