"""Evaluation helpers and the quantisation recipe: pure functions first, then a few real-model checks."""

from __future__ import annotations

import json
import math
import random

import pytest

from training.evaluate import (
    EvaluationError,
    ModelReport,
    bleu_rouge,
    comparison_table,
    load_texts,
    read_references,
    read_texts,
    split_texts,
)
from training.quantize import (
    GateThresholds,
    QuantizationError,
    QuantizeReport,
    gate_failures,
    load_quantize_recipe,
)

SENTENCE = "Energy is the capacity of a physical system to do work, and it is conserved in a closed system."


def report(ppl_increase: float, mcqa_drop: float | None) -> QuantizeReport:
    return QuantizeReport(source="a", output="b", bits=4, group_size=64, seconds=1.0, source_perplexity=10.0,
                          quantized_perplexity=10.0 * (1 + ppl_increase / 100),
                          perplexity_increase_pct=ppl_increase, mcqa_drop_points=mcqa_drop)


def test_gate_passes_within_thresholds_and_names_each_failure():
    gate = GateThresholds(max_perplexity_increase_pct=10, max_mcqa_drop_points=2)
    assert gate_failures(report(9.9, 1.9), gate) == []
    assert gate_failures(report(9.9, None), gate) == []
    failures = gate_failures(report(12.5, 3.0), gate)
    assert len(failures) == 2
    assert "perplexity grew 12.50%" in failures[0] and "MCQA accuracy dropped 3.00 points" in failures[1]


def test_recipe_layers_yaml_under_flags_and_rejects_unknown_keys(tmp_path):
    path = tmp_path / "quant.yaml"
    path.write_text("quantize:\n  bits: 8\n  group_size: 32\n  gate:\n    max_perplexity_increase_pct: 5\n")
    recipe = load_quantize_recipe(path, {"group_size": 64, "bits": None, "gate": {"max_mcqa_drop_points": 1}})
    assert (recipe.bits, recipe.group_size) == (8, 64)
    assert (recipe.gate.max_perplexity_increase_pct, recipe.gate.max_mcqa_drop_points) == (5, 1)
    path.write_text("bitz: 4\n")
    with pytest.raises(QuantizationError, match="Did you mean 'bits'"):
        load_quantize_recipe(path)
    with pytest.raises(QuantizationError, match="bits is 5"):
        load_quantize_recipe(None, {"bits": 5})


def test_recipe_errors_name_the_file_and_the_nested_key(tmp_path):
    path = tmp_path / "quant.yaml"
    path.write_text("gate:\n  max_mcqa_drop_point: 1\n")
    with pytest.raises(QuantizationError, match=r"quant\.yaml: unknown key 'gate\.max_mcqa_drop_point'\. "
                                                 r"Did you mean 'gate\.max_mcqa_drop_points'"):
        load_quantize_recipe(path)
    with pytest.raises(QuantizationError, match=r"values for group_size\): group_size is 4"):
        load_quantize_recipe(None, {"group_size": 4, "bits": None})
    with pytest.raises(QuantizationError, match="missing.yaml does not exist"):
        load_quantize_recipe(tmp_path / "missing.yaml")


def test_split_texts_gives_disjoint_calibration_and_heldout():
    texts = [f"text {i}" for i in range(10)]
    calibration, heldout = split_texts(texts, calibration=3, heldout=4)
    assert len(calibration) == 3 and len(heldout) == 4
    assert not set(calibration) & set(heldout)
    with pytest.raises(EvaluationError):
        split_texts(["one"], 1, 1)


def test_read_texts_splits_paragraphs_and_drops_short_ones(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text(f"{SENTENCE}\nsecond line\n\nshort\n\n{SENTENCE}")
    assert read_texts(path) == [f"{SENTENCE} second line", SENTENCE]
    assert load_texts(str(path)) == read_texts(path)
    with pytest.raises(EvaluationError, match="no course store"):
        load_texts("course:physics")


def test_load_texts_reads_a_course_through_the_store():
    class Chunk:
        def __init__(self, text):
            self.text = text

    class Store:
        def chunks(self, course):
            assert course == "physics"
            return [Chunk(SENTENCE), Chunk("tiny")]

    assert load_texts("course:physics", lambda: Store()) == [SENTENCE]


def test_bleu_and_rouge_are_perfect_for_identical_answers_and_lower_otherwise():
    perfect = bleu_rouge([SENTENCE], [SENTENCE])
    assert perfect.bleu == pytest.approx(100) and perfect.rougeL == pytest.approx(1)
    worse = bleu_rouge(["Energy is a word."], [SENTENCE])
    assert worse.bleu < 50 and 0 < worse.rouge1 < 1


def test_read_references_accepts_question_answer_rows(tmp_path):
    path = tmp_path / "refs.jsonl"
    path.write_text(json.dumps({"question": "What is energy?", "answer": SENTENCE}) + "\n")
    assert read_references(path) == [{"prompt": "What is energy?", "reference": SENTENCE}]
    path.write_text(json.dumps({"question": "no answer"}) + "\n")
    with pytest.raises(EvaluationError, match=":1:"):
        read_references(path)


def test_comparison_table_has_a_row_per_metric_and_a_column_per_model():
    a = ModelReport(model="/m/base", size_mb=538.1, load_seconds=0.5, tokens_per_second=20.0, perplexity=12.5)
    b = ModelReport(model="/m/q4", size_mb=120.0, load_seconds=3.0, mcqa_accuracy=0.61)
    table = comparison_table([a, b]).splitlines()
    assert table[0] == "| metric | base | q4 |"
    assert "| size on disk (MB) | 538.1 | 120 |" in table
    assert "| MCQA accuracy | — | 0.61 |" in table
    assert len(table) == 2 + 6


@pytest.mark.integration
def test_perplexity_of_prose_is_far_below_shuffled_words(runtime):
    from training.evaluate import perplexity

    words = SENTENCE.split()
    random.Random(0).shuffle(words)
    prose = perplexity(runtime, [SENTENCE]).perplexity
    shuffled = perplexity(runtime, [" ".join(words)]).perplexity
    assert math.isfinite(prose) and prose * 3 < shuffled


@pytest.mark.integration
def test_mcqa_accuracy_runs_through_the_mcq_engine(runtime, tmp_path):
    from training.evaluate import mcqa_accuracy

    path = tmp_path / "q.jsonl"
    rows = [{"question": "What color is the clear daytime sky?", "choices": ["blue", "a banana sandwich"],
             "answer_index": 0}] * 2
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert mcqa_accuracy(runtime, path, limit=1) == 1.0
