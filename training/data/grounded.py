"""Grounded-answer training data from SQuAD and CoQA, in the exact prompt format serving sends.

Each question becomes the prompt ``/v1/ask`` would build (``engine.grounded.prepare_answer`` with
the passages standing in for the course's search hits): the gold passage among retrieved-like
distractors (the passages lexically closest to the question, its own article's first) at a
shuffled position, CoQA's earlier turns as the conversation. The target states the reference
answer and cites the gold source ``[n]``. Preference pairs reject a distractor's answer with its
citation, the right answer citing a wrong source, the right answer uncited, another sentence of the
gold source cited and, optionally, the current model's own answer. Some questions also get an
abstention example: only unrelated passages, answered with the fixed "not covered" text. Splits are
whole articles (SQuAD ``title``) or stories (CoQA ``id``), and distractors come from the same split
only. With ``short_in_prompt`` each answerable prompt also shows the reference answer as the server's
reader would show its short answer (``TUTOR_SHORT_IN_PROMPT``).
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.citations import CITATION, cited_numbers, is_refusal
from engine.evaluation.answer_metrics import contains, find_phrase, normalize_answer, states_answer
from engine.evaluation.answers import GivenPassages
from engine.evaluation.questions_file import read_questions
from engine.grounded import AnswerOptions, prepare_answer
from engine.reader import ShortAnswer
from engine.runtime.base import GenerationRequest, Runtime
from retrieval import NO_CONTEXT_ANSWER, Hit
from retrieval.history import FUNCTION_WORDS, FollowUpSettings
from retrieval.prompt import SENTENCE_END, format_sources
from training.cleaning import CleaningConfig, CleaningReport, clean, split_by_group
from training.data.schema import Message, PreferencePair, SFTExample
from training.errors import DataFormatError, RecipeError

logger = logging.getLogger(__name__)

# CoQA answers that any passage "contains": they cannot locate the gold passage.
UNLOCATABLE = frozenset({"yes", "no", "unknown"})
CALIBRATION_FILE = "calibration.jsonl"  # the shipped model's GPTQ calibration (training/shipped.py)
ANSWER_STYLES = ("sentence", "span")
CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
SENTENCE_WORDS = 25  # a stated sentence longer than this keeps only its clauses around the answer


@dataclass
class BuildConfig:
    """How the grounded examples are built."""

    passages: int = field(default=4, metadata={"help": "Sources per prompt, as the server's top_k."})
    dev_fraction: float = field(default=0.1, metadata={"help": "Share of rows (whole articles or "
                                                       "stories) kept for the dev split."})
    # SFT models refused 28% (0.15) and 25% (0.05) of answerable sciq-dev questions: few abstention
    # examples, and refusal pairs in DPO; TUTOR_MIN_SCORE turns most off-topic questions away anyway.
    abstention_share: float = field(default=0.05, metadata={"help": "Share of questions that also give an "
                                                            "abstention example (unrelated passages only)."})
    history_turns: int = field(default=3, metadata={"help": "Earlier CoQA turns kept as the conversation."})
    chunk_words: int = field(default=100, metadata={"help": "Passages (SQuAD contexts, CoQA stories) are "
                                                    "cut into chunks of about this many words, like a "
                                                    "course's chunks."})
    source_sentences: int = field(default=3, metadata={"help": "Key sentences shown per source, as "
                                                       "the server's TUTOR_SOURCE_SENTENCES (0: whole "
                                                       "passages)."})
    answer_style: str = field(default="sentence", metadata={"help": "The target answer: 'sentence' (the "
                              "gold note's sentence that states the answer, cut to its clauses around "
                              "the answer when long) or 'span' (the reference answer alone); cited."})
    short_in_prompt: bool = field(default=False, metadata={"help": "Show the reference answer and its note "
                                  "as the reader's short answer in each answerable prompt, as a server with "
                                  "TUTOR_SHORT_IN_PROMPT shows the reader's."})
    seed: int = field(default=0, metadata={"help": "Seed of the split, the distractor ties and positions."})

    def __post_init__(self) -> None:
        if self.answer_style not in ANSWER_STYLES:
            raise RecipeError(f"answer_style is {self.answer_style!r}; use one of "
                              f"{', '.join(ANSWER_STYLES)}.")
        if self.passages < 2:
            raise RecipeError("passages must be at least 2: the gold passage and a distractor.")
        if not 0 <= self.dev_fraction < 1:
            raise RecipeError(f"dev_fraction is {self.dev_fraction}; use a share in [0, 1), e.g. 0.1.")
        if not 0 <= self.abstention_share <= 1:
            raise RecipeError(f"abstention_share is {self.abstention_share}; use a share in [0, 1].")


@dataclass
class Passage:
    """A passage of a set, shown to the model as one numbered source."""

    text: str
    group: str  # the article or story: splits never separate its passages
    source: str  # the file name the prompt shows
    page: int
    answers: list[str] = field(default_factory=list)  # answers of the set's questions on this passage
    words: list[str] = field(default_factory=list)  # normalised tokens, for containment checks
    keys: frozenset[str] = frozenset()  # content words, for closeness to a question

    def __post_init__(self) -> None:
        self.words = normalize_answer(self.text).split()
        self.keys = content_words(self.text)

    def holds(self, answer: str) -> bool:
        return bool(find_phrase(self.words, normalize_answer(answer).split()))

    def hit(self, score: float) -> Hit:
        return Hit(text=self.text, score=score, source=self.source, page=self.page, page_end=self.page,
                   chunk_index=self.page - 1)


@dataclass
class GroundedQuestion:
    """A question with its reference answers, its gold passage and the conversation before it."""

    id: str
    group: str
    question: str
    answers: list[str]
    gold: Passage
    history: list[Message] = field(default_factory=list)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataFormatError(f"Data file {path} does not exist; check the path (see shared/data/README.md).")
    return read_questions(path, lambda row, _where: row, error=DataFormatError)


def load_squad(path: Path, chunk_words: int) -> tuple[list[GroundedQuestion], int]:
    """SQuAD rows ``{id, title, context, question, answers}``, each context cut like a course's chunks.

    Returns the questions and how many were left out because no chunk holds their answer whole (an
    answer cut by a chunk boundary).
    """
    contexts: dict[tuple[str, str], list[Passage]] = {}
    pages: dict[str, int] = {}
    questions, unlocated = [], 0
    for row in _read_jsonl(path):
        key = (row["title"], row["context"])
        if key not in contexts:
            contexts[key] = []
            for text in chunk_story(row["context"], chunk_words):
                pages[row["title"]] = pages.get(row["title"], 0) + 1
                contexts[key].append(Passage(text, f"squad:{row['title']}", f"{row['title']}.pdf",
                                             pages[row["title"]]))
        answers = [a for a in row["answers"] if a.strip()]
        gold = _locate(contexts[key], answers)
        if gold is None:
            unlocated += 1
            continue
        gold.answers.extend(a for a in answers[:1] if a not in gold.answers)
        questions.append(GroundedQuestion(row["id"], gold.group, row["question"], answers, gold))
    return questions, unlocated


def chunk_story(text: str, words: int) -> list[str]:
    """Paragraphs merged up to about ``words`` words; longer paragraphs cut into windows of that size."""
    pieces: list[str] = []
    for paragraph in (p.split() for p in re.split(r"\n\s*\n", text)):
        pieces.extend(" ".join(paragraph[i:i + words]) for i in range(0, len(paragraph), words))
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1].split()) + len(piece.split()) <= words:
            chunks[-1] += "\n" + piece
        else:
            chunks.append(piece)
    return chunks


def _locate(passages: Sequence[Passage], answers: Sequence[str]) -> Passage | None:
    """The first passage holding a reference answer that can identify it (not yes/no)."""
    for answer in sorted(answers, key=len, reverse=True):
        if normalize_answer(answer) in UNLOCATABLE or not normalize_answer(answer):
            continue
        for passage in passages:
            if passage.holds(answer):
                return passage
    return None


def load_coqa(path: Path, chunk_words: int, history_turns: int) -> tuple[list[GroundedQuestion], int]:
    """CoQA stories cut into passages; one question per turn whose answer locates its passage.

    Returns the questions and how many turns were left out because no passage holds their answer
    (yes/no answers, free-form paraphrases); they still count as conversation for later turns.
    """
    questions, unlocated = [], 0
    for row in _read_jsonl(path):
        group, source = f"coqa:{row['id']}", f"{row['source']}-{row['id'][:8]}.pdf"
        passages = [Passage(text, group, source, page)
                    for page, text in enumerate(chunk_story(row["story"], chunk_words), start=1)]
        history: list[Message] = []
        for number, turn in enumerate(row["turns"]):
            answers = [a for a in turn["answers"] if a.strip()]
            gold = _locate(passages, answers)
            if gold is None:
                unlocated += 1
            else:
                gold.answers.extend(answers[:1])
                earlier = history[-2 * history_turns:] if history_turns else []
                questions.append(GroundedQuestion(f"{row['id']}:{number}", group, turn["question"], answers,
                                                  gold, earlier))
            history = [*history, {"role": "user", "content": turn["question"]},
                       {"role": "assistant", "content": short_answer(answers[0] if answers else "unknown")}]
    return questions, unlocated


def short_answer(answer: str) -> str:
    """The reference answer as a short sentence: capitalised, one final full stop."""
    text = answer.strip().rstrip(".").strip()
    return text[:1].upper() + text[1:] + "."


def cited_answer(answer: str, n: int) -> str:
    """The target: the reference answer citing source ``n``, e.g. ``Outdoors [2].``"""
    return short_answer(answer)[:-1] + f" [{n}]."


def stated_answer(note: str, answer: str, max_words: int = SENTENCE_WORDS) -> str | None:
    """The words of ``note`` that state ``answer``: its sentence, or when that is longer than ``max_words``
    the fewest clauses around the answer that still hold it, grown by neighbours up to ``max_words``.
    None when no sentence holds the whole answer.

    A 135M model copies a sentence it is shown far more reliably than it picks a span out of one, and
    the student reads the answer with its evidence.
    """
    sentence = next((s for s in SENTENCE_END.split(note) if contains(s, answer)), None)
    if sentence is None or len(sentence.split()) <= max_words:
        return sentence
    clauses = CLAUSE_END.split(sentence)
    windows = [(i, j) for i in range(len(clauses)) for j in range(i + 1, len(clauses) + 1)
               if contains(" ".join(clauses[i:j]), answer)]
    start, end = min(windows, key=lambda w: (w[1] - w[0], w[0]))
    while True:  # grow towards the longer neighbour first, while the clauses stay short
        grown = [w for w in ((start - 1, end), (start, end + 1)) if 0 <= w[0] and w[1] <= len(clauses)
                 and len(" ".join(clauses[w[0]:w[1]]).split()) <= max_words]
        if not grown:
            return " ".join(clauses[start:end]).rstrip(",;:")
        start, end = grown[0]


def styled_answer(prompt: list[Message], n: int, answer: str, style: str) -> str:
    """The answer to ``prompt`` from note ``n`` in the builder's style, uncited; the span itself when the
    note shows no sentence that holds it."""
    sentence = stated_answer(shown_note(prompt, n), answer) if style == "sentence" else None
    return sentence or answer


def content_words(text: str) -> frozenset[str]:
    """The distinct normalised words of ``text`` that can tell passages apart."""
    return frozenset(normalize_answer(text).split()) - FUNCTION_WORDS


def closest(question: GroundedQuestion, pool: Sequence[Passage], count: int, rng: random.Random, *,
            same_group: bool) -> list[Passage]:
    """The ``count`` passages closest to the question that do not hold its answer.

    ``same_group`` ranks the question's own article or story first (retrieved-like distractors);
    without it, that article is left out (unrelated passages for abstention).
    """
    # Closeness is the number of the question's content words a passage holds: retriever-like.
    words = content_words(question.question)
    ties = {id(p): rng.random() for p in pool}
    candidates = [p for p in pool if p is not question.gold and (same_group or p.group != question.group)]
    candidates.sort(key=lambda p: (same_group and p.group == question.group, len(words & p.keys),
                                   ties[id(p)]), reverse=True)
    chosen: list[Passage] = []
    for passage in candidates:
        if passage.text != question.gold.text and not any(passage.holds(a) for a in question.answers):
            chosen.append(passage)
            if len(chosen) == count:
                break
    return chosen


@dataclass(frozen=True)
class GivenShortAnswer:
    """A reader that "finds" a given span of a given note, standing in for the server's reader as
    ``GivenPassages`` stands in for its search: the prompt then shows the reference answer as the short
    answer (``TUTOR_SHORT_IN_PROMPT``), and the model learns to state what that line names."""

    text: str
    note: int

    def read(self, question: str, notes: Sequence[str], **_: Any) -> ShortAnswer:
        return ShortAnswer(self.text, self.note, margin=float("inf"))

    def yes_or_no(self, question: str, note: str, **_: Any) -> ShortAnswer | None:
        return ShortAnswer("Yes", 1, margin=float("inf")) if normalize_answer(self.text) == "yes" else None


def grounded_messages(question: GroundedQuestion, hits: list[Hit], sentences: int,
                      short: GivenShortAnswer | None = None) -> list[Message]:
    """The chat messages serving sends for this question with these sources, built by serving's code;
    with ``short``, that span shown as the reader's short answer."""
    passages = GivenPassages({question.question: hits})
    # the passages are given for the question, in their order: the history must not re-rank them
    options = AnswerOptions(top_k=len(hits), follow_up=FollowUpSettings("none"), source_sentences=sentences,
                            reader=short, short_in_prompt=short is not None)  # type: ignore[arg-type]
    prepared = prepare_answer(passages, "", question.question, conversation=question.history,
                              options=options)
    assert prepared.generation is not None  # hits are never empty here
    return prepared.generation.messages


@dataclass
class BuiltRows:
    """The SFT examples and preference pairs of one split, and what was skipped on the way."""

    sft: list[SFTExample] = field(default_factory=list)
    pairs: list[PreferencePair] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    answer_not_shown: int = 0  # questions whose gold passage states the answer, its key sentences not

    def add_pair(self, prompt: list[Message], chosen: str, rejected: str, kind: str, *, group: str,
                 origin: str) -> None:
        self.pairs.append(PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected, group=group,
                                         source=kind, origin=origin))
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


def shown_note(prompt: list[Message], n: int) -> str:
    """Source ``n`` as the model reads it: its line of the prompt's notes."""
    prefix = f"[{n}] "
    return next(line.removeprefix(prefix) for line in prompt[-1]["content"].splitlines()
                if line.startswith(prefix))


def answered_rows(question: GroundedQuestion, pool: Sequence[Passage], config: BuildConfig,
                  rows: BuiltRows, rng: random.Random) -> None:
    """The question with its gold passage among distractors: one SFT example and its rejected answers."""
    distractors = closest(question, pool, config.passages - 1, rng, same_group=True)
    if not distractors:
        return
    passages = list(distractors)
    gold_at = rng.randrange(len(passages) + 1)
    passages.insert(gold_at, question.gold)
    answer, n = question.answers[0], gold_at + 1
    prompt = grounded_messages(question, [p.hit(1.0 - i / 100) for i, p in enumerate(passages)],
                               config.source_sentences,
                               GivenShortAnswer(answer, n) if config.short_in_prompt else None)
    if contains(question.gold.text, answer) and not contains(shown_note(prompt, n), answer):
        rows.answer_not_shown += 1  # the passage states it, the key sentences shown do not
        return
    stated = styled_answer(prompt, n, answer, config.answer_style)
    chosen = cited_answer(stated, n)
    rows.sft.append(SFTExample(prompt=prompt, completion=chosen, group=question.group, source="answer",
                               origin=question.id))
    wrong = [(i, p) for i, p in enumerate(passages, start=1) if p is not question.gold]
    with_answers = [(i, a) for i, p in wrong for a in p.answers if not states_answer(a, question.answers)
                    and not contains(answer, a)]
    if with_answers:
        i, other = rng.choice(with_answers)
        rows.add_pair(prompt, chosen, cited_answer(styled_answer(prompt, i, other, config.answer_style), i),
                      "distractor", group=question.group, origin=question.id)
    rows.add_pair(prompt, chosen, cited_answer(stated, rng.choice(wrong)[0]), "wrong_source",
                  group=question.group, origin=question.id)
    rows.add_pair(prompt, chosen, short_answer(stated), "uncited", group=question.group, origin=question.id)
    # the right note, cited, but another of its sentences: what a model shown the short answer still wrote
    others = [s for s in SENTENCE_END.split(shown_note(prompt, n)) if s.strip() and not contains(s, answer)]
    if others:
        rows.add_pair(prompt, chosen, cited_answer(rng.choice(others), n), "wrong_sentence",
                      group=question.group, origin=question.id)
    # SFT models refused a quarter of answerable sciq-dev questions; DPO on these pairs: none
    rows.add_pair(prompt, chosen, NO_CONTEXT_ANSWER, "refusal", group=question.group, origin=question.id)


def abstention_rows(question: GroundedQuestion, pool: Sequence[Passage], config: BuildConfig,
                    rows: BuiltRows, rng: random.Random) -> None:
    """Only unrelated passages: the target is the fixed "not covered" answer, not a guess."""
    unrelated = closest(question, pool, config.passages, rng, same_group=False)
    if len(unrelated) < config.passages:
        return
    prompt = grounded_messages(question, [p.hit(0.5 - i / 100) for i, p in enumerate(unrelated)],
                               config.source_sentences)
    rows.sft.append(SFTExample(prompt=prompt, completion=NO_CONTEXT_ANSWER, group=question.group,
                               source="abstention", origin=question.id))
    rows.add_pair(prompt, NO_CONTEXT_ANSWER, cited_answer(question.answers[0], 1), "abstention",
                  group=question.group, origin=question.id)


def build_split(questions: Sequence[GroundedQuestion], config: BuildConfig) -> BuiltRows:
    """Every example of one split; distractors come from this split's passages only."""
    pool = list({id(q.gold): q.gold for q in questions}.values())
    if len({q.group for q in questions}) == 1 and config.abstention_share:
        logger.warning("Only one article or story in this split: no abstention examples can be built.")
    rows = BuiltRows()
    for question in questions:
        rng = random.Random(f"{config.seed}:{question.id}")
        answered_rows(question, pool, config, rows, rng)
        if rng.random() < config.abstention_share:
            abstention_rows(question, pool, config, rows, rng)
    return rows


SELF_ANSWER_WORDS = 40  # longer right answers are not kept as targets: a student waits for each word


def cite_only(answer: str, n: int) -> str:
    """``answer`` with its own citations replaced by one citation of note ``n`` at its end."""
    text = " ".join(CITATION.sub(" ", answer).split()).rstrip(" .")
    return f"{text} [{n}]."


def model_answers(rows: BuiltRows, answers: dict[str, list[str]], runtime: Runtime, limit: int,
                  rng: random.Random, *, max_new_tokens: int = 64,
                  batch: int = 8) -> tuple[list[PreferencePair], list[SFTExample]]:
    """The model's own answers to ``limit`` answered prompts drawn at random (across both sets and many
    stories): wrong ones as rejected answers, right ones with the gold citation as SFT examples.

    Right means stating a reference answer (``answers`` by question id) without refusing; such an
    answer keeps the model's own wording, and only its citation is set to the gold note, so training on
    it teaches citing without teaching a new way of answering (rejection-sampling fine-tuning).
    """
    answered = [e for e in rows.sft if e.source == "answer"]
    examples = rng.sample(answered, min(limit, len(answered)))
    wrong, right = BuiltRows(), []
    for start in range(0, len(examples), batch):
        chunk = examples[start:start + batch]
        requests = [GenerationRequest(messages=list(e.prompt), max_new_tokens=max_new_tokens) for e in chunk]
        for example, result in zip(chunk, runtime.generate(requests), strict=True):
            text, gold_n = result.text.strip(), cited_numbers(example.completion)
            if not text:
                continue
            states = states_answer(text, answers[example.origin]) and not is_refusal(text)
            if states and cited_numbers(text) == gold_n:
                continue  # already right, citation and all: no pair, nothing to teach
            if states and len(text.split()) <= SELF_ANSWER_WORDS:
                right.append(SFTExample(prompt=example.prompt, completion=cite_only(text, gold_n[0]),
                                        group=example.group, source="self", origin=example.origin))
            else:
                wrong.add_pair(list(example.prompt), example.completion, text, "on_policy",
                               group=example.group, origin=example.origin)
        logger.info("Model answers: %d/%d prompts.", start + len(chunk), len(examples))
    rows.kinds["on_policy"], rows.kinds["self"] = len(wrong.pairs), len(right)
    return wrong.pairs, right


def row_json(row: SFTExample | PreferencePair) -> dict[str, Any]:
    """A row in the schema ``training.data.readers`` reads (``read_sft`` / ``read_preference_pairs``)."""
    common = {"id": row.origin, "group": row.group, "kind": row.source, "prompt": row.prompt}
    if isinstance(row, SFTExample):
        return {**common, "completion": row.completion}
    return {**common, "chosen": row.chosen, "rejected": row.rejected}


def write_jsonl(path: Path, rows: Sequence[SFTExample | PreferencePair]) -> None:
    text = "".join(json.dumps(row_json(row), ensure_ascii=False) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")


@dataclass
class GroundedDataReport:
    """Where the files went, how many rows each kind gave, and what cleaning removed."""

    files: dict[str, str]
    kinds: dict[str, dict[str, int]]
    cleaning: CleaningReport


def load_questions(squad: Path | None, coqa: Path | None, config: BuildConfig,
                   report: CleaningReport) -> list[GroundedQuestion]:
    """The questions of both sets; turns CoQA cannot locate are counted in the report."""
    questions: list[GroundedQuestion] = []
    if squad is not None:
        rows, unlocated = load_squad(squad, config.chunk_words)
        report.record("squad: questions whose answer is whole in one chunk", len(rows) + unlocated,
                      len(rows), "an answer cut by a chunk boundary cannot name the gold chunk")
        questions += rows
    if coqa is not None:
        rows, unlocated = load_coqa(coqa, config.chunk_words, config.history_turns)
        report.record("coqa: turns whose answer locates a passage", len(rows) + unlocated, len(rows),
                      "yes/no and free-form answers cannot name the gold passage")
        questions += rows
    if not questions:
        raise RecipeError("No grounded data to build from: give --squad, --coqa or both.")
    return questions


def build_grounded_data(out_dir: Path, *, squad: Path | None = None, coqa: Path | None = None,
                        config: BuildConfig | None = None, cleaning: CleaningConfig | None = None,
                        runtime: Runtime | None = None, on_policy: int = 0) -> GroundedDataReport:
    """Build, clean and write ``sft_{train,dev}.jsonl``, ``dpo_{train,dev}.jsonl``, the dev split's
    passages as GPTQ calibration texts (``calibration.jsonl``) and the report.

    ``runtime`` with ``on_policy`` > 0 answers that many train prompts with the model: wrong answers
    become rejected ones in ``dpo_on_policy_train.jsonl``, right ones cited as SFT targets in
    ``sft_self_train.jsonl`` (files of their own, so a recipe can weigh them; slow on a CPU: one
    generation each).
    """
    config, cleaning = config or BuildConfig(), cleaning or CleaningConfig()
    report = CleaningReport()
    questions = load_questions(squad, coqa, config, report)
    splits = split_by_group(questions, (1 - config.dev_fraction, config.dev_fraction, 0.0), config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, kinds = {}, {}
    for split, name in (("train", "train"), ("validation", "dev")):
        rows = build_split(splits[split], config)
        answered = sum(e.source == "answer" for e in rows.sft)
        report.record(f"{name}: answers still in the gold source's key sentences",
                      answered + rows.answer_not_shown, answered,
                      "each source shows only its key sentences (source_sentences)")
        outputs = {"sft": rows.sft, "dpo": rows.pairs}
        if runtime is not None and on_policy and split == "train":
            answers = {q.id: q.answers for q in splits[split]}
            outputs["dpo_on_policy"], outputs["sft_self"] = model_answers(
                rows, answers, runtime, on_policy, random.Random(config.seed))
        kinds[name] = dict(rows.kinds) | {"sft": len(rows.sft), "sft abstention": sum(
            e.source == "abstention" for e in rows.sft)}
        for task, data in outputs.items():
            cleaned, _ = clean(data, cleaning, report=report, prefix=f"{task} {name}: ")
            path = out_dir / f"{task}_{name}.jsonl"
            write_jsonl(path, cleaned)
            files[f"{task}_{name}"] = str(path)
            report.splits[f"{task} {name}"] = len(cleaned)
        if name == "dev":
            files["calibration"] = str(write_calibration(out_dir / CALIBRATION_FILE, splits[split]))
    write_report(out_dir, report, kinds)
    return GroundedDataReport(files=files, kinds=kinds, cleaning=report)


def write_calibration(path: Path, questions: Sequence[GroundedQuestion]) -> Path:
    """GPTQ calibration texts: each gold passage of the dev split as serving quotes a source.

    Sources are most of what the served model reads; chunk-sized texts keep GPTQ's layer-by-layer
    passes short on a CPU (its time grows with the calibration tokens).
    """
    passages = list({id(q.gold): q.gold for q in questions}.values())
    texts = [format_sources([passage.hit(1.0)]) for passage in passages]
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts),
                    encoding="utf-8")
    return path


def write_report(out_dir: Path, report: CleaningReport, kinds: dict[str, dict[str, int]]) -> None:
    """``cleaning_report.json`` and ``.md``: each step's counts, the split sizes, the rows per kind."""
    (out_dir / "cleaning_report.json").write_text(
        json.dumps({**report.to_dict(), "kinds": kinds}, indent=2) + "\n", encoding="utf-8")
    lines = [report.to_markdown(), "", "| split | kind | rows |", "|---|---|---:|"]
    lines += [f"| {split} | {kind} | {count} |"
              for split, counts in kinds.items() for kind, count in counts.items()]
    (out_dir / "cleaning_report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
