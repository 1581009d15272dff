"""The short answer: an extractive reader picks the words of the notes that answer the question.

The 135M generator rarely states a short answer (SQuAD token F1 about 0.11). A small encoder with a span
head does: all-MiniLM-L6-v2 (the packaged embedder's weights) plus a low-rank adapter and span head
trained by ``tutor train reader`` on the grounded train split. It reads the chunks the prompt numbers,
in one batch, and returns the span that beats its chunk's "no answer" position ([CLS]) by the most,
and the chunk's number; no span holds a section label ("Section 207") or cuts a number in two
("1,438" of "1,438,159"). A question asked for yes or no is read instead by the yes/no classifier the
reader folder holds (``tutor train yes-no``): the reader's encoder with an adapter of its own and a
two-way head, reading the best-ranked chunk; the tutor says only its "Yes" (``engine.grounded``).
"""

from __future__ import annotations

import bisect
import copy
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.runtime.models import ModelNotFoundError
from retrieval.definitions import defined_term, defines, named_term
from retrieval.history import CITATION_MARK
from retrieval.lexical import LexicalSettings, tokenize
from retrieval.prompt import NO_CONTEXT_ANSWER, is_heading_line, key_sentence_span

logger = logging.getLogger(__name__)

ADAPTER_FILE = "reader.safetensors"
CONFIG_FILE = "reader.json"
YES_NO_FILE = "yes_no.safetensors"  # optional: the yes/no classifier's adapter and head
# The encoder's linear layers the adapter changes (names end with one of these).
ADAPTED = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense")
SHIPPED_READER = Path(__file__).resolve().parent / "shipped" / "reader"  # package data: ships in the wheel
# The tutor reads retrieval's first two notes, a span of the second winning only by this lead in margin:
# on the dev sets short F1 rose over the first note alone (README, "Short answers"), where reading all
# four without the lead had lost to it.
READ_NOTES = 2
RANK_PENALTY = 2.0
# A span inside its note's sentence sharing the most words with the question (picked as the server picks
# the sentence it quotes, though from the note with its headings) gains this much on its note's "no answer"
# score. Chosen on the three dev sets, over every question as served: short F1 rose on each from 0.5 to 3
# (README, "Short answers").
KEY_SENTENCE_BONUS = 2.0
# A yes or no is said only when the classifier's two scores are this far apart: odds of at least e to 1
# (about 73%) by its own reckoning; closer calls get no short answer (the model card: accuracy by margin).
YES_NO_MIN_MARGIN = 1.0
# Spans of a note tried, best first, for one that is not the answer just given (``ExtractiveReader.read``).
SPANS_TRIED = 20
# Of the last answer, the words a follow-up is read with (CoQA's reference answers are a few words long).
ANSWER_WORDS = 16
# A section label opening a line ("Section 207", "Chapter 4", "Lecture 3.2", "CHAPTER III.") says where a
# passage sits in the course, never what it says: no span may hold or cross one (README, "Short answers").
# So does the number of a numbered heading ("1. The first law: inertia", "2.3 Energy"), but only on a
# line short and unpunctuated enough to be a heading: a wrapped sentence's "pH of\n7. This is neutral."
# keeps its 7.
SECTION_WORDS = "Section|Chapter|Part|Unit|Lecture|Lesson|Module|Week|Topic|Appendix|Page"
SECTION_LABEL = re.compile(rf"^[ \t]*(?:{SECTION_WORDS}|{SECTION_WORDS.upper()})"
                           r"[ \t]+(?:\d+(?:\.\d+)*|[IVXLC]+)\b\.?", re.MULTILINE)
NUMBERED_HEADING = re.compile(r"^[ \t]*(\d{1,2}(?:\.\d{1,2})*\.?)[ \t]+[A-Z].*$", re.MULTILINE)
LINE = re.compile(r"^.*$", re.MULTILINE)


@dataclass(frozen=True)
class ShortAnswer:
    """A span of note ``note`` (numbered from 1, as the prompt's ``[n]``) and how far it beat "no answer"
    (less any rank penalty)."""

    text: str
    note: int
    margin: float


YES_NO_OPENING = re.compile(r"(is|are|was|were|am|do|does|did|can|could|has|have|had|will|would|should|shall"
                            r"|may|might|must)\b", re.IGNORECASE)


def asks_yes_or_no(question: str) -> bool:
    """Whether ``question`` is answered yes or no ("Was she married?"), which no span of a note says.

    A question that offers alternatives ("Is it the upper or the lower chamber?") is answered by one.
    """
    return bool(YES_NO_OPENING.match(question.strip())) and not re.search(r"\bor\b", question, re.IGNORECASE)


# Questions answered by a sentence, which no span the reader may pick holds whole: what a law, rule or text
# states ("What does Newton's first law say?": it picked "inertia"), how things differ or work ("What is
# the difference between a list and a tuple?": "dictionary keys"; "How does slicing a list work?":
# "t[1:3]"), or an explanation asked for. 4 of the sample course's 19 questions; 3 of 7,327 SQuAD, CoQA,
# ARC, OBQA and MMLU dev questions ("What do they say about ...?"), none of the 5,169 open ones otherwise.
ASKS_FOR_A_SENTENCE = re.compile(r"^\s*(?:what (?:does|do) .{1,80}? (?:say|state)\b"
                                 r"|what (?:is|are|'s) the differences? between\b"
                                 r"|how (?:does|do) .{1,80}? (?:work|differ)\b|explain\b|describe\b)",
                                 re.IGNORECASE)


def span_answers(question: str, note: str) -> bool:
    """Whether a short span of a note may answer ``question``: not when it asks what a term means
    (``retrieval.definitions.defined_term``: "What is a tuple?", answered by the quoted definition; "What is
    the Hall coefficient?" when ``note``, the best-ranked, defines it) or asks for a statement or an
    explanation (``ASKS_FOR_A_SENTENCE``)."""
    named = named_term(question)
    return (defined_term(question) is None and not (named is not None and defines(named, note))
            and not ASKS_FOR_A_SENTENCE.match(question))


# A word: a number ("1,438", "3.5") or letters with inner apostrophes and hyphens.
WORD = re.compile(r"\d+(?:[.,]\d+)*|[A-Za-z][A-Za-z'-]*")


def names_and_numbers(question: str) -> list[str]:
    """The words of ``question`` that name something: numbers, and capitalised words not opening it."""
    words = WORD.findall(question)
    return [word for n, word in enumerate(words) if word[0].isdigit() or (n > 0 and word[0].isupper())]


def names_held(question: str, note: str) -> bool:
    """Whether the note holds every name and number of ``question``, compared as the lexical index
    compares words (stemmed): a "Yes" needs them. On hand-written notes asked both ways
    (``bench.yes_no_probes``) it took a wrong "Yes" to a changed year or place from the classifier; on the
    CoQA dev turns it took none of its answers (README, "Short answers")."""
    named = " ".join(names_and_numbers(question))
    if not named:
        return True
    wanted, held = tokenize([named, note], LexicalSettings())
    return set(wanted) <= set(held)


def reader_question(question: str, conversation: Sequence[dict[str, str]] = ()) -> str:
    """What the reader reads as the question: the conversation's last exchange, then this question.

    "What did he do?" names nobody; after "Who was driven out of Italy?" and "Charles VIII" it does. Of
    the answer, its first line without citations (the tutor's answers open with the short answer), at
    most ``ANSWER_WORDS`` words; a "not covered" answer names nothing and is left out.
    """
    exchange = _last_exchange(conversation)
    if exchange is None:
        return question.strip()
    asked, answer = exchange
    return " ".join(" ".join([asked, *answer.split()[:ANSWER_WORDS], question]).split())


def last_answer(conversation: Sequence[dict[str, str]]) -> str:
    """The first line of the answer to the conversation's last question, without citations: the short
    answer the tutor opened it with, when it had one ("" for none, or a "not covered" answer)."""
    exchange = _last_exchange(conversation)
    return "" if exchange is None else exchange[1]


def _last_exchange(conversation: Sequence[dict[str, str]]) -> tuple[str, str] | None:
    """The conversation's last student message and the first line of the answer to it, as ``last_answer``
    gives it; None without a student message."""
    turns = [m for m in conversation if m.get("role") in ("user", "assistant")]
    asked = max((n for n, m in enumerate(turns) if m["role"] == "user"), default=None)
    if asked is None:
        return None
    answer = turns[asked + 1]["content"] if asked + 1 < len(turns) else ""
    answer = "" if answer == NO_CONTEXT_ANSWER else answer.strip().split("\n", 1)[0]
    return turns[asked]["content"], " ".join(re.sub(r"\s*" + CITATION_MARK.pattern, "", answer).split())


def same_answer(first: str, second: str) -> bool:
    """Whether two answers say the same words, case, punctuation and articles aside ("Two" and "two.")."""
    def words(text: str) -> list[str]:
        return [word for word in re.findall(r"\w+", text.lower()) if word not in ("a", "an", "the")]

    said = words(first)
    return bool(said) and said == words(second)


def adapted_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The encoder's linear layers the adapter changes, by module name."""
    return {name: module for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name.startswith("bert.encoder.") and name.endswith(ADAPTED)}


def load_span_model(base: Path) -> nn.Module:
    """The base encoder with a fresh span head (``qa_outputs``), its load report kept out of the log."""
    from transformers import AutoModelForQuestionAnswering
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new head's "MISSING" report is expected
    try:
        return AutoModelForQuestionAnswering.from_pretrained(base)
    finally:
        hf_logging.set_verbosity(verbosity)


def check_reader_folder(folder: str | Path) -> Path:
    """The reader folder, failing clearly when it lacks the files ``tutor train reader`` writes."""
    folder = Path(folder).expanduser()
    if not (folder / ADAPTER_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise ModelNotFoundError(f"Reader folder {folder} has no {ADAPTER_FILE} and {CONFIG_FILE}; "
                                 "train one with `tutor train reader`, or set TUTOR_SHORT_ANSWERS=false.")
    return folder


class YesNoClassifier(nn.Module):
    """An encoder (``bert``, named as in the span model so the same layers take the adapter) and a
    two-way head on its [CLS] state: scores for (no, yes)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.bert = encoder
        self.head = nn.Linear(encoder.config.hidden_size, 2)

    def forward(self, **encoded: torch.Tensor) -> torch.Tensor:
        return self.head(self.bert(**encoded).last_hidden_state[:, 0])


class ExtractiveReader:
    """Best answer span over a question's notes (SQuAD-style start and end scores, one batch), and yes or
    no for a question asked for it when a classifier is loaded."""

    def __init__(self, model: nn.Module, tokenizer, *, max_length: int = 384, max_answer_tokens: int = 16,
                 yes_no: YesNoClassifier | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.max_answer_tokens = max_answer_tokens
        self.yes_no = yes_no.eval() if yes_no is not None else None

    @classmethod
    def load(cls, folder: str | Path) -> ExtractiveReader:
        """The reader ``tutor train reader`` wrote in ``folder``, on the encoder its ``reader.json`` names
        (null: the packaged all-MiniLM-L6-v2): the adapter is merged into the base's weights once, here;
        so is the yes/no classifier's into a copy of the merged encoder, when ``tutor train yes-no`` wrote
        one there."""
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        from engine.runtime.models import check_embedder_path

        folder = check_reader_folder(folder)
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        base = check_embedder_path(config.get("base"))
        model = load_span_model(base)
        tensors = load_file(str(folder / ADAPTER_FILE))
        merge_adapter(model, tensors, config["alpha"] / config["rank"])
        load_head(model.qa_outputs, tensors, "qa_outputs")
        yes_no = None
        if (folder / YES_NO_FILE).is_file() and "yes_no" in config:
            yes_no = YesNoClassifier(copy.deepcopy(model.bert))
            tensors = load_file(str(folder / YES_NO_FILE))
            merge_adapter(yes_no, tensors, config["yes_no"]["alpha"] / config["yes_no"]["rank"])
            load_head(yes_no.head, tensors, "head")
        return cls(model, AutoTokenizer.from_pretrained(base), max_length=config.get("max_length", 384),
                   max_answer_tokens=config.get("max_answer_tokens", 16), yes_no=yes_no)

    @torch.inference_mode()
    def yes_or_no(self, question: str, note: str, *, asked: str = "",
                  min_margin: float = YES_NO_MIN_MARGIN) -> ShortAnswer | None:
        """"Yes" or "No" from the note (numbered 1), its margin the gap between the two scores; None
        without a classifier or a note, or when the gap is under ``min_margin``, or for a "Yes" when the
        note lacks a name or number that ``asked`` (the student's question, default ``question``) holds
        (``names_and_numbers``): "Was the treaty signed in 1925?" of a note saying 1919."""
        if self.yes_no is None or not note.strip() or not question.strip():
            return None
        encoded = self.tokenizer(question, note, truncation="only_second", max_length=self.max_length,
                                 return_tensors="pt")
        no, yes = self.yes_no(**encoded)[0].tolist()
        if abs(yes - no) < min_margin:
            return None
        if yes > no and not names_held(asked or question, note):
            return None
        return ShortAnswer("Yes" if yes > no else "No", 1, abs(yes - no))

    @torch.inference_mode()
    def read(self, question: str, notes: Sequence[str], *, rank_penalty: float = 0.0,
             asked: str = "", key_sentence_bonus: float = 0.0, not_said: str = "") -> ShortAnswer | None:
        """The span that beats its note's "no answer" score by the most, over all notes (None: no notes).

        ``rank_penalty`` is taken off that margin per place a note comes after the first, so a later
        note's span wins only by a clear lead (notes in retrieval's order; ``READ_NOTES``). A span inside
        the note's sentence sharing the most words with ``asked`` (``key_sentence_span``; "": none) gains
        ``key_sentence_bonus``. Every question gets its best span, however small the margin: on the dev
        split the spans a gate at 0 would drop scored as well as those it kept (the model card,
        shipped/reader/README.md). A span saying ``not_said`` (``same_answer``: the answer the tutor just
        gave) gives way to the note's next best: a follow-up asks something else (4 of 2,897 CoQA turns
        answered with words, not yes or no, repeat the answer before them)."""
        if not notes or not question.strip():
            return None
        encoded = self.tokenizer([question] * len(notes), list(notes), truncation="only_second",
                                 max_length=self.max_length, padding=True, return_offsets_mapping=True,
                                 return_tensors="pt")
        offsets = encoded.pop("offset_mapping")
        output = self.model(**encoded)
        best: ShortAnswer | None = None
        for row, note in enumerate(notes):
            sequence_ids, note_offsets = encoded.sequence_ids(row), offsets[row].tolist()
            stretches = token_stretches(note, sequence_ids, note_offsets)
            # Half the bonus on the start and half on the end of each token inside the key sentence.
            bonus = key_sentence_bonus / 2 * key_sentence_tokens(asked, note, sequence_ids, note_offsets)
            spans = best_spans(output.start_logits[row] + bonus, output.end_logits[row] + bonus, stretches,
                               self.max_answer_tokens, SPANS_TRIED if not_said.strip() else 1)
            for start, end, margin in spans:
                first, last = whole_numbers(note, int(offsets[row, start, 0]), int(offsets[row, end, 1]))
                text = " ".join(note[first:last].split())
                if not text or same_answer(text, not_said):
                    continue
                margin -= rank_penalty * row
                if best is None or margin > best.margin:
                    best = ShortAnswer(text, row + 1, margin)
                break
        return best


def key_sentence_tokens(asked: str, note: str, sequence_ids: Sequence[int | None],
                        offsets: Sequence[tuple[int, int]]) -> torch.Tensor:
    """1.0 for each of the note's tokens inside its sentence sharing the most words with ``asked``, else 0
    (all 0 when ``asked`` is empty)."""
    if not asked.strip():
        return torch.zeros(len(offsets))
    first, last = key_sentence_span(asked, note)
    return torch.tensor([float(sequence == 1 and first <= start < end <= last)
                         for sequence, (start, end) in zip(sequence_ids, offsets, strict=True)])


def whole_numbers(note: str, start: int, end: int) -> tuple[int, int]:
    """The character span ``start:end`` of ``note`` widened so it cuts no number in two.

    The tokenizer splits "1,438,159" at its commas, so a span may end at "1,438": a wrong number, stated
    as the answer. Digits, and a comma or point between digits, join the number at either end.
    """
    def joins(at: int) -> bool:  # note[at] continues a number begun beside it
        return note[at].isdigit() or (note[at] in ",." and 0 < at < len(note) - 1
                                      and note[at - 1].isdigit() and note[at + 1].isdigit())

    if start < end and note[start].isdigit():
        while start > 0 and joins(start - 1):
            start -= 1
    if start < end and note[end - 1].isdigit():
        while end < len(note) and joins(end):
            end += 1
    return start, end


def section_labels(note: str) -> list[tuple[int, int]]:
    """Character spans of the note's section labels: the named ones, and the numbers of heading lines."""
    named = [label.span() for label in SECTION_LABEL.finditer(note)]
    return named + [heading.span(1) for heading in NUMBERED_HEADING.finditer(note)
                    if is_heading_line(heading.group())]


def heading_bounds(note: str) -> list[int]:
    """Where each heading line of the note starts and ends: a line short and unpunctuated enough to be a
    heading, after the note's start or a sentence's end and before a line opening with a capital
    ("Heat flows." / "The second law and entropy" / "The second law says..."). A wrapped line is not
    one: "in the spring of" / "1496, and war...", nor, in a narrow column, "It was discovered by Marie" /
    "Curie in 1898" after a line that ends mid-sentence."""
    lines = list(LINE.finditer(note))
    befores = [".", *(line.group() for line in lines)]  # the note's first line follows a sentence's end
    return [bound for before, line, after in zip(befores, lines, lines[1:], strict=False)
            if (not before.strip() or before.rstrip()[-1] in ".!?:") and is_heading_line(line.group())
            and after.group().lstrip()[:1].isupper() for bound in line.span()]


def token_stretches(note: str, sequence_ids: Sequence[int | None],
                    offsets: Sequence[tuple[int, int]]) -> torch.Tensor:
    """For each token, the stretch of the note a span holding it must keep within; -1 for tokens no span
    may hold: the question's, and those of the note's section labels. Labels and heading lines bound
    stretches, so a span neither crosses a label ("Motion 1. The first law") nor runs from a heading into
    the text below it ("second law and entropy The second law of thermodynamics")."""
    labels = section_labels(note)
    bounds = sorted([bound for label in labels for bound in label] + heading_bounds(note))

    def in_label(start: int, end: int) -> bool:
        return any(start < label_end and label_start < end for label_start, label_end in labels)

    return torch.tensor([bisect.bisect_right(bounds, start) if sequence == 1 and not in_label(start, end)
                         else -1 for sequence, (start, end) in zip(sequence_ids, offsets, strict=True)])


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, stretches: torch.Tensor,
               max_tokens: int, count: int = 1) -> list[tuple[int, int, float]]:
    """(start, end, margin over [CLS], "no answer") of the ``count`` best spans of at most ``max_tokens``
    tokens within one stretch (``token_stretches``), best first; none when the note has no token a span
    may hold."""
    null = float(start_logits[0] + end_logits[0])
    allowed = stretches >= 0
    starts = start_logits.masked_fill(~allowed, float("-inf"))
    ends = end_logits.masked_fill(~allowed, float("-inf"))
    scores = starts[:, None] + ends[None, :]
    length = torch.arange(len(starts))[None, :] - torch.arange(len(starts))[:, None]
    crosses = stretches[None, :] != stretches[:, None]
    scores = scores.masked_fill((length < 0) | (length >= max_tokens) | crosses, float("-inf"))
    values, flat = torch.topk(scores.flatten(), min(count, scores.numel()))
    return [(*divmod(int(index), scores.shape[1]), float(value) - null)
            for value, index in zip(values, flat, strict=True) if value != float("-inf")]


def merge_adapter(model: nn.Module, tensors: dict[str, torch.Tensor], scale: float) -> None:
    """Add each adapted layer's ``B @ A * scale`` to its weight."""
    linears = adapted_linears(model)
    with torch.no_grad():
        for name, linear in linears.items():
            down, up = tensors.get(f"{name}.lora_A"), tensors.get(f"{name}.lora_B")
            if down is None or up is None or (up.shape[0], down.shape[1]) != tuple(linear.weight.shape):
                raise ModelNotFoundError(f"The reader adapter does not fit {name} of its base encoder; "
                                         "train it on that base with `tutor train reader`.")
            linear.weight += (up.float() @ down.float()) * scale


def load_head(head: nn.Linear, tensors: dict[str, torch.Tensor], name: str) -> None:
    """Copy the trained head ``name`` (its weight and bias) into ``head``."""
    with torch.no_grad():
        head.weight.copy_(tensors[f"{name}.weight"])
        head.bias.copy_(tensors[f"{name}.bias"])
