"""The reader's yes/no classifier: served as trained, BoolQ rows checked, and a tiny run end to end."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.reader import (
    SHIPPED_READER,
    YES_NO_FILE,
    YES_NO_MIN_MARGIN,
    ExtractiveReader,
    YesNoClassifier,
    load_head,
    merge_adapter,
)
from engine.runtime.models import default_embedder_path
from training.data.grounded import BuildConfig
from training.errors import DataFormatError
from training.reader import add_low_rank
from training.yes_no import YesNoConfig, YesNoExample, edited, read_boolq, swap_pool, train_yes_no


def test_the_classifier_merged_at_load_scores_as_the_one_trained():
    from transformers import AutoModel

    trained = YesNoClassifier(AutoModel.from_pretrained(default_embedder_path()))
    layers = add_low_rank(trained, rank=4, alpha=8.0, head=trained.head)
    torch.manual_seed(0)
    for layer in layers.values():
        torch.nn.init.normal_(layer.lora_B, std=0.02)
    tensors = {f"{name}.{part}": getattr(layer, part).detach() for name, layer in layers.items()
               for part in ("lora_A", "lora_B")}
    tensors |= {f"head.{k}": v for k, v in trained.head.state_dict().items()}
    served = YesNoClassifier(AutoModel.from_pretrained(default_embedder_path()))
    merge_adapter(served, tensors, scale=2.0)
    load_head(served.head, tensors, "head")
    ids = [101, 2003, 3000, 1999, 2605, 1029, 102, 3000, 2003, 1999, 2605, 102]  # is paris in france? ...
    inputs = {"input_ids": torch.tensor([ids])}
    with torch.no_grad():
        assert torch.allclose(trained.eval()(**inputs), served.eval()(**inputs), atol=1e-4)
    assert len(layers) == 6 * 6  # every adapted linear of the six encoder layers


def test_a_boolq_row_without_a_true_or_false_answer_is_refused_by_line(tmp_path):
    path = tmp_path / "boolq.jsonl"
    path.write_text(json.dumps({"question": "is it wet", "passage": "It rains.", "answer": True}) + "\n"
                    + json.dumps({"question": "is it dry", "passage": "It rains.", "answer": "no"}) + "\n",
                    encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"boolq.jsonl:2: 'answer' must be true or false"):
        read_boolq(path)
    path.write_text(json.dumps({"question": "is it wet", "passage": "It rains.", "answer": True}) + "\n",
                    encoding="utf-8")
    [row] = read_boolq(path)
    assert (row.question, row.yes) == ("is it wet?", True)


def test_a_tiny_run_adds_a_classifier_that_the_reader_loads_and_answers_with(tmp_path):
    reader_dir = tmp_path / "reader"
    shutil.copytree(SHIPPED_READER, reader_dir)
    spans = (reader_dir / "reader.safetensors").read_bytes()
    stories = [{"id": f"s{i}", "source": "wikipedia",
                "story": f"Alice {i} has a cat named Tom {i}. It is grey.",
                "turns": [{"question": f"What does Alice {i} have?", "answers": ["a cat"]},
                          {"question": "Is it grey?", "answers": ["yes" if i % 2 else "no"]},
                          {"question": "What is its name?", "answers": [f"Tom {i}"]}]} for i in range(8)]
    coqa = tmp_path / "coqa.jsonl"
    coqa.write_text("".join(json.dumps(s) + "\n" for s in stories), encoding="utf-8")
    boolq = tmp_path / "boolq.jsonl"
    boolq.write_text("".join(json.dumps({"question": f"is {i} even", "passage": f"{i} is a number.",
                                         "answer": i % 2 == 0}) + "\n" for i in range(6)), encoding="utf-8")
    config = YesNoConfig(max_steps=2, batch_size=4, rank=2, alpha=4.0, build=BuildConfig(dev_fraction=0.25))
    scores = train_yes_no(reader_dir, squad=None, coqa=coqa, boolq=boolq, config=config)
    assert scores["coqa yes/no turns"] == 2 and 0.0 <= scores["coqa accuracy when answered"] <= 1.0
    record = json.loads((reader_dir / "reader.json").read_text(encoding="utf-8"))
    assert record["yes_no"]["steps"] == 2
    assert record["yes_no"]["train_examples"] == 6 + 6 + record["yes_no"]["edited"]
    assert record["yes_no"]["dev"] == scores and record["dev"]  # the reader's own record is kept
    assert (reader_dir / "reader.safetensors").read_bytes() == spans  # the span reader is untouched
    reader = ExtractiveReader.load(reader_dir)
    answer = reader.yes_or_no("Is Tom grey?", "Tom is a grey cat.", min_margin=0.0)
    assert answer is not None and answer.text in {"Yes", "No"} and answer.note == 1
    # Served with the gate: said only when the two scores are far enough apart.
    gated = reader.yes_or_no("Is Tom grey?", "Tom is a grey cat.")
    assert gated == (answer if answer.margin >= YES_NO_MIN_MARGIN else None)
    assert reader.yes_or_no("Is Tom grey?", "Tom is a grey cat.", min_margin=answer.margin + 0.01) is None
    assert (reader_dir / YES_NO_FILE).is_file() and not (tmp_path / "reader.partial").exists()


def test_an_edit_of_the_word_asked_about_answers_no_and_an_edit_of_another_word_keeps_the_answer():
    import random

    asked = "Was Tom married to Anna?"
    example = YesNoExample(asked, "Tom was married to Anna in 1990. Anna taught chemistry.", True, asked)
    pool = swap_pool(["Maria lived in Oslo in 1975 and studied biology."])
    rng = random.Random(0)
    for _ in range(20):
        asked = edited(example, pool, rng, asked_word=True)
        kept = edited(example, pool, rng, asked_word=False)
        assert asked is not None and not asked.yes and asked.question == example.question
        assert "anna" not in asked.passage.lower() or "married" not in asked.passage.lower()
        assert kept is not None and kept.yes
        assert all(word in kept.passage for word in ("Tom", "married", "Anna"))
        assert kept.passage != example.passage


def test_no_edit_when_the_passage_holds_none_of_the_question_words():
    import random

    example = YesNoExample("Is it grey?", "A cat sat on the mat.", True, "Is it grey?")
    assert edited(example, swap_pool(["Oslo is cold."]), random.Random(0), asked_word=True) is None
