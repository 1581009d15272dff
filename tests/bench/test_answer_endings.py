"""The answer-endings bench takes the model's own text back out of a saved answer (no model)."""

from __future__ import annotations

import pytest

from bench.answer_endings import models_text


def test_the_models_text_is_the_answer_without_the_short_answer_and_the_servers_ending():
    row = {"id": "q1", "answer": 'wetland [1].\n\nIt is a marsh. The notes say: "A wetland is wet." [1]',
           "server_added": 'The notes say: "A wetland is wet." [1]'}
    assert models_text(row, "wetland [1].\n\n") == "It is a marsh."
    assert models_text({"answer": "It is a marsh [2].", "server_added": ""}, "") == "It is a marsh [2]."
    with pytest.raises(SystemExit, match="q1"):  # saved with another short answer, or none
        models_text(row, "marsh [2].\n\n")
