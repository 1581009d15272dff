"""Follow-up questions: search with the conversation's earlier turns, not the last question alone.

"What did he do?" after "Who was the actor?" shares no word with the page about the actor, so
every conversational path (chat completions, ``/v1/ask`` with ``history``, the student page) searches
through ``search_conversation``. The answer still cites only what this search returns. Strategies:

- ``none``: the question alone, as a first turn is searched.
- ``gate`` (the default): the question alone when it finds a page on its own (its best dense match
  reaches ``standalone_score``: "Who was driven out of Italy?"), else ``decay`` with the question
  alone's ranking weighted ``alone_weight`` ("What did he do?"): the conversation picks the page, and
  the chunk of that page that ``decay`` with equal weights ranks highest leads. A student who changes
  subject without starting over asks a question of the first kind. A question that names nothing
  (``leans_on_conversation``: "Where was she headed?") never decides alone, whatever its match, and
  draws on the last ``leaning_turns`` exchanges rather than ``turns``: it cannot change the subject, and
  the last two exchanges ("Was he walking fast?" "No.") may not name the page.
- ``concat``: one search for the question followed by the last ``turns`` exchanges (the student's
  messages and the tutor's answers), most recent first: the question leads, so a long earlier
  answer cut off by the embedder's token limit never cuts the question off.
- ``decay``: the question alone and the question with 1, 2, ... ``turns`` earlier exchanges, each
  searched; each ranking's scores are divided by its best and summed with weights 1, ``decay``,
  ``decay``², .... The windows nest, so even with equal weights (the default) the question counts in
  every search, the last exchange in all but one and older ones in fewer: a new subject still finds
  its own page, where one concatenated search is pulled back to the old one.

A first turn (no earlier message) is searched exactly as before, whatever the strategy. With
earlier turns, ``min_score`` (a dense cosine, as in ``Retriever``) decides only whether the course
covers the question (``covers``): the question alone reaches it, or the question with its last one
or two exchanges does and stays on their subject. The question alone is not enough ("Whom?" matches
nothing), and the conversation alone is too much (any question after a covered one would pass): a
question continues the conversation when adding it to the last two exchanges lowers their best match
by less than ``continues_margin``, where a question on another subject dilutes them. A question that
names nothing of its own ("How many?") after a turn the tutor answered is covered whatever its match
(``follows_an_answer``): it cannot change the subject. Measured on two CoQA courses in the README
("Follow-up questions").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from retrieval.prompt import NO_CONTEXT_ANSWER
from retrieval.search import Hit, RetrievalMode

FollowUpStrategy = Literal["none", "gate", "concat", "decay"]
STRATEGIES: tuple[str, ...] = get_args(FollowUpStrategy)
CONVERSATION_ROLES = frozenset({"user", "assistant"})
CITATION_MARK = re.compile(r"\[\d+\]")
# Words that name nothing a page is about: question words, auxiliaries, pronouns, prepositions (they cannot
# tell passages apart, and a question made of them needs the conversation to be searched).
FUNCTION_WORDS = frozenset(
    "what which who whom whose when where why how is are was were be been do does did of in on at to for "
    "from by with and or but not no it its this that these those he she they his her their them as than "
    "then there about into can could would should will has have had many much".split()
)
# Words that point back to what the conversation was about ("Where was she headed?"); not "there", which
# as often asks whether something exists ("Is there friction?").
POINTING_BACK = frozenset("he she it they him her them his hers its their theirs this that these those"
                          .split())
WORD = re.compile(r"[a-z0-9]+")


class UnknownFollowUpStrategyError(ValueError):
    """A follow-up strategy that is not one of STRATEGIES; the message lists them."""

    def __init__(self, strategy: str):
        close = difflib.get_close_matches(strategy, STRATEGIES, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        super().__init__(f"Unknown follow-up strategy {strategy!r}.{hint} "
                         f"Use one of: {', '.join(STRATEGIES)}.")


class Searcher(Protocol):
    """What ``search_conversation`` needs of a retriever: ``Retriever.search`` and ``search_many``."""

    def search(self, course: str, question: str, *, k: int = 4, min_score: float | None = None,
               mode: RetrievalMode = "dense") -> list[Hit]: ...

    def search_many(self, course: str, questions: list[str], *, k: int = 4, min_score: float | None = None,
                    mode: RetrievalMode = "dense") -> list[list[Hit]]: ...


@dataclass(frozen=True)
class FollowUpSettings:
    """How a question with earlier turns is searched.

    Args:
        strategy: "none", "gate", "concat" or "decay" (see the module docstring).
        turns: earlier exchanges (a student message and the tutor's answer) the search draws on, and
            the most the model reads (``engine.grounded.prepare_answer``).
        leaning_turns: the exchanges the search draws on for a question that names nothing of its own
            (``leans_on_conversation``: "How many?"), which cannot change the subject: the more of the
            conversation, the surer its page.
        decay: the weight of each further exchange's ranking in "decay" (the question alone weighs 1).
        candidates: chunks taken from each ranking before fusing in "decay" (at least k).
        standalone_score: in "gate", the dense cosine at which the question alone decides the search
            (all-MiniLM-L6-v2's scale, like ``TUTOR_MIN_SCORE``).
        alone_weight: in "gate", the weight of the question alone's ranking below that score.
        continues_margin: how much a question may lower the best dense match of the last two exchanges
            and still count as continuing them, for "covered" (``covers``).
    """

    # Chosen on two CoQA courses (README, "Follow-up questions"): over decay with equal weights, the default
    # before it, gate ranked the story's page first for more later turns and more changes of subject.
    strategy: FollowUpStrategy = "gate"
    turns: int = 2
    # Chosen on two CoQA courses (README, "Follow-up questions"): later turns' first hit on the story's page
    # rose with the window up to 6 exchanges, and a change of subject names something, so is not searched so.
    leaning_turns: int = 6
    decay: float = 1.0
    candidates: int = 30
    standalone_score: float = 0.45
    alone_weight: float = 0.2
    # Chosen on two CoQA courses, each with off-topic questions asked mid-conversation (README, "Follow-up
    # questions"): fewer follow-ups refused and more changes of subject refused than the last exchange alone.
    continues_margin: float = 0.1

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise UnknownFollowUpStrategyError(self.strategy)
        if self.turns < 0 or self.leaning_turns < 0 or not 0 < self.decay <= 1 or self.candidates < 1:
            raise ValueError(f"Follow-up settings turns={self.turns}, leaning_turns={self.leaning_turns}, "
                             f"decay={self.decay}, candidates={self.candidates} are out of range; use turns "
                             ">= 0, leaning_turns >= 0, 0 < decay <= 1 and candidates >= 1.")


def last_exchanges(conversation: Sequence[dict[str, str]], turns: int) -> list[dict[str, str]]:
    """The user and assistant messages of the last ``turns`` exchanges, oldest first."""
    messages = [m for m in conversation if m.get("role") in CONVERSATION_ROLES]
    return messages[max(0, len(messages) - 2 * turns):]


def earlier_messages(conversation: Sequence[dict[str, str]], turns: int) -> list[str]:
    """The texts of the last ``turns`` exchanges (user and assistant messages), most recent first.

    The tutor's [n] citation marks and its fixed "not covered" answer say nothing about the subject,
    so they are left out of the search.
    """
    messages = last_exchanges(conversation, turns)
    texts = [" ".join(CITATION_MARK.sub(" ", str(m["content"])).split()) for m in messages
             if m["content"] != NO_CONTEXT_ANSWER]
    return [text for text in texts if text][::-1]


def follow_up_queries(question: str, conversation: Sequence[dict[str, str]], settings: FollowUpSettings,
                      alone_score: float | None = None) -> list[tuple[str, float]]:
    """The (query, weight) searches for ``question``: the question alone when there is nothing earlier.

    ``alone_score`` is the best dense match of the question alone, which "gate" decides by. A question that
    names nothing of its own draws on ``settings.leaning_turns`` exchanges instead of ``settings.turns``.
    """
    leans = leans_on_conversation(question)
    most = settings.leaning_turns if leans else settings.turns
    earlier = earlier_messages(conversation, most)
    if settings.strategy == "none" or not earlier:
        return [(question, 1.0)]
    if (settings.strategy == "gate" and alone_score is not None and alone_score >= settings.standalone_score
            and not leans):
        return [(question, 1.0)]
    if settings.strategy == "concat":
        return [(" ".join([question, *earlier]), 1.0)]
    alone_weight = settings.alone_weight if settings.strategy == "gate" else 1.0
    queries, previous = [(question, alone_weight)], [question]
    for turns in range(1, most + 1):
        window = [question, *earlier_messages(conversation, turns)]
        if window != previous:  # an exchange that adds nothing (only a refusal) adds no search
            queries.append((" ".join(window), settings.decay ** turns))
        previous = window
    return queries


def leans_on_conversation(question: str) -> bool:
    """Whether ``question`` names nothing to search for without the conversation: only function words
    ("To whom?", "Where was he?"), or a word pointing back and at most one other ("Where was she headed?").
    Such a question's own best match is chance ("Where was she headed?" reached 0.48 on another story's
    page), so "gate" never lets it decide the search alone; "What is entropy?" names its subject and
    still may."""
    words = WORD.findall(question.lower())
    named = [word for word in words if word not in FUNCTION_WORDS and word not in POINTING_BACK]
    return not named or (len(named) <= 1 and any(word in POINTING_BACK for word in words))


def coverage_queries(question: str, conversation: Sequence[dict[str, str]]) -> list[str]:
    """The texts whose best dense matches decide "covered" (``covers``): the question alone; when there
    are earlier exchanges, also the question with the last one, with the last two, and those two alone."""
    last, last_two = earlier_messages(conversation, 1), earlier_messages(conversation, 2)
    if not last:
        return [question]
    return [question, " ".join([question, *last]), " ".join([question, *last_two]), " ".join(last_two)]


def covers(best: Sequence[float], min_score: float, continues_margin: float) -> bool:
    """Whether the course covers a question, from the best dense matches of its ``coverage_queries``.

    The question alone reaches ``min_score``; or, asked after earlier exchanges, it reaches it with the
    last one or two, and adding it to the last two lowers their best match by less than
    ``continues_margin``. "When was the last census taken?" after an exchange about the Bronx keeps the
    match; a question on another subject pulls it down, though the exchanges alone would pass.
    """
    if best[0] >= min_score:
        return True
    if len(best) < 4:
        return False
    with_last, with_two, exchanges = best[1:4]
    return max(with_last, with_two) >= min_score and with_two > exchanges - continues_margin


def follows_an_answer(question: str, conversation: Sequence[dict[str, str]]) -> bool:
    """Whether ``question`` names nothing of its own (``leans_on_conversation``: "How many?", "What is it
    called?") and the tutor answered the last turn: it asks more about a subject the course covers, and
    cannot change it. Its words match no page ("and?": 0.18 on the CoQA dev course) and a short exchange
    may match its page little better ("How many?" after "Are there other categories?" and "Yes": 0.26),
    so ``covers`` alone would refuse it."""
    answers = [turn["content"] for turn in conversation if turn.get("role") == "assistant"]
    return bool(answers) and answers[-1] != NO_CONTEXT_ANSWER and leans_on_conversation(question)


def fuse_weighted(rankings: Sequence[tuple[float, Sequence[Hit]]]) -> list[Hit]:
    """Hits of every ranking by the weighted sum of their scores, each divided by its ranking's best.

    The sum is divided by the total weight, so a chunk first in every ranking scores 1.
    """
    total = sum(weight for weight, _ in rankings) or 1.0
    fused: dict[Hashable, float] = {}
    hits: dict[Hashable, Hit] = {}
    for weight, ranking in rankings:
        best = max((hit.score for hit in ranking), default=0.0)
        if best <= 0:
            continue
        for hit in ranking:
            key = _key(hit)
            hits.setdefault(key, hit)
            fused[key] = fused.get(key, 0.0) + weight * max(hit.score, 0.0) / best
    order = sorted(fused.items(), key=lambda item: item[1], reverse=True)
    return [_rescored(hits[key], score / total) for key, score in order]


def _key(hit: Hit) -> Hashable:
    return hit.source, hit.chunk_index, hit.page, hit.page_end


def _rescored(hit: Hit, score: float) -> Hit:
    return Hit(text=hit.text, score=score, source=hit.source, page=hit.page, page_end=hit.page_end,
               chunk_index=hit.chunk_index)


def best_dense_scores(retriever: Searcher, course: str, texts: Sequence[str]) -> list[float]:
    """The best dense match of each of ``texts`` (-1 for none), searched in one batch: embedding them
    together costs about what one of them does."""
    found = retriever.search_many(course, list(texts), k=1, mode="dense")
    return [hits[0].score if hits else -1.0 for hits in found]


def search_conversation(retriever: Searcher, course: str, question: str,
                        conversation: Sequence[dict[str, str]] = (), *, k: int = 4,
                        min_score: float | None = None, mode: RetrievalMode = "hybrid",
                        settings: FollowUpSettings = FollowUpSettings()) -> list[Hit]:
    """The ``k`` best chunks for ``question`` asked after ``conversation`` (earlier {role, content} turns).

    Without earlier turns (or with strategy "none") this is ``retriever.search`` unchanged.
    """
    if settings.strategy == "none" or not earlier_messages(conversation, settings.turns):
        return retriever.search(course, question, k=k, min_score=min_score, mode=mode)
    # The dense scores decide "covered" and, under "gate", whether the question is searched alone.
    scored = min_score is not None or settings.strategy == "gate"
    best = best_dense_scores(retriever, course, coverage_queries(question, conversation)) if scored else []
    if (min_score is not None and not covers(best, min_score, settings.continues_margin)
            and not follows_an_answer(question, conversation)):
        return []
    queries = follow_up_queries(question, conversation, settings, alone_score=best[0] if best else None)
    if len(queries) == 1:
        return retriever.search(course, queries[0][0], k=k, mode=mode)
    found = retriever.search_many(course, [text for text, _ in queries], k=max(k, settings.candidates),
                                  mode=mode)
    fused = fuse_weighted([(weight, hits) for (_, weight), hits in zip(queries, found, strict=True)])
    if settings.strategy == "gate":  # page by the conversation, chunk by the question and the last exchanges
        nearest = found[:settings.turns + 1]
        fused = lead_with_chunk_of_first_page(fused, fuse_weighted([(1.0, hits) for hits in nearest]))
    return fused[:k]


def lead_with_chunk_of_first_page(ranking: Sequence[Hit], chunk_order: Sequence[Hit]) -> list[Hit]:
    """``ranking`` led by the chunk of its first page that ``chunk_order`` ranks highest.

    The reader reads the first chunk first and ``[1]`` cites it: under "gate" the conversation finds the page
    more reliably, while the question alone's full weight finds the chunk on it that answers (README,
    "Follow-up questions"). The promoted chunk takes the first score, so scores still fall.
    """
    if not ranking:
        return []
    page = (ranking[0].source, ranking[0].page)
    position = {_key(hit): n for n, hit in enumerate(chunk_order)}
    lead = min((hit for hit in ranking if (hit.source, hit.page) == page),
               key=lambda hit: position.get(_key(hit), len(position)))
    if lead is ranking[0]:
        return list(ranking)
    return [_rescored(lead, ranking[0].score), *(hit for hit in ranking if hit is not lead)]


def parse_history(value: object) -> list[dict[str, str]]:
    """Earlier turns as given in a file or request: a list of {"role": "user"|"assistant", "content": str}.

    Raises ValueError naming the first bad turn, for the caller to prefix with where it was read.
    """
    if not isinstance(value, list):
        raise ValueError("'history' must be a list of {\"role\": \"user\" or \"assistant\", \"content\": "
                         "text} turns, oldest first.")
    turns = []
    for number, turn in enumerate(value, start=1):
        if (not isinstance(turn, dict) or turn.get("role") not in CONVERSATION_ROLES
                or not isinstance(turn.get("content"), str)):
            raise ValueError(f"history turn {number} is {turn!r}; each turn needs \"role\" (user or "
                             "assistant) and \"content\" (text).")
        turns.append({"role": turn["role"], "content": turn["content"]})
    return turns
