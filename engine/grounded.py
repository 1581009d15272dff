"""The one grounded-answer path: retrieve from a course, build the cited prompt, generate.

``/v1/ask``, ``/v1/ask/stream``, ``/v1/chat/completions``, the student page and ``tutor eval
answers`` all call ``prepare_answer``, then ``generate_answer`` (or ``stream_answer`` when they
stream), so what is measured is what is served. The reader's short answer, when it finds one, opens
the answer (``engine.reader``). Generation ends at an echo of the prompt or a loop, and both end an
answer that does not say the best note's key sentence with it, quoted and cited (``engine.citations``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from engine.citations import answer_ending, valid_citations, what_was_answered, without_filler_opening
from engine.reader import (
    KEY_SENTENCE_BONUS,
    RANK_PENALTY,
    READ_NOTES,
    ExtractiveReader,
    ShortAnswer,
    asks_yes_or_no,
    last_answer,
    reader_question,
    span_answers,
)
from engine.runtime.base import GenerationRequest, Runtime
from engine.runtime.streaming import stream_text
from engine.support import stems, supported_sentences
from retrieval import NO_CONTEXT_ANSWER, Hit, RetrievalMode, Retriever, build_grounded_prompt
from retrieval.history import FollowUpSettings, last_exchanges, search_conversation
from retrieval.prompt import ECHO_STOPS


@dataclass(frozen=True)
class AnswerOptions:
    """How to retrieve and generate for one question (the server fills it from its settings)."""

    top_k: int = 4
    min_score: float | None = None
    retrieval: RetrievalMode = "hybrid"
    max_new_tokens: int = 256
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    follow_up: FollowUpSettings = FollowUpSettings()  # how earlier turns join the search
    # Key sentences shown per note (the server's TUTOR_SOURCE_SENTENCES); 0: whole chunks.
    source_sentences: int = 3
    # An answer not saying the best note's key sentence ends with it quoted and cited (TUTOR_QUOTE_NOTES).
    quote_notes: bool = True
    # Reads the notes for a short answer that leads the answer (TUTOR_SHORT_ANSWERS); None: no lead.
    reader: ExtractiveReader | None = None
    # The model's sentences using words of neither notes, question nor conversation are dropped
    # (TUTOR_ONLY_SUPPORTED; ``engine.support``). Only where a note is quoted (``quote_notes``).
    only_supported: bool = True
    # The reader's short answer is shown to the model after the question ("Short answer: X [n]").
    short_in_prompt: bool = False


@dataclass
class PreparedAnswer:
    """What to generate, or (``generation is None``) the fixed "not covered" answer.

    ``sources`` are the retrieved chunks in the order the prompt numbers them [1]..[n]; ``notes`` each
    one's key sentences as the model was shown them but chosen without headings, from which the server
    quotes and cites (none when that is off); ``known`` the stems of the sources, the question and the
    conversation, which the model's sentences must keep to (empty: any sentence stands).
    """

    generation: GenerationRequest | None
    sources: list[Hit] = field(default_factory=list)
    retrieval_s: float = 0.0
    question: str = ""
    notes: list[str] = field(default_factory=list)
    short: ShortAnswer | None = None
    known: frozenset[str] = frozenset()

    @property
    def lead(self) -> str:
        """The short answer's line that opens the answer, e.g. ``Levi's Stadium [2].`` ("" without one)."""
        return "" if self.short is None else f"{self.short.text.rstrip('.')} [{self.short.note}].\n\n"

    def cleaned(self, pieces: Iterable[str]) -> Iterable[str]:
        """The model's pieces without citations of no source (``valid_citations``) and, when a note would
        be quoted in its place, without an opening that says nothing ("The answer is [1].",
        ``without_filler_opening``) and without the sentences the notes do not support
        (``supported_sentences``); a plain chat, which has no sources, as the model wrote it."""
        if not self.sources:
            return pieces
        cited = valid_citations(pieces, len(self.sources))
        if not self.notes:
            return cited
        opened = without_filler_opening(cited)
        return supported_sentences(opened, self.known, self.asked_words) if self.known else opened

    @property
    def asked_words(self) -> set[str]:
        """The question's stems, to which a sentence of the model must add one; none for a yes/no
        question: "Friction slows a block." adds no word to "Does friction slow a block?" but answers it."""
        return set() if asks_yes_or_no(self.question) else stems(self.question)

    def addition(self, written: str) -> str:
        """What the server appends to the model's cleaned text: the best note quoted, or its ``[1]`` ("":
        nothing; ``answer_ending``). After a text that was only a filler opening it follows the lead
        directly, without its leading space."""
        added = answer_ending(written, self.question, self.notes)
        return added if written.strip() else added.lstrip()

    def finish(self, written: str) -> tuple[str, str]:
        """The whole answer from the model's cleaned text (``cleaned``), and what the server added to it."""
        added = self.addition(written)
        if not written.strip():
            return self.lead + added, added
        return self.lead + (written.rstrip() + added if added else written), added

    @property
    def fixed_answer(self) -> str | None:
        return NO_CONTEXT_ANSWER if self.generation is None else None


@dataclass
class GroundedAnswer:
    """The answer text, the sources it may cite, and how long each stage took.

    ``added`` is what the server appended to ``text``: the best note's key sentence quoted with its
    ``[1]``, or `` [1]`` alone ("" when the model's answer stands as written); ``short`` the reader's
    span that opens ``text`` on a line of its own.
    """

    text: str
    sources: list[Hit]
    retrieval_s: float
    generation_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    added: str = ""
    short: ShortAnswer | None = None  # the reader's span that leads ``text``

    @property
    def not_covered(self) -> bool:
        return self.text == NO_CONTEXT_ANSWER


def prepare_answer(retriever: Retriever, course: str, question: str, *,
                   conversation: Sequence[dict[str, str]] = (),
                   options: AnswerOptions = AnswerOptions()) -> PreparedAnswer:
    """Retrieve the course's best chunks for ``question`` and build the grounded request.

    ``conversation`` holds the earlier {role, content} turns (user and assistant only): the search
    draws on them (``options.follow_up``), so a follow-up such as "What did he do?" finds the page of
    the person asked about before, and its last ``follow_up.turns`` exchanges sit between the tutor's
    system prompt and the grounded question. The prompt's sources are this search's hits only.
    """
    started = time.perf_counter()
    hits = search_conversation(retriever, course, question, conversation, k=options.top_k,
                               min_score=options.min_score, mode=options.retrieval,
                               settings=options.follow_up)
    if not hits:
        return PreparedAnswer(None, retrieval_s=time.perf_counter() - started)
    # Key sentences are picked with the student's words: this question and the earlier ones.
    earlier = [turn["content"] for turn in conversation if turn["role"] == "user"]
    asked = " ".join([*earlier, question])
    # A quote starts and ends with its sentence, which a chunk may cut: its neighbours hold the rest.
    around = retriever.widen(course, hits, 1) if options.quote_notes else None
    short = None
    if options.reader is not None and asks_yes_or_no(question):
        # "Yes" from the best-ranked chunk, when the reader has a classifier (else nothing: a span would be
        # a phrase, not the answer). Its "No" is not said: a note lacking what the question asks about is
        # more often the wrong note than a no (README, "Short answers": right on 8 of 14 CoQA dev turns).
        said = options.reader.yes_or_no(reader_question(question, conversation), hits[0].text,
                                        asked=question)
        short = said if said is not None and said.text == "Yes" else None
    elif options.reader is not None and span_answers(question, (around or hits)[0].text):
        # The two best-ranked chunks, whole, the second's span needing a lead: retrieval's first rank
        # names the gold page more often than the reader's free choice among all four (README, "Short
        # answers"); a key sentence may miss the answer.
        short = options.reader.read(reader_question(question, conversation),
                                    [hit.text for hit in hits[:READ_NOTES]],
                                    rank_penalty=RANK_PENALTY, asked=question,
                                    key_sentence_bonus=KEY_SENTENCE_BONUS, not_said=last_answer(conversation))
    shown = (short.text, short.note) if short is not None and options.short_in_prompt else None
    prompt = build_grounded_prompt(question, hits, sentences=options.source_sentences, asked=asked,
                                   around=around, short_answer=shown)
    # The model reads the earlier answers as the tutor answered them, not the notes they quoted (which
    # the search keeps: they name the page the conversation is on), and only the last ``follow_up.turns``
    # exchanges, the most the search draws on: every earlier answer would lengthen the prompt it reads
    # before its first token (README, "Follow-up questions"). The window opens with a student's message.
    answered = [{"role": turn["role"], "content": what_was_answered(turn["content"])
                 if turn["role"] == "assistant" else turn["content"]} for turn in conversation]
    history = last_exchanges(answered, options.follow_up.turns)
    if history and history[0]["role"] == "assistant":
        history = history[1:]
    messages = [prompt.messages[0], *history, *prompt.messages[1:]]
    generation = GenerationRequest(messages=messages, max_new_tokens=options.max_new_tokens,
                                   temperature=options.temperature,
                                   stop=list(dict.fromkeys([*options.stop, *ECHO_STOPS])), stop_loops=True)
    known: frozenset[str] = frozenset()
    if options.only_supported:  # the words the model's sentences must keep to (``PreparedAnswer.cleaned``)
        known = frozenset(stems(" ".join([question, *(turn["content"] for turn in answered),
                                          *(hit.text for hit in prompt.sources)])))
    return PreparedAnswer(generation, sources=prompt.sources, retrieval_s=time.perf_counter() - started,
                          question=question, notes=prompt.quotable if options.quote_notes else [],
                          short=short, known=known)


def generate_answer(runtime: Runtime, prepared: PreparedAnswer) -> GroundedAnswer:
    """Run the prepared generation (or return the fixed answer) in one runtime call."""
    if prepared.generation is None:
        return GroundedAnswer(NO_CONTEXT_ANSWER, [], prepared.retrieval_s, 0.0)
    started = time.perf_counter()
    [result] = runtime.generate([prepared.generation])
    text, added = prepared.finish("".join(prepared.cleaned([result.text])))
    return GroundedAnswer(text, prepared.sources, prepared.retrieval_s, time.perf_counter() - started,
                          prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                          finish_reason=result.finish_reason, added=added, short=prepared.short)


def stream_answer(runtime: Runtime, prepared: PreparedAnswer) -> Iterator[str]:
    """The answer piece by piece as it is generated (the fixed answer in one piece), for streaming routes.

    The short answer comes first, before generation starts; what the server adds comes as the last
    piece, as ``generate_answer`` appends it.
    """
    if prepared.generation is None:
        yield NO_CONTEXT_ANSWER
        return
    if prepared.lead:
        yield prepared.lead
    pieces = []
    for piece in prepared.cleaned(stream_text(runtime, prepared.generation)):
        pieces.append(piece)
        yield piece
    if added := prepared.addition("".join(pieces)):
        yield added


def answer_question(retriever: Retriever, runtime: Runtime, course: str, question: str, *,
                    conversation: Sequence[dict[str, str]] = (),
                    options: AnswerOptions = AnswerOptions()) -> GroundedAnswer:
    """Prepare and generate: the whole path, as ``/v1/ask`` answers."""
    prepared = prepare_answer(retriever, course, question, conversation=conversation, options=options)
    return generate_answer(runtime, prepared)
