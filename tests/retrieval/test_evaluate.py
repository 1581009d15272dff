"""Page-level retrieval metrics and `tutor eval retrieval` on a small course (hashing embedder)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app
from retrieval import Hit, Retriever
from retrieval.evaluate import (
    GoldFileError,
    GoldItem,
    bootstrap_interval,
    evaluate_coverage,
    evaluate_mode,
    first_relevant_rank,
    item_metrics,
    load_gold,
)
from tests.retrieval.test_lexical_and_modes import COURSE, store  # noqa: F401  (the fixture)
from tests.utils.embedding import HashingEmbedder


def hit(source: str, page: int, page_end: int | None = None) -> Hit:
    return Hit(text="", score=0.5, source=source, page=page, page_end=page_end or page, chunk_index=0)


def test_a_chunk_counts_when_its_pages_overlap_the_gold_range():
    item = GoldItem(question="q", source="a.pdf", page=4, page_end=5, id="1")
    hits = [hit("b.pdf", 4), hit("a.pdf", 2, 3), hit("a.pdf", 5, 6), hit("a.pdf", 4)]
    assert first_relevant_rank(hits, item) == 3
    assert first_relevant_rank(hits[:2], item) is None


def test_metrics_follow_the_rank_of_the_first_relevant_chunk():
    assert item_metrics(1) == {"recall@1": 1, "recall@3": 1, "recall@5": 1, "recall@10": 1, "mrr@10": 1,
                               "ndcg@10": 1}
    third = item_metrics(3)
    assert (third["recall@1"], third["recall@3"], third["mrr@10"]) == (0, 1, pytest.approx(1 / 3))
    assert third["ndcg@10"] == pytest.approx(0.5)
    assert set(item_metrics(11).values()) == set(item_metrics(None).values()) == {0}


def test_bootstrap_interval_brackets_the_mean():
    values = [1.0] * 70 + [0.0] * 30
    low, high = bootstrap_interval(values)
    assert low < 0.7 < high and high - low < 0.25
    assert bootstrap_interval([1.0] * 10) == (1.0, 1.0)


def gold_file(tmp_path, *lines: str):
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


ONE = json.dumps({"question": "q?", "source": "c.pdf", "page": 3, "choices": ["a", "b"]})


def test_gold_reader_takes_the_sciq_schema_and_names_bad_lines(tmp_path):
    [item] = load_gold(gold_file(tmp_path, ONE))
    assert (item.page, item.page_end, item.id, item.query(True)) == (3, 3, "1", "q? a b")
    with pytest.raises(GoldFileError, match="line 2: missing source, page"):
        load_gold(gold_file(tmp_path, ONE, json.dumps({"question": "r?"})))
    with pytest.raises(GoldFileError, match="line 2: not valid JSON"):
        load_gold(gold_file(tmp_path, ONE, "{oops"))
    with pytest.raises(GoldFileError, match="not a range"):
        load_gold(gold_file(tmp_path, json.dumps({"question": "q?", "source": "c.pdf", "page": 3,
                                                  "page_end": 2})))


def test_evaluate_mode_scores_each_question_and_coverage_counts_refusals(store):  # noqa: F811
    retriever = Retriever(store, HashingEmbedder())
    items = [GoldItem("What does entropy of an isolated system do?", "heat.pdf", 1, 1, "e"),
             GoldItem("force mass acceleration", "mechanics.pdf", 2, 2, "f")]
    result = evaluate_mode(retriever, COURSE, items, "hybrid")
    assert result.means["recall@1"] == 1.0 and [r["rank"] for r in result.items] == [1, 1]
    coverage = evaluate_coverage(retriever, COURSE, [i.question for i in items], ["zebra giraffe"], 0.3,
                                 "hybrid")
    assert (coverage.off_topic_refused, coverage.on_topic_refused) == (1.0, 0.0)


def test_cli_refuses_an_unknown_mode_with_the_allowed_ones(tmp_path):
    gold = gold_file(tmp_path, ONE)
    result = CliRunner().invoke(app, ["eval", "retrieval", str(gold), "--course", COURSE, "--mode", "bm25"],
                                env={"COLUMNS": "400"})  # no wrapped messages
    assert result.exit_code == 2
    assert "Unknown retrieval mode 'bm25'" in result.output and "dense, lexical, hybrid" in result.output


HISTORY = [{"role": "user", "content": "What about entropy of an isolated system?"},
           {"role": "assistant", "content": "It is a measure of disorder."}]
FOLLOW_UP_LINE = json.dumps({"question": "What does it never do?", "source": "heat.pdf", "page": 1, "turn": 2,
                             "history": HISTORY})


def test_gold_reader_takes_conversation_lines_and_names_a_bad_history(tmp_path):
    first, later = load_gold(gold_file(tmp_path, ONE, FOLLOW_UP_LINE))
    assert (first.group, first.turn, later.group, later.turn) == ("first", None, "later", 2)
    assert later.history[1] == {"role": "assistant", "content": "It is a measure of disorder."}
    bad = json.dumps({"question": "q?", "source": "c.pdf", "page": 3, "history": [{"role": "user"}]})
    with pytest.raises(GoldFileError, match="line 2: history turn 1 is"):
        load_gold(gold_file(tmp_path, ONE, bad))


def test_conversation_files_compare_strategies_by_turn(store, tmp_path, capsys):  # noqa: F811
    from cli.eval_retrieval_commands import follow_up_settings, print_turns

    items = load_gold(gold_file(tmp_path, json.dumps({"question": "force mass acceleration",
                                                      "source": "mechanics.pdf", "page": 2}), FOLLOW_UP_LINE))
    strategies = follow_up_settings(items, [], None, None)
    assert [s.strategy for s in strategies] == ["none", "gate"]
    assert follow_up_settings(items[:1], [], None, None) == []
    with pytest.raises(typer.BadParameter, match="Did you mean concat"):
        follow_up_settings(items, ["concot"], None, None)
    retriever = Retriever(store, HashingEmbedder())
    results = [evaluate_mode(retriever, COURSE, items, "hybrid", follow_up=s) for s in strategies]
    assert [(r.groups["first"]["questions"], r.groups["later"]["questions"]) for r in results] == [(1, 1)] * 2
    assert results[1].groups["later"]["recall@1"] == 1.0
    print_turns(results, COURSE)
    output = capsys.readouterr().out
    assert "later recall@5" in output and "follow-up targets for hybrid, follow-up gate" in output
