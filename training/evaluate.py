"""Evaluate a model the way the tutor serves it: perplexity, MCQA accuracy, preferences, BLEU/ROUGE.

Every function takes a loaded ``engine.runtime`` runtime (HF, GPTQ or bitsandbytes weights), so a
quantised folder is measured through the same code that answers students. ``compare_models``
puts two folders side by side: size on disk, load time, generation speed and the quality metrics.

>>> texts = read_texts("notes.txt")                                   # doctest: +SKIP
>>> perplexity(load_runtime("out/q4", data_dir=d), texts).perplexity  # doctest: +SKIP
31.2
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.errors import TrainingError

logger = logging.getLogger(__name__)

COURSE_PREFIX = "course:"


class EvaluationError(TrainingError):
    """An evaluation that cannot run as asked (no texts, an unreadable references file)."""


@dataclass
class PerplexityResult:
    """Token-weighted perplexity: exp(total negative log-likelihood / predicted tokens)."""

    perplexity: float
    tokens: int
    texts: int


@dataclass
class GenerationScores:
    """Corpus BLEU (sacrebleu, 0-100) and mean ROUGE F1 (0-1) of generated answers against references."""

    bleu: float
    rouge1: float
    rougeL: float
    answers: int


@dataclass
class ModelReport:
    """One column of ``tutor eval compare``: what one model folder costs and how well it does."""

    model: str
    size_mb: float
    load_seconds: float
    tokens_per_second: float | None = None
    perplexity: float | None = None
    mcqa_accuracy: float | None = None
    reward_accuracy: float | None = None
    answers: dict[str, dict[str, float | None]] = field(default_factory=dict)  # answer set -> ANSWER_METRICS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- texts ---------------------------------------------------------------------------------------
def read_texts(path: str | Path, min_chars: int = 40) -> list[str]:
    """Paragraphs of a text file (blank-line separated), or one text per line of a .jsonl's "text"."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"Text file {path} does not exist; give a UTF-8 text file or a course name.")
    if path.suffix == ".jsonl":
        from engine.evaluation.questions_file import read_questions

        texts = [str(row.get("text", "")) for row in read_questions(path, lambda row, _: row,
                                                                     error=EvaluationError)]
    else:
        texts = [" ".join(block.split()) for block in path.read_text(encoding="utf-8").split("\n\n")]
    return [text for text in texts if len(text) >= min_chars]


def course_texts(store: Any, course: str, min_chars: int = 40) -> list[str]:
    """The live chunk texts of an ingested course, in source and chunk order."""
    texts = [chunk.text for chunk in store.chunks(course) if len(chunk.text) >= min_chars]
    if not texts:
        raise EvaluationError(f"Course {course!r} has no chunks to read; ingest its PDFs first.")
    return texts


def load_texts(source: str, store_factory: Callable[[], Any] | None = None) -> list[str]:
    """Texts from ``source``: an existing file, or ``course:NAME`` / a bare course name via the store."""
    if Path(source).is_file():
        return read_texts(source)
    course = source.removeprefix(COURSE_PREFIX)
    if store_factory is None:
        raise EvaluationError(f"{source!r} is not a file, and no course store is configured to read it from.")
    return course_texts(store_factory(), course)


def split_texts(texts: Sequence[str], calibration: int, heldout: int) -> tuple[list[str], list[str]]:
    """Disjoint calibration and held-out texts, each evenly spread over the whole source.

    At most half of the texts are held out; calibration takes up to ``calibration`` of the rest.
    """
    if len(texts) < 2:
        raise EvaluationError(f"Calibration and held-out splits need 2 texts or more, not {len(texts)}.")
    held_count = max(1, min(heldout, len(texts) // 2))
    held_index = list(range(1, len(texts), max(2, len(texts) // held_count)))[:held_count]
    held = set(held_index)
    rest = [text for i, text in enumerate(texts) if i not in held]
    step = max(1, len(rest) // calibration)
    return rest[::step][:calibration], [texts[i] for i in held_index]


# -- metrics -------------------------------------------------------------------------------------
def in_steps(call: Callable[[list], list], requests: Sequence, description: str, step: int = 16) -> list:
    """``call(requests)`` a step at a time behind a progress bar with an ETA; results in order.

    The runtime batches within each step as it would in one call; the steps only let the bar move.
    """
    from tqdm.auto import tqdm

    results: list = []
    with tqdm(total=len(requests), desc=description, unit="item", disable=len(requests) <= step) as bar:
        for start in range(0, len(requests), step):
            part = list(requests[start:start + step])
            results.extend(call(part))
            bar.update(len(part))
    return results


def perplexity(runtime: Any, texts: Sequence[str], max_tokens: int = 512) -> PerplexityResult:
    """Perplexity of ``runtime``'s model on ``texts``, each cut to ``max_tokens`` tokens.

    The runtime's rolling log-likelihood scores every token of a text after its first.
    """
    from engine.runtime.base import RollingRequest

    if not texts:
        raise EvaluationError("Perplexity needs at least one held-out text.")
    scores = in_steps(runtime.loglikelihood_rolling,
                      [RollingRequest(text, max_tokens=max_tokens) for text in texts], "perplexity")
    total = -sum(logprob for logprob, _ in scores)
    tokens = sum(count for _, count in scores)
    if tokens == 0:
        raise EvaluationError("The held-out texts are too short to measure perplexity.")
    return PerplexityResult(perplexity=math.exp(total / tokens), tokens=tokens, texts=len(texts))


def mcqa_accuracy(runtime: Any, questions: str | Path, limit: int | None = None) -> float:
    """Log-likelihood MCQA accuracy on a questions JSONL, through the MCQ engine that serves /v1/mcq."""
    from engine.mcq.engine import MCQEngine, MCQOptions
    from engine.mcq.evaluate import evaluate_file

    summary = evaluate_file(MCQEngine(runtime), Path(questions), MCQOptions(method="loglik"), limit=limit)
    if summary.acc is None:
        raise EvaluationError(f"{questions} has no gold answers; MCQA accuracy needs answer_index.")
    return summary.acc


def preference_scores(runtime: Any, pairs: str | Path, limit: int | None = None) -> list[tuple[float, float]]:
    """(chosen, rejected) summed log-probabilities of each preference pair under ``runtime``'s model."""
    from training.metrics import load_pairs, pair_requests

    return in_steps(runtime.pair_logprobs, pair_requests(load_pairs(pairs, limit)), "preference pairs")


def reward_accuracy(policy: list[tuple[float, float]], reference: list[tuple[float, float]],
                    beta: float = 0.1) -> float:
    """DPO reward accuracy of a policy's pair scores against a reference's (training.metrics)."""
    from training.metrics import preference_metrics

    return preference_metrics(policy, reference, beta).reward_accuracy


def read_references(path: str | Path, limit: int | None = None) -> list[dict[str, str]]:
    """{"prompt", "reference"} rows of a JSONL file ("question"/"answer" and "chosen" are accepted too)."""
    from engine.evaluation.questions_file import read_questions

    def parse(row: dict, where: str) -> dict[str, str]:
        prompt = row.get("prompt") or row.get("question")
        reference = row.get("reference") or row.get("answer") or row.get("chosen")
        if not isinstance(prompt, str) or not isinstance(reference, str):
            raise EvaluationError(f"{where}: each row needs a 'prompt' and a 'reference' string.")
        return {"prompt": prompt, "reference": reference}

    rows = read_questions(Path(path), parse, error=EvaluationError)
    if not rows:
        raise EvaluationError(f"{path} holds no prompt/reference rows.")
    return rows[:limit] if limit else rows


def bleu_rouge(answers: Sequence[str], references: Sequence[str]) -> GenerationScores:
    """Corpus BLEU and mean ROUGE-1/ROUGE-L F1 of ``answers`` against one reference each."""
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(answers) != len(references) or not answers:
        raise EvaluationError("BLEU/ROUGE need one answer per reference, and at least one of each.")
    bleu = sacrebleu.corpus_bleu(list(answers), [list(references)]).score
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, ans) for ans, ref in zip(answers, references, strict=True)]
    count = len(scores)
    return GenerationScores(bleu=bleu, rouge1=sum(s["rouge1"].fmeasure for s in scores) / count,
                            rougeL=sum(s["rougeL"].fmeasure for s in scores) / count, answers=count)


def generation_scores(runtime: Any, references: str | Path, limit: int | None = None,
                      max_new_tokens: int = 128) -> GenerationScores:
    """Generate an answer to each prompt of a references file and score it with BLEU and ROUGE."""
    from engine.runtime.base import GenerationRequest

    rows = read_references(references, limit)
    requests = [GenerationRequest(messages=[{"role": "user", "content": row["prompt"]}],
                                  max_new_tokens=max_new_tokens) for row in rows]
    answers = [result.text for result in in_steps(runtime.generate, requests, "generation")]
    return bleu_rouge(answers, [row["reference"] for row in rows])


def tokens_per_second(runtime: Any, new_tokens: int = 64, repeats: int = 2) -> float:
    """Greedy single-request generation speed: generated tokens over wall time (best of ``repeats``)."""
    from engine.runtime.base import GenerationRequest

    request = GenerationRequest(messages=[{"role": "user", "content": "Explain what energy is, in detail."}],
                                max_new_tokens=new_tokens)
    runtime.generate([request])  # warm-up: kernels, caches
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        result = runtime.generate([request])[0]
        best = max(best, result.completion_tokens / (time.perf_counter() - started))
    return best


def folder_size_mb(folder: str | Path) -> float:
    """Bytes of every file under ``folder``, in MB (10**6)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6


# -- grounded answers ----------------------------------------------------------------------------
@dataclass
class AnswerSet:
    """Questions asked from a course through the one grounded-answer path, as ``tutor eval answers``."""

    name: str = field(metadata={"help": "Label in the report, e.g. sciq-dev."})
    file: str = field(metadata={"help": "JSONL questions (tutor eval answers' schema)."})
    course: str = field(metadata={"help": "The ingested course the answers are retrieved from."})
    limit: int | None = field(default=None, metadata={"help": "Ask only the first N questions."})


# (label, AnswerSummary field): what the report shows of each answer set.
ANSWER_METRICS = [
    ("answer correct", "correct"),
    ("answer F1", "f1"),
    ("short answer F1", "short_f1"),
    ("citation precision", "citation_precision"),
    ("uncited answers", "uncited"),
    ("malformed citations", "malformed"),
    ("false refusals", "false_refusals"),
    ("answer p50 latency (s)", "latency_p50_s"),
]


def answer_scores(runtime: Any, answer_set: AnswerSet, retriever: Any,
                  options: Any) -> dict[str, float | None]:
    """Ask the set's questions as /v1/ask does (``options``: the server's AnswerOptions) and keep the
    report's metrics of the summary."""
    from engine.evaluation.answers import evaluate_answers, read_answer_items

    items = read_answer_items(Path(answer_set.file), limit=answer_set.limit)
    summary = evaluate_answers(items, retriever, runtime, answer_set.course, options=options)
    return {key: None if getattr(summary, key) is None else round(getattr(summary, key), 4)
            for _, key in ANSWER_METRICS}


# -- comparisons ---------------------------------------------------------------------------------
@dataclass
class EvalSuite:
    """What to measure on each model; a metric whose input is None is left out of the report."""

    heldout_texts: list[str] | None = None
    questions: Path | None = None
    question_limit: int | None = None
    pairs: Path | None = None
    pair_limit: int | None = None
    reference_scores: list[tuple[float, float]] | None = None  # the reward-accuracy reference's pair scores
    speed_tokens: int = 64
    beta: float = 0.1
    answer_sets: list[AnswerSet] = field(default_factory=list)
    retriever: Any = None  # a retrieval.Retriever over the answer sets' courses
    answer_options: Any = None  # engine.grounded.AnswerOptions: the server's settings


def evaluate_runtime(runtime: Any, folder: str | Path, suite: EvalSuite) -> ModelReport:
    """Measure one loaded model with ``suite``; ``folder`` gives the size on disk."""
    report = ModelReport(model=str(folder), size_mb=round(folder_size_mb(folder), 2),
                         load_seconds=round(getattr(runtime, "load_seconds", float("nan")), 2))
    if suite.speed_tokens:
        report.tokens_per_second = round(tokens_per_second(runtime, suite.speed_tokens), 2)
    if suite.heldout_texts:
        report.perplexity = round(perplexity(runtime, suite.heldout_texts).perplexity, 4)
    if suite.questions is not None:
        report.mcqa_accuracy = round(mcqa_accuracy(runtime, suite.questions, suite.question_limit), 4)
    if suite.pairs is not None and suite.reference_scores is not None:
        scores = preference_scores(runtime, suite.pairs, suite.pair_limit)
        report.reward_accuracy = round(reward_accuracy(scores, suite.reference_scores, suite.beta), 4)
    for answer_set in suite.answer_sets:
        if suite.retriever is None:
            raise EvaluationError(f"The answer set {answer_set.name!r} needs a course retriever; "
                                  "pass EvalSuite.retriever (tutor pipeline opens the configured store).")
        report.answers[answer_set.name] = answer_scores(runtime, answer_set, suite.retriever,
                                                        suite.answer_options)
    logger.info("Evaluated %s: %s", folder, report.to_dict())
    return report


def evaluate_folder(model: str | Path | None, suite: EvalSuite, *, data_dir: str | Path, device: str = "cpu",
                    **runtime_options: Any) -> ModelReport:
    """Load ``model`` (HF, GPTQ or GGUF) with ``engine.runtime``, evaluate it, and release it."""
    from engine.runtime import load_runtime

    runtime = load_runtime(None if model is None else str(model), data_dir=data_dir, device=device,
                           **runtime_options)
    return evaluate_runtime(runtime, runtime.folder, suite)


def reference_pair_scores(reference: str | Path | None, suite: EvalSuite, *, data_dir: str | Path,
                          device: str = "cpu") -> list[tuple[float, float]] | None:
    """The reward-accuracy reference's pair scores (the packaged base model when ``reference`` is None)."""
    if suite.pairs is None:
        return None
    from engine.runtime import load_runtime

    runtime = load_runtime(None if reference is None else str(reference), data_dir=data_dir, device=device)
    return preference_scores(runtime, suite.pairs, suite.pair_limit)


METRIC_ROWS = [
    ("size on disk (MB)", "size_mb"),
    ("load time (s)", "load_seconds"),
    ("tokens/s", "tokens_per_second"),
    ("perplexity", "perplexity"),
    ("MCQA accuracy", "mcqa_accuracy"),
    ("reward accuracy", "reward_accuracy"),
]


def comparison_table(reports: Sequence[ModelReport], names: Sequence[str] | None = None) -> str:
    """A markdown table: one row per metric, one column per model."""
    names = list(names or [Path(r.model).name for r in reports])
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]

    def row(label: str, values: Sequence[float | None]) -> None:
        cells = ["—" if value is None else f"{value:g}" for value in values]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for label, key in METRIC_ROWS:
        row(label, [getattr(report, key) for report in reports])
    for answer_set in dict.fromkeys(name for report in reports for name in report.answers):
        for label, key in ANSWER_METRICS:
            row(f"{label}, {answer_set}", [report.answers.get(answer_set, {}).get(key) for report in reports])
    return "\n".join(lines)
