"""Each cleaning rule on hand-made rows with known outcomes."""

from __future__ import annotations

import pytest

from training.cleaning import (
    CleaningConfig,
    SourceShare,
    WordCounter,
    agreement_filter,
    cap_per_prompt,
    clean,
    drop_duplicates,
    drop_long,
    drop_ties,
    merge_sources,
    percentile,
    split_by_group,
    truncate,
)
from training.data.schema import PreferencePair, SFTExample
from training.errors import RecipeError


def pair(
    name: str,
    group: str = "g",
    agreement: int | None = None,
    tie: bool = False,
    prompt: str = "p",
    chosen: str | None = None,
    source: str = "s",
) -> PreferencePair:
    return PreferencePair(
        prompt=prompt,
        chosen=chosen or f"good {name}",
        rejected=f"bad {name}",
        group=group,
        source=source,
        tie=tie,
        agreement=agreement,
        origin=name,
    )


def names(rows) -> list[str]:
    return [r.origin for r in rows]


def test_drop_ties_keeps_clear_judgements():
    assert names(drop_ties([pair("a"), pair("b", tie=True), pair("c")])) == ["a", "c"]


def test_global_threshold_drops_scores_below_lambda_and_keeps_unscored():
    rows = [pair("a", agreement=4), pair("b", agreement=2), pair("c", agreement=3), pair("d")]
    assert names(agreement_filter(rows, "global", 3)) == ["a", "c", "d"]


def test_local_tolerance_compares_with_the_best_pair_of_the_same_question():
    rows = [
        pair("a", "q1", 4),
        pair("b", "q1", 3),
        pair("c", "q1", 1),
        pair("d", "q2", 1),
        pair("e", "q2", 0),
    ]
    # q1 best 4: keep >= 3; q2 best 1: keep >= 0.
    assert names(agreement_filter(rows, "local", 1)) == ["a", "b", "d", "e"]
    assert names(agreement_filter(rows, "local", 0)) == ["a", "d"]


def test_cap_per_prompt_is_deterministic_and_prefers_agreement():
    rows = [pair(str(i), "q1", agreement=i % 3) for i in range(6)] + [pair("x", "q2", prompt="p2")]
    kept = cap_per_prompt(rows, 2, seed=7)
    assert names(kept).count("x") == 1 and len(kept) == 3
    assert {r.agreement for r in kept if r.group == "q1"} == {2}
    assert names(cap_per_prompt(list(reversed(rows)), 2, seed=7)) == list(reversed(names(kept)))


def test_cap_per_prompt_counts_each_prompt_of_a_split_group():
    """The grounded builder puts a whole article's questions in one group; each question keeps its pairs."""
    rows = [pair(f"{q}{k}", "article", prompt=f"question {q}") for q in "abc" for k in range(4)]
    assert len(cap_per_prompt(rows, 2, seed=0)) == 6


def test_exact_duplicates_are_dropped_keeping_the_first():
    rows = [pair("a"), pair("a"), pair("b"), pair("a", prompt="other")]
    assert len(drop_duplicates(rows)) == 3


def test_percentile_drop_removes_only_the_longest():
    rows = [pair(str(n), chosen=" ".join(["w"] * n)) for n in range(1, 21)]
    kept, limit = drop_long(rows, 90, WordCounter())
    # length = prompt (1 word) + max(chosen n words, rejected 2 words); p90 of 20 rows is the 18th.
    assert limit == 19 and len(kept) == 18
    assert percentile([5, 1, 3, 2, 4], 50) == 3


def test_truncation_cuts_answers_and_drops_rows_that_cannot_fit():
    long = pair("long", chosen="one two three four five six")
    same_after_cut = PreferencePair("p", "x y z tail-a", "x y z tail-b", "g")
    prompt_too_long = pair("big", prompt="w " * 10)
    kept, cut = truncate([long, same_after_cut, prompt_too_long, pair("short")], 4, WordCounter())
    assert cut == 2
    assert [r.chosen for r in kept] == ["one two three", "good short"]
    assert kept[0].rejected == "bad long"


def test_clean_runs_the_configured_steps_and_reports_each():
    rows = [pair("a", agreement=3), pair("a", agreement=3), pair("b", tie=True), pair("c", agreement=0)]
    config = CleaningConfig(agreement_rule="global", agreement_lambda=1)
    kept, report = clean(rows, config)
    assert names(kept) == ["a"]
    assert [(s.step.split(" ")[0], s.removed) for s in report.steps] == [
        ("drop", 1),
        ("agreement", 1),
        ("drop", 1),
    ]
    assert "| drop exact duplicates | 2 | 1 | 1 |" in report.to_markdown()


def test_clean_applies_sft_steps_to_sft_examples():
    rows = [SFTExample("p", "a", "g"), SFTExample("p", "a", "g"), SFTExample("q", "b", "h")]
    kept, report = clean(rows, CleaningConfig(max_pairs_per_prompt=1))
    assert len(kept) == 2 and [s.step for s in report.steps] == ["drop exact duplicates"]


def test_merge_caps_each_source_at_min_of_cap_and_size():
    sources = {
        "big": [pair(f"b{i}", source="big") for i in range(10)],
        "small": [pair(f"s{i}", source="small") for i in range(3)],
        "half": [pair(f"h{i}", source="half") for i in range(8)],
    }
    shares = {"big": SourceShare(cap=4), "small": SourceShare(cap=5), "half": SourceShare(fraction=0.5)}
    merged = merge_sources(sources, shares, seed=1)
    counts = {name: sum(r.source == name for r in merged) for name in sources}
    assert counts == {"big": 4, "small": 3, "half": 4}
    assert names(merge_sources(sources, shares, seed=1)) == names(merged)


def test_split_keeps_each_question_in_one_split_and_follows_fractions():
    rows = [pair(f"{g}-{i}", group=f"q{g}") for g in range(40) for i in range(g % 3 + 1)]
    splits = split_by_group(rows, [0.8, 0.1, 0.1], seed=3)
    groups = {name: {r.group for r in part} for name, part in splits.items()}
    assert not groups["train"] & groups["validation"] and not groups["train"] & groups["test"]
    assert not groups["validation"] & groups["test"]
    assert sum(len(p) for p in splits.values()) == len(rows)
    assert 0.7 < len(splits["train"]) / len(rows) < 0.9 and splits["validation"] and splits["test"]
    assert split_by_group(rows, [0.8, 0.1, 0.1], seed=3) == splits
    assert len(split_by_group(rows, [1.0, 0.0, 0.0], seed=3)["train"]) == len(rows)


def test_split_with_empty_shares_puts_everything_elsewhere():
    rows = [pair(str(i), group=f"q{i}") for i in range(10)]
    splits = split_by_group(rows, [0.7, 0.3, 0.0], seed=0)
    assert not splits["test"] and len(splits["train"]) + len(splits["validation"]) == 10


@pytest.mark.parametrize(
    "kwargs",
    [
        {"agreement_rule": "loose"},
        {"max_pairs_per_prompt": 0},
        {"length_percentile": 120},
        {"agreement_lambda": -1},
    ],
)
def test_cleaning_config_rejects_bad_values(kwargs):
    with pytest.raises(RecipeError):
        CleaningConfig(**kwargs)


def test_truncation_leaves_room_for_the_chat_template_framing():
    class FramedWords(WordCounter):
        prompt_overhead = 2

    kept, cut = truncate([pair("x", chosen="one two three four")], 4, FramedWords())
    assert cut == 1 and (kept[0].chosen, kept[0].rejected) == ("one", "bad")  # 4 - 1 prompt word - 2 framing
