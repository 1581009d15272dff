"""A few hand-made SQuAD and CoQA rows for the grounded data builder and the tiny tutor pipeline."""

from __future__ import annotations

import json
from pathlib import Path

ARTICLES = {
    "Rivers": ["The Rhine flows through Basel and reaches the North Sea near Rotterdam.",
               "The Danube flows east through Vienna and Budapest into the Black Sea.",
               "River deltas form where rivers slow down and drop their sediment."],
    "Teachers": ["Teachers facilitate learning, sometimes outdoors rather than in a school building.",
                 "A teacher who teaches one student at a time may be called a tutor.",
                 "Teacher training colleges prepare graduates for classroom work."],
    "Volcanoes": ["Magma that reaches the surface is called lava.",
                  "Mount Etna in Sicily is one of the most active volcanoes in Europe.",
                  "Volcanic ash can ground aircraft for days."],
}
QUESTIONS = {
    "Rivers": [(0, "Which sea does the Rhine reach?", ["North Sea"]),
               (1, "Which cities does the Danube flow through?", ["Vienna and Budapest"]),
               (2, "Where do river deltas form?", ["where rivers slow down"])],
    "Teachers": [(0, "Where might a teacher teach besides a school building?", ["outdoors"]),
                 (1, "What is a teacher of one student called?", ["tutor", "a tutor"]),
                 (2, "Who prepares graduates for classroom work?", ["Teacher training colleges"])],
    "Volcanoes": [(0, "What is magma called at the surface?", ["lava"]),
                  (1, "Which volcano in Sicily is very active?", ["Mount Etna", "Etna"]),
                  (2, "What can ground aircraft for days?", ["Volcanic ash"])],
}
STORY = ("Anna keeps bees in her garden in Lyon.\n\nEvery spring she sells the honey at the market "
         "near the river.\n\nHer brother Paul builds the hives from old pine boards.")


def write_grounded_rows(folder: Path) -> tuple[Path, Path]:
    """``squad.jsonl`` (three articles of three passages) and ``coqa.jsonl`` (one story) in ``folder``."""
    squad = folder / "squad.jsonl"
    rows = [{"id": f"{title}-{n}", "title": title, "context": ARTICLES[title][index], "question": question,
             "answers": answers}
            for title, items in QUESTIONS.items() for n, (index, question, answers) in enumerate(items)]
    squad.write_text("".join(json.dumps(row) + "\n" for row in rows))
    coqa = folder / "coqa.jsonl"
    turns = [{"question": "Where does Anna keep bees?", "answers": ["in her garden"]},
             {"question": "Does she sell honey?", "answers": ["yes"]},
             {"question": "Who builds the hives?", "answers": ["her brother Paul", "Paul"]}]
    coqa.write_text(json.dumps({"id": "story1", "source": "cnn", "story": STORY, "turns": turns}) + "\n")
    return squad, coqa
