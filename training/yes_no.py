"""Train the reader's yes/no classifier (``engine.reader.YesNoClassifier``): "Was she married?" is
answered yes or no, which no span of a note says.

It starts from the trained reader's encoder (adapter merged), adds an adapter of its own and a two-way
head on [CLS], and learns from BoolQ (question, Wikipedia passage, yes or no) and from the grounded train
split's CoQA turns asked and answered yes or no, each on the 100-word chunk of its story that shares
most words with the question (CoQA gives no passage for them). Its dev score is the accuracy on the dev
split's CoQA yes/no turns, beside the share a constant "yes" gets. The split is the reader's
(``tutor data grounded``'s), so the stories ``tutor eval answers`` asks about stay unseen.

Trained on those alone it answered from what such questions tend to be, not from the passage: "Yes" to
"Is insulin made by the liver?" of a note naming the pancreas (``bench.yes_no_probes``). So a share of
the examples come again with one word of the passage swapped for a word of the same kind from other
passages (``edited``): where the word is one the question asks about, the passage no longer says what
the question does and the answer becomes no; where it is another word, the answer stays. Both kinds of
edit leave an odd word in the passage, so only whether the question's word is still there tells them
apart.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from engine.evaluation.answer_metrics import normalize_answer
from engine.reader import (
    ADAPTER_FILE,
    CONFIG_FILE,
    WORD,
    YES_NO_FILE,
    YES_NO_MIN_MARGIN,
    ExtractiveReader,
    YesNoClassifier,
    asks_yes_or_no,
    reader_question,
)
from retrieval.history import FUNCTION_WORDS
from retrieval.lexical import LexicalSettings, tokenize
from training.data.grounded import BuildConfig, chunk_story, content_words
from training.data.schema import RowCollector, iter_jsonl
from training.errors import DataFormatError
from training.reader import adapter_tensors, add_low_rank, fit, grounded_split, swap_in, write_record

logger = logging.getLogger(__name__)


@dataclass
class YesNoConfig:
    """How the classifier is trained (``tutor train yes-no`` options)."""

    epochs: float = 2.0
    batch_size: int = 16
    learning_rate: float = 5e-4  # at 1e-3 (rank 32, 3 epochs) it collapsed to one answer for every input
    rank: int = 16
    alpha: float = 32.0
    max_length: int = 256  # question and passage tokens in training (serving reads up to 384)
    seed: int = 0
    max_steps: int | None = None  # a cap for smoke runs
    # Share of the examples that come again with a word of the passage the question asks about swapped
    # (answered no, when they were answered yes), and with another word swapped (answer kept): ``edited``.
    edit_share: float = 0.5
    build: BuildConfig = field(default_factory=BuildConfig)  # chunks and the split, as the reader's


@dataclass(frozen=True)
class YesNoExample:
    question: str  # as the reader reads it: a follow-up after the last exchange
    passage: str
    yes: bool
    asked: str = ""  # the question alone, which ends ``question``: the words an edit may take away


# The words an edit may swap: numbers, names (capitalised, not opening a sentence) and other content words.
WORD_KINDS = ("number", "name", "word")


def word_kind(word: str, opens_sentence: bool) -> str | None:
    """What kind of word ``word`` is for a swap (None: not one to swap, as "is" or "the")."""
    if word[0].isdigit():
        return "number"
    if len(word) < 4 or word.lower() in FUNCTION_WORDS:
        return None
    if word[0].isupper():
        return None if opens_sentence else "name"
    return "word"


def swappable(passage: str) -> list[tuple[str, str]]:
    """The words of ``passage`` an edit may swap, with their kinds, in order."""
    words = []
    for match in WORD.finditer(passage):
        opens = not passage[:match.start()].rstrip() or passage[:match.start()].rstrip()[-1] in ".!?\"'"
        if (kind := word_kind(match.group(), opens)) is not None:
            words.append((match.group(), kind))
    return words


def swap_pool(passages: Sequence[str]) -> dict[str, list[str]]:
    """The distinct words of each kind in ``passages``, to draw swaps from."""
    pool: dict[str, set[str]] = {kind: set() for kind in WORD_KINDS}
    for passage in passages:
        for word, kind in swappable(passage):
            pool[kind].add(word)
    return {kind: sorted(words) for kind, words in pool.items()}


def stems(text: str) -> set[str]:
    """The words of ``text`` as the lexical index compares them (stemmed, stop words dropped)."""
    [words] = tokenize([text], LexicalSettings())
    return set(words)


def edited(example: YesNoExample, pool: dict[str, list[str]], rng: random.Random, *,
           asked_word: bool) -> YesNoExample | None:
    """``example`` with every occurrence of one word of its passage swapped for a word of the same kind
    that neither passage nor question holds, drawn from ``pool``. ``asked_word``: a word of the question
    (``asked``), gone from the passage in every form afterwards, and the answer is no ("Tom was married to
    Anna" -> "... to Maria" for "Was Tom married to Anna?"); else a word sharing no stem with the question,
    and the answer is kept. None when no word can be swapped so."""
    asked = example.asked or example.question
    asked_stems, question_stems = stems(asked), stems(example.question)
    passage_words = swappable(example.passage)
    held = {word.lower() for word, _ in passage_words} | set(example.question.lower().split())
    candidates = list(dict.fromkeys((word.lower(), kind) for word, kind in passage_words))
    rng.shuffle(candidates)
    for word, kind in candidates:
        word_stems = stems(word)
        if asked_word != bool(word_stems & asked_stems) or (not asked_word and word_stems & question_stems):
            continue
        fresh = [w for w in rng.sample(pool[kind], min(20, len(pool[kind]))) if w.lower() not in held]
        if not fresh:
            continue
        swaps = {False: fresh[0], True: fresh[0][0].upper() + fresh[0][1:]}  # by the occurrence's case
        passage = re.sub(rf"\b{re.escape(word)}\b", lambda m, swaps=swaps: swaps[m.group()[0].isupper()],
                         example.passage, flags=re.IGNORECASE)
        if asked_word and word_stems & stems(passage):
            continue  # another form of it is still there ("marry" after "married" went)
        return YesNoExample(example.question, passage, example.yes and not asked_word, example.asked)
    return None


def edited_examples(examples: Sequence[YesNoExample], share: float, rng: random.Random) -> list[YesNoExample]:
    """For a ``share`` of the examples answered yes, the passage edited to answer no; for a ``share`` of
    all, the passage edited leaving the answer (``edited``)."""
    pool = swap_pool(sorted({row.passage for row in examples}))
    made = [edited(row, pool, rng, asked_word=True) for row in examples if row.yes and rng.random() < share]
    made += [edited(row, pool, rng, asked_word=False) for row in examples if rng.random() < share]
    return [row for row in made if row is not None]


def read_boolq(path: Path) -> list[YesNoExample]:
    """BoolQ rows ``{question, passage, answer}`` (``answer`` true or false), a question mark added.

    Every bad row is listed, ``file:line`` and why, before anything trains."""
    collector = RowCollector(path, "skip")
    for number, row in iter_jsonl(path, collector):
        question, passage, answer = row.get("question"), row.get("passage"), row.get("answer")
        if not isinstance(answer, bool) or not str(question or "").strip() or not str(passage or "").strip():
            collector.refuse(number, "'answer' must be true or false, and question and passage non-empty")
            continue
        asked = str(question).strip().rstrip("?") + "?"
        collector.add(YesNoExample(asked, str(passage), answer, asked))
    if collector.result.bad_rows:
        raise DataFormatError("; ".join(map(str, collector.result.bad_rows)))
    return collector.result.rows


def coqa_yes_no(path: Path, groups: set[str], chunk_words: int) -> list[YesNoExample]:
    """The turns of the stories in ``groups`` that ask yes or no and are answered so, each with the
    exchange before it (as the reader reads a follow-up) on its story's closest chunk."""
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if f"coqa:{row['id']}" not in groups:
                continue
            chunks = chunk_story(row["story"], chunk_words)
            keys = [content_words(chunk) for chunk in chunks]
            earlier: list[dict[str, str]] = []
            for turn in row["turns"]:
                answer = normalize_answer(turn["answers"][0]) if turn["answers"] else ""
                if asks_yes_or_no(turn["question"]) and answer in ("yes", "no"):
                    question = reader_question(turn["question"], earlier)
                    words = content_words(question)
                    closest = max(range(len(chunks)), key=lambda i: len(words & keys[i]))
                    examples.append(YesNoExample(question, chunks[closest], answer == "yes",
                                                 turn["question"]))
                earlier += [{"role": "user", "content": turn["question"]},
                            {"role": "assistant", "content": turn["answers"][0] if turn["answers"] else ""}]
    return examples


def dev_scores(reader: ExtractiveReader, examples: Sequence[YesNoExample]) -> dict[str, float]:
    """Accuracy of the classifier on ``examples`` over all of them (no gate) and, with the served gate
    (``YES_NO_MIN_MARGIN``), the share it answers and its accuracy on those; a constant "yes" beside."""
    ungated = [reader.yes_or_no(row.question, row.passage, asked=row.asked, min_margin=0.0)
               for row in examples]
    right = [answer is not None and (answer.text == "Yes") == row.yes
             for answer, row in zip(ungated, examples, strict=True)]
    gated = [r for answer, r in zip(ungated, right, strict=True)
             if answer is not None and answer.margin >= YES_NO_MIN_MARGIN]
    count = max(1, len(examples))
    return {"coqa yes/no accuracy": round(sum(right) / count, 3),
            "coqa answered at the gate": round(len(gated) / count, 3),
            "coqa accuracy when answered": round(sum(gated) / max(1, len(gated)), 3),
            "coqa yes share": round(sum(row.yes for row in examples) / count, 3),
            "coqa yes/no turns": len(examples)}


def encode(tokenizer, rows: Sequence[YesNoExample], max_length: int) -> dict[str, torch.Tensor]:
    return tokenizer([r.question for r in rows], [r.passage for r in rows], truncation="only_second",
                     max_length=max_length, padding=True, return_tensors="pt")


def train_yes_no(reader_dir: Path, *, squad: Path | None, coqa: Path, boolq: Path | None,
                 config: YesNoConfig | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Train on the reader in ``reader_dir``, write ``yes_no.safetensors`` there and its record in
    ``reader.json`` (key ``yes_no``), and return the dev scores."""
    from safetensors.torch import save_file

    config = config or YesNoConfig()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    splits = grounded_split(squad, coqa, config.build)  # the reader's
    train = coqa_yes_no(coqa, {q.group for q in splits["train"]}, config.build.chunk_words)
    dev = coqa_yes_no(coqa, {q.group for q in splits["validation"]}, config.build.chunk_words)
    train += read_boolq(boolq) if boolq is not None else []
    if not train:
        raise DataFormatError("No yes/no examples to train on: give BoolQ rows or CoQA yes/no turns.")
    edits = edited_examples(train, config.edit_share, rng)
    logger.info("Yes/no: %d edited passages, %d of them answered no by the edit.", len(edits),
                sum(not row.yes for row in edits))
    train += edits
    reader = ExtractiveReader.load(reader_dir)
    classifier = YesNoClassifier(copy.deepcopy(reader.model.bert))
    low_rank = add_low_rank(classifier, config.rank, config.alpha, head=classifier.head)
    logger.info("Yes/no: %d train examples, %d dev CoQA turns.", len(train), len(dev))
    started = time.monotonic()
    steps = fit(classifier, train,
                lambda rows: nn.functional.cross_entropy(
                    classifier(**encode(reader.tokenizer, rows, config.max_length)),
                    torch.tensor([int(r.yes) for r in rows])),
                config, rng, progress)
    tensors = adapter_tensors(low_rank, classifier.head, "head")
    scores: dict[str, float] = {}

    def written(staging: Path) -> dict:
        shutil.copy2(reader_dir / ADAPTER_FILE, staging / ADAPTER_FILE)  # to load it there; stays as it is
        save_file(tensors, str(staging / YES_NO_FILE))
        record = json.loads((staging / CONFIG_FILE).read_text(encoding="utf-8"))
        record["yes_no"] = {"rank": config.rank, "alpha": config.alpha, "train_examples": len(train),
                            "edited": len(edits),
                            "steps": steps, "train_seconds": round(time.monotonic() - started),
                            "config": {k: v for k, v in asdict(config).items() if k != "build"}}
        write_record(staging, record)
        served = ExtractiveReader.load(staging)  # scored as served: merged, from the float16 file
        scores.update(dev_scores(served, dev))
        record["yes_no"]["dev"] = scores
        return record

    swap_in(reader_dir, written, (YES_NO_FILE,))
    return scores
