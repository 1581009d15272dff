"""Does the reader's yes/no classifier read the note? Hand-written notes, each asked questions both
ways: a classifier that answers from the question's form alone says "Yes" to both.

    python -m bench.yes_no_probes runs/reader-yn [--min-margin 1.0]
    python -m bench.yes_no_probes --generator [--calibrated]   # the tutor's model, by log-likelihood
    python -m bench.yes_no_probes runs/reader-yn --questions runs/sciriff.jsonl   # rows of a yes/no set

Prints, at the served gate, how many questions it answers, how many of those right, how many "Yes" and
"No" it says and how many of each are right, and the wrong answers it lets through (the first 20); then
the same without the gate. A "Yes" needs the question's names and numbers in the note, as served.
``--generator`` asks the served model instead
(``TUTOR_MODEL``): " Yes" against " No" after the note and the question, their log-likelihood gap the
margin; ``--calibrated`` takes off the gap it gives the same question after an unrelated note, so that
only what the note changes counts. Written as course notes are (science,
history, computing, economics, literature), not drawn from BoolQ or CoQA, and not tuned on.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.reader import YES_NO_MIN_MARGIN, ExtractiveReader, ShortAnswer

logger = logging.getLogger(__name__)

# (note, [(question, answer is yes)]): the questions answered no change one fact of a question
# answered yes (a name, a number, a property), or ask what the note does not say.
PROBES: list[tuple[str, list[tuple[str, bool]]]] = [
    ("Water boils at 100 degrees Celsius at sea level. Ice melts at 0 degrees Celsius. Mercury is a "
     "metal that is liquid at room temperature.",
     [("Is mercury liquid at room temperature?", True), ("Is mercury a gas at room temperature?", False),
      ("Does ice melt at 0 degrees Celsius?", True), ("Does ice melt at 50 degrees?", False),
      ("Is mercury a metal?", True), ("Is water a metal?", False)]),
    ("Tom was married to Anna in 1990. They moved to Boston two years later, where Tom taught "
     "chemistry at a high school.",
     [("Was Tom married to Anna?", True), ("Was Tom married to Maria?", False),
      ("Did they move to Boston?", True), ("Did they move to Chicago?", False),
      ("Did Tom teach chemistry?", True), ("Did Tom teach history?", False)]),
    ("Mitochondria produce most of the cell's energy in the form of ATP. Plant cells also contain "
     "chloroplasts, which carry out photosynthesis. Animal cells have no chloroplasts.",
     [("Do plant cells contain chloroplasts?", True), ("Do animal cells contain chloroplasts?", False),
      ("Do mitochondria produce ATP?", True), ("Do mitochondria carry out photosynthesis?", False)]),
    ("The Treaty of Versailles was signed in 1919. It required Germany to pay reparations and to "
     "give up its colonies. The United States Senate never ratified it.",
     [("Was the Treaty of Versailles signed in 1919?", True),
      ("Was the Treaty of Versailles signed in 1925?", False),
      ("Did Germany have to pay reparations?", True),
      ("Did the United States Senate ratify the treaty?", False)]),
    ("A stack is a last-in, first-out structure: the item pushed most recently is popped first. "
     "A queue is first-in, first-out. Both support insertion in constant time.",
     [("Is a stack last-in, first-out?", True), ("Is a queue last-in, first-out?", False),
      ("Does a queue support insertion in constant time?", True),
      ("Does a stack take linear time to insert an item?", False)]),
    ("When the price of a good rises, the quantity demanded usually falls. Goods for which demand "
     "rises with price, such as some luxury goods, are called Veblen goods.",
     [("Does the quantity demanded usually fall when the price rises?", True),
      ("Does the quantity demanded usually rise when the price rises?", False),
      ("Are luxury goods sometimes Veblen goods?", True), ("Are Veblen goods a kind of metal?", False)]),
    ("Jane Austen published Pride and Prejudice in 1813. Its heroine, Elizabeth Bennet, at first "
     "dislikes Mr Darcy but later marries him.",
     [("Did Jane Austen write Pride and Prejudice?", True), ("Did Charles Dickens write Pride and "
                                                            "Prejudice?", False),
      ("Does Elizabeth marry Mr Darcy?", True), ("Does Elizabeth marry Mr Collins?", False),
      ("Was Pride and Prejudice published in 1813?", True),
      ("Was Pride and Prejudice published in 1850?", False)]),
    ("Sound travels faster in water than in air, and faster still in steel. It cannot travel through "
     "a vacuum, because there are no particles to carry the wave.",
     [("Can sound travel through water?", True), ("Can sound travel through a vacuum?", False),
      ("Does sound travel faster in steel than in air?", True),
      ("Does sound travel faster in air than in water?", False)]),
    ("The Amazon is the largest rainforest on Earth. Most of it lies in Brazil, and its river carries "
     "more water than any other river.",
     [("Is the Amazon the largest rainforest?", True), ("Is the Amazon a desert?", False),
      ("Does most of the Amazon lie in Brazil?", True), ("Does most of the Amazon lie in Mexico?", False)]),
    ("Insulin is a hormone made by the pancreas. It lowers the level of sugar in the blood. People "
     "with type 1 diabetes make little or no insulin.",
     [("Is insulin made by the pancreas?", True), ("Is insulin made by the liver?", False),
      ("Does insulin lower blood sugar?", True), ("Does insulin raise blood sugar?", False)]),
]


@dataclass(frozen=True)
class Tally:
    """Of the questions asked for one answer: how many the classifier answered at a gate, how many right."""

    asked: int
    answered: int
    right: int


Said = Sequence[tuple[str, bool, ShortAnswer | None]]  # (question, asked for yes, what it said)


def tally(said: Said, gate: float) -> tuple[dict[str, Tally], list[str]]:
    """Per answer asked for ("yes", "no"), what the classifier said past ``gate``; and its wrong answers."""
    answered = [(question, yes, answer) for question, yes, answer in said
                if answer is not None and answer.margin >= gate]
    tallies = {name: Tally(sum(y == yes for _, y, _ in said), sum(y == yes for _, y, _ in answered),
                           sum(y == yes and (a.text == "Yes") == yes for _, y, a in answered))
               for name, yes in (("yes", True), ("no", False))}
    wrong = [f"{question} -> {answer.text} (margin {answer.margin:.2f})"
             for question, yes, answer in answered if (answer.text == "Yes") != yes]
    return tallies, wrong


WRONG_SHOWN = 20  # wrong answers listed per gate
# The note the calibrated generator's baseline reads: it says nothing any probe asks about.
UNRELATED_NOTE = "The library opens at nine in the morning and closes at six in the evening on weekdays."


def generator_says(runtime, question: str, note: str, calibrated: bool) -> ShortAnswer:
    """The generator's "Yes" or "No": which of the two it finds likelier after the note and the question."""
    from engine.runtime.base import LoglikelihoodRequest

    def gap(text: str) -> float:
        context = f"Course notes:\n{text}\n\nQuestion: {question}\nAnswer yes or no.\nAnswer:"
        (yes, _), (no, _) = runtime.loglikelihood([LoglikelihoodRequest(context, " Yes"),
                                                   LoglikelihoodRequest(context, " No")])
        return yes - no

    margin = gap(note) - (gap(UNRELATED_NOTE) if calibrated else 0.0)
    return ShortAnswer("Yes" if margin > 0 else "No", 1, abs(margin))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reader", nargs="?",
                        help="A reader folder holding a yes/no classifier (tutor train yes-no).")
    parser.add_argument("--generator", action="store_true", help="Ask the served model instead.")
    parser.add_argument("--calibrated", action="store_true",
                        help="With --generator: less the gap after an unrelated note.")
    parser.add_argument("--min-margin", type=float, default=YES_NO_MIN_MARGIN,
                        help="The gate (default: the served one).")
    parser.add_argument("--questions", type=Path,
                        help="Ask these rows {question, passage, answer: true|false} "
                        "(`python -m scripts.extract_boolq --set sciriff-yesno`) instead of the probes.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.generator == bool(args.reader) or (args.calibrated and not args.generator):
        parser.error("Name a reader folder, or ask the served model with --generator [--calibrated].")
    asked = PROBES if args.questions is None else [
        (row["passage"], [(row["question"], row["answer"])])
        for row in map(json.loads, args.questions.read_text(encoding="utf-8").splitlines())]
    if args.generator:
        from app.resources import open_runtime
        from app.settings import get_settings

        runtime = open_runtime(get_settings())
        said = [(question, yes, generator_says(runtime, question, note, args.calibrated))
                for note, questions in asked for question, yes in questions]
    else:
        reader = ExtractiveReader.load(args.reader)
        if reader.yes_no is None:
            raise SystemExit(f"{args.reader} holds no yes/no classifier: run tutor train yes-no on it.")
        said = [(question, yes, reader.yes_or_no(question, note, min_margin=0.0))
                for note, questions in asked for question, yes in questions]
    for gate in (args.min_margin, 0.0):
        tallies, wrong = tally(said, gate)
        for name, counts in tallies.items():
            logger.info("gate %.1f, asked for %s: %d of %d answered, %d right", gate, name, counts.answered,
                        counts.asked, counts.right)
        for answer in ("Yes", "No"):
            given = [yes for _, yes, said_ in said if said_ is not None and said_.text == answer
                     and said_.margin >= gate]
            logger.info("gate %.1f, said %s: %d, right %d", gate, answer, len(given),
                        sum(yes == (answer == "Yes") for yes in given))
        for line in wrong[:WRONG_SHOWN]:
            logger.info("  wrong: %s", line)


if __name__ == "__main__":
    main()
