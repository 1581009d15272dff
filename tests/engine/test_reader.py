"""The short-answer reader: how a span is chosen, the adapter served as it was trained, the shipped
reader on real notes, and a tiny training run end to end."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from engine.reader import (
    ANSWER_WORDS,
    SHIPPED_READER,
    YES_NO_FILE,
    YES_NO_MIN_MARGIN,
    ExtractiveReader,
    best_spans,
    heading_bounds,
    last_answer,
    load_head,
    load_span_model,
    merge_adapter,
    names_and_numbers,
    names_held,
    reader_question,
    same_answer,
    section_labels,
    token_stretches,
    whole_numbers,
)
from engine.runtime.models import default_embedder_path
from retrieval.prompt import NO_CONTEXT_ANSWER
from training.data.grounded import BuildConfig, GroundedQuestion, Passage
from training.errors import TrainingError
from training.reader import ReaderConfig, add_low_rank, answer_span, encode, soup_readers, train_reader


@pytest.fixture(scope="module")
def shipped_reader() -> ExtractiveReader:
    return ExtractiveReader.load(SHIPPED_READER)


def test_the_best_span_lies_in_the_note_within_the_length_with_its_margin_over_no_answer():
    start = torch.tensor([0.0, 9.0, 1.0, 3.0, 0.5])
    end = torch.tensor([0.0, 9.0, 0.0, 1.0, 4.0])
    stretches = torch.tensor([-1, -1, 0, 0, 0])  # position 1 is the question's
    assert best_spans(start, end, stretches, 16) == [(3, 4, 7.0)]
    assert best_spans(start, end, stretches, 1) == [(4, 4, 4.5)]
    assert best_spans(start, end, stretches, 16, count=3) == [(3, 4, 7.0), (2, 4, 5.0), (4, 4, 4.5)]
    start[0] = 8.0  # "no answer" scores above every span: the margin says so
    assert best_spans(start, end, stretches, 16) == [(3, 4, -1.0)]
    assert best_spans(start, end, torch.full((5,), -1), 16) == []
    assert len(best_spans(start, end, stretches, 16, count=99)) == 6  # only the spans there are


def test_a_span_keeps_within_one_stretch_of_the_note():
    start = torch.tensor([0.0, 0.0, 5.0, 9.0, 1.0])
    end = torch.tensor([0.0, 0.0, 2.0, 9.0, 5.0])
    stretches = torch.tensor([-1, -1, 0, -1, 2])  # position 3 is a heading's "1."
    assert best_spans(start, end, stretches, 16) == [(2, 2, 7.0)]  # not (2, 4), worth 10 across it
    start[3] = end[3] = 1.0
    stretches = torch.tensor([-1, -1, 0, 1, 1])  # a heading line ends after position 2
    assert best_spans(start, end, stretches, 16) == [(2, 2, 7.0)]  # not (2, 4), worth 10 across its end


def test_a_span_never_cuts_a_number_in_two():
    note = "A population of 1,438,159 in 2014, up 3.5% (from 2010)."

    def widened(span: str) -> str:
        start = note.index(span)
        first, last = whole_numbers(note, start, start + len(span))
        return note[first:last]

    assert widened("1,438") == widened("438,159") == widened("438") == "1,438,159"
    point = note.index("3.5")
    assert whole_numbers(note, point, point + 1) == (point, point + 3)
    assert widened("2014,") == "2014," and widened("2014") == "2014"
    assert widened("population of 1,4") == "population of 1,438,159"
    assert widened("2010") == "2010" and widened("population") == "population"


def test_a_follow_up_is_read_after_the_last_question_and_the_first_line_of_its_answer():
    conversation = [{"role": "user", "content": "Who came?"}, {"role": "assistant", "content": "Tom [1]."},
                    {"role": "user", "content": "Who did he meet?"},
                    {"role": "assistant", "content": "His aunt [2].\n\nThe notes say: \"At home.\" [2]"}]
    assert reader_question("Where?", conversation) == "Who did he meet? His aunt. Where?"
    assert reader_question("Where?", conversation[:3]) == "Who did he meet? Where?"  # not answered yet
    refused = [*conversation[:2], {"role": "user", "content": "Why?"},
               {"role": "assistant", "content": NO_CONTEXT_ANSWER}]
    assert reader_question("When?", refused) == "Why? When?"
    long_answer = [{"role": "user", "content": "What?"}, {"role": "assistant", "content": "word " * 40}]
    assert reader_question("Why?", long_answer) == "What? " + "word " * ANSWER_WORDS + "Why?"
    assert reader_question("Who came?") == "Who came?"
    assert last_answer(conversation) == "His aunt." and last_answer(refused) == last_answer([]) == ""


def test_answers_are_the_same_whatever_their_case_punctuation_and_articles():
    assert same_answer("Two", "two.") and same_answer("the Bronx", "Bronx.")
    assert not same_answer("two dogs", "two") and not same_answer("", "") and not same_answer("1901", "")


def test_a_follow_up_is_not_answered_with_the_answer_just_given(shipped_reader):
    note = "The Nobel Prize was first awarded in 1901. It was founded by Alfred Nobel, a chemist."
    question = "When was it first given? 1901 Who started it?"
    first = shipped_reader.read(question, [note])
    other = shipped_reader.read(question, [note], not_said=first.text)
    assert other is not None and not same_answer(other.text, first.text) and other.margin <= first.margin
    assert shipped_reader.read(question, [note], not_said="something else") == first


def test_the_adapter_merged_at_load_scores_as_the_model_it_was_trained_on():
    base = default_embedder_path()
    trained = load_span_model(base)
    layers = add_low_rank(trained, rank=4, alpha=8.0)
    torch.manual_seed(0)
    for layer in layers.values():
        torch.nn.init.normal_(layer.lora_B, std=0.02)  # as after training: B is no longer zero
    tensors = {f"{name}.{part}": getattr(layer, part).detach() for name, layer in layers.items()
               for part in ("lora_A", "lora_B")}
    tensors |= {f"qa_outputs.{k}": v for k, v in trained.qa_outputs.state_dict().items()}
    served = load_span_model(base)
    merge_adapter(served, tensors, scale=2.0)
    load_head(served.qa_outputs, tensors, "qa_outputs")
    inputs = {"input_ids": torch.tensor([[101, 2073, 2003, 3000, 1029, 102, 3000, 2003, 1999, 2605, 102]])}
    with torch.no_grad():
        expected, got = trained.eval()(**inputs), served.eval()(**inputs)
    assert torch.allclose(expected.start_logits, got.start_logits, atol=1e-4)
    assert torch.allclose(expected.end_logits, got.end_logits, atol=1e-4)
    assert not torch.allclose(load_span_model(base).bert.encoder.layer[0].attention.self.query.weight,
                              served.bert.encoder.layer[0].attention.self.query.weight)


def test_a_training_target_covers_exactly_the_answer_tokens_and_a_cut_answer_becomes_no_answer():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_embedder_path())
    passage = "The game was played at Levi's Stadium in Santa Clara."
    at = passage.index("Levi's Stadium")
    ids, _, start, end = encode(tokenizer, "Where?", passage, (at, at + len("Levi's Stadium")), 64)
    assert tokenizer.decode(ids[start:end + 1]).replace(" ", "") == "levi'sstadium"
    _, _, start, end = encode(tokenizer, "Where?", passage, (at, at + len("Levi's Stadium")), 8)
    assert (start, end) == (0, 0)


def test_the_training_target_is_the_reference_the_annotators_agree_on_found_in_the_passage():
    passage = Passage("Predator populations may be up to 2% higher after an outbreak.", "g", "f.pdf", 1)

    def span_of(*answers: str) -> str | None:
        found = answer_span(GroundedQuestion("q", "g", "How much higher?", list(answers), passage))
        return None if found is None else passage.text[found[0]:found[1]]

    assert span_of("up to 2% higher", "2%", "2%") == "2%"  # two annotators agree on the short one
    assert span_of("up to 2% higher", "up to 2% higher", "2%") == "up to 2% higher"
    assert span_of("2% higher", "Up to 2%") == "up to 2%"  # a tie goes to the shorter: 8 characters to 9
    assert span_of("a 2 percent rise", "2% HIGHER") == "2% higher"  # only what the passage holds
    assert span_of("three percent") is None


def test_the_shipped_reader_finds_the_answer_in_the_note_that_holds_it(shipped_reader):
    notes = ["Friction slows a sliding block and turns its motion into heat.",
             "Super Bowl 50 was played on February 7, 2016, at Levi's Stadium in Santa Clara, California."]
    short = shipped_reader.read("Where was Super Bowl 50 played?", notes)
    assert short is not None and short.note == 2 and "Levi's Stadium" in short.text
    when = shipped_reader.read("When was Super Bowl 50 played?", notes)
    assert when is not None and "2016" in when.text
    assert shipped_reader.read("", notes) is None and shipped_reader.read("Where?", []) is None


def test_a_later_note_wins_only_by_more_than_its_rank_penalty(shipped_reader):
    notes = ["Friction slows a sliding block and turns its motion into heat.",
             "Super Bowl 50 was played on February 7, 2016, at Levi's Stadium in Santa Clara, California."]
    free = shipped_reader.read("Where was Super Bowl 50 played?", notes)
    first = shipped_reader.read("Where was Super Bowl 50 played?", notes[:1])
    assert free is not None and first is not None and free.note == 2
    lead = free.margin - first.margin  # how far the second note's span beat the first's
    assert lead > 0
    near = shipped_reader.read("Where was Super Bowl 50 played?", notes, rank_penalty=lead * 0.9)
    assert near is not None and near.note == 2 and near.margin == pytest.approx(free.margin - lead * 0.9)
    assert shipped_reader.read("Where was Super Bowl 50 played?", notes, rank_penalty=lead * 1.1).note == 1


def test_a_span_in_the_sentence_sharing_most_words_with_the_question_gains_the_bonus(shipped_reader):
    note = ("Super Bowl 50 was played at Levi's Stadium in Santa Clara. Friction slows a sliding block on a "
            "rough floor.")
    question = "Where was Super Bowl 50 played?"
    plain = shipped_reader.read(question, [note])
    favoured = shipped_reader.read(question, [note], asked=question, key_sentence_bonus=2.0)
    assert plain is not None and plain.text in note.split(". ")[0]
    assert favoured is not None and favoured.text == plain.text
    assert favoured.margin == pytest.approx(plain.margin + 2.0)
    # A large enough bonus on another sentence moves the span there; none without words to match.
    moved = shipped_reader.read(question, [note], asked="What slows a sliding block?", key_sentence_bonus=100)
    assert moved is not None and moved.text in "Friction slows a sliding block on a rough floor."
    assert shipped_reader.read(question, [note], asked="", key_sentence_bonus=100).text == plain.text


def test_the_shipped_reader_names_its_training(shipped_reader):
    record = json.loads((SHIPPED_READER / "reader.json").read_text(encoding="utf-8"))
    assert record["base"] is None and record["rank"] > 0  # the packaged all-MiniLM-L6-v2
    assert record["dev"]["squad F1 among 4"] > 0.3  # what the README reports, from the training run


def _tiny_squad(tmp_path):
    rows = [{"id": f"q{i}", "title": f"T{i % 4}", "context": f"Alice {i} lives in town {i}. Bob does not.",
             "question": f"Where does Alice {i} live?", "answers": [f"town {i}"]} for i in range(16)]
    squad = tmp_path / "squad.jsonl"
    squad.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return squad


def _tiny_reader(tmp_path, squad, name: str, **config) -> ExtractiveReader:
    config = ReaderConfig(max_steps=3, batch_size=4, rank=2, alpha=4.0, learning_rate=0.05,
                          build=BuildConfig(dev_fraction=0.25), **config)
    train_reader(tmp_path / name, default_embedder_path(), squad=squad, coqa=None, config=config)
    return ExtractiveReader.load(tmp_path / name)


def test_a_tiny_training_run_writes_a_reader_that_loads_and_is_scored(tmp_path):
    squad = _tiny_squad(tmp_path)
    config = ReaderConfig(max_steps=2, batch_size=4, rank=2, alpha=4.0, build=BuildConfig(dev_fraction=0.25))
    (tmp_path / "reader").mkdir()
    (tmp_path / "reader" / YES_NO_FILE).write_bytes(b"fitted an earlier reader")
    scores = train_reader(tmp_path / "reader", default_embedder_path(), squad=squad, coqa=None, config=config)
    assert not (tmp_path / "reader" / YES_NO_FILE).exists()  # a new encoder: the classifier must be retrained
    assert scores["squad questions"] == 4 and 0.0 <= scores["squad F1 gold passage"] <= 1.0
    record = json.loads((tmp_path / "reader" / "reader.json").read_text(encoding="utf-8"))
    assert record["steps"] == 2 and record["dev"] == scores
    ExtractiveReader.load(tmp_path / "reader")


def test_a_reader_soup_serves_the_mean_of_its_members_weights(tmp_path):
    squad = _tiny_squad(tmp_path)
    members = [_tiny_reader(tmp_path, squad, f"m{n}", order_seed=n) for n in (0, 1)]
    build = BuildConfig(dev_fraction=0.25)
    scores = soup_readers(tmp_path / "soup", [tmp_path / "m0", tmp_path / "m1"], squad=squad, coqa=None,
                          build=build)
    soup = ExtractiveReader.load(tmp_path / "soup")
    record = json.loads((tmp_path / "soup" / "reader.json").read_text(encoding="utf-8"))
    assert record["rank"] == 4 and record["dev"] == scores and len(record["soup"]) == 2
    weights = [dict(m.model.named_parameters()) for m in members]
    assert not torch.allclose(weights[0]["qa_outputs.weight"], weights[1]["qa_outputs.weight"])
    for name, got in soup.model.named_parameters():
        expected = (weights[0][name] + weights[1][name]) / 2
        assert torch.allclose(got, expected, atol=2e-3), name  # float16 on disk


def test_readers_from_different_starts_are_not_averaged_and_nothing_is_written(tmp_path):
    squad = _tiny_squad(tmp_path)
    for name, seed in (("a", 0), ("b", 1)):
        _tiny_reader(tmp_path, squad, name, seed=seed)
    with pytest.raises(TrainingError, match="do not share a start"):
        soup_readers(tmp_path / "soup", [tmp_path / "a", tmp_path / "b"], squad=squad, coqa=None)
    assert not (tmp_path / "soup").exists()


def test_yes_or_no_questions_open_with_an_auxiliary_and_offer_no_alternatives():
    from engine.reader import asks_yes_or_no

    assert all(map(asks_yes_or_no, ["was she married?", "Did Aleck run into him?", " Is it wet? "]))
    assert not any(map(asks_yes_or_no, ["Who was married?", "Is it the upper or the lower chamber?",
                                        "Isotopes differ how?", "Island of what?"]))


def test_no_span_holds_a_section_label_of_the_course(shipped_reader):
    note = "Section 12\nA wetland is an area of land that is wet all or part of the year.\nChapter IV. Soil"
    encoded = shipped_reader.tokenizer("Where?", note, return_offsets_mapping=True)
    stretches = token_stretches(note, encoded.sequence_ids(), encoded["offset_mapping"])
    words = [note[start:end] for (start, end), stretch
             in zip(encoded["offset_mapping"], stretches.tolist(), strict=True) if stretch >= 0]
    assert "section" not in " ".join(words).lower() and "iv" not in words and "12" not in words
    assert "wetland" in " ".join(words) and "Soil" in words
    short = shipped_reader.read("Which section is about wetlands?", [note])
    assert short is not None and "Section" not in short.text and "12" not in short.text


def test_a_heading_line_is_a_stretch_of_its_own_but_a_wrapped_line_is_not(shipped_reader):
    note = ("3. The second law and entropy\nThe second law says entropy grows.\nHe landed in the spring of\n"
            "1496, and war broke out.")
    heading = note.index("\n")
    assert heading_bounds(note) == [0, heading]
    narrow_column = "A line ending in the middle of a sentence on the\nradium found by Marie\nCurie in 1898."
    assert heading_bounds(narrow_column) == [] and heading_bounds("Heat flows.\n \nThe end.") == []
    encoded = shipped_reader.tokenizer("What is entropy?", note, return_offsets_mapping=True)
    stretches = token_stretches(note, encoded.sequence_ids(), encoded["offset_mapping"])
    stretch_of: dict[str, int] = {}  # of a word's first token
    for (start, end), stretch in zip(encoded["offset_mapping"], stretches.tolist(), strict=True):
        if stretch >= 0:
            stretch_of.setdefault(note[start:end], stretch)
    assert stretch_of["entropy"] != stretch_of["grows"]  # the heading's "entropy", the text's "grows"
    assert stretch_of["spring"] == stretch_of["war"]  # across the wrap before "1496, and war"


def test_a_heading_line_s_number_is_a_label_but_a_number_opening_a_wrapped_sentence_is_not():
    def labels(note: str) -> list[str]:
        return [note[start:end] for start, end in section_labels(note)]

    assert labels("Laws of Motion\n1. The first law: inertia\nAn object at rest stays at rest.") == ["1."]
    assert labels("2.3 Energy\ntext\n1 Introduction\nSection 4\nmore") == ["Section 4", "2.3", "1"]
    assert labels("CHAPTER III. THE ROMAN BARONS\nHaving driven Charles VIII out") == ["CHAPTER III."]
    assert labels("The pH of pure water is\n7. This is neutral.") == []
    assert labels("Pure water has a pH of\n7. This value is called neutral, and a lower one acidic, as the "
                  "table shows") == []
    assert labels("It was stated in\n1687. The book sold well") == []


def test_the_names_and_numbers_of_a_question_are_its_numbers_and_capitalised_words_not_opening_it():
    named = names_and_numbers("Was the Treaty of Versailles signed in 1,919?")
    assert named == ["Treaty", "Versailles", "1,919"]
    assert names_and_numbers("Is mercury a metal?") == []


def test_a_question_naming_what_the_note_lacks_is_not_held_by_it():
    note = "Tom was married to Anna in 1990. They moved to Boston two years later."
    assert names_held("Was Tom married to Anna?", note)
    assert names_held("did they move?", note)  # nothing named: nothing to lack
    assert not names_held("Was Tom married to Maria?", note)
    assert not names_held("Did they marry in 1995?", note)


class SaysYes(torch.nn.Module):
    """A yes/no classifier whose scores are always (no 0, yes 3)."""

    def forward(self, **encoded):
        return torch.tensor([[0.0, 3.0]])


def test_a_yes_needs_the_names_and_numbers_the_student_asked_about_in_the_note(shipped_reader):
    reader = copy.copy(shipped_reader)
    reader.yes_no = SaysYes()
    note = "The Treaty of Versailles was signed in 1919."
    assert reader.yes_or_no("Was the Treaty of Versailles signed in 1919?", note).text == "Yes"
    assert reader.yes_or_no("Was the Treaty of Versailles signed in 1925?", note) is None
    # A follow-up is read after the last exchange; only the student's own question must be held.
    follow_up = "When was the Treaty of Paris signed? 1783 Was the Treaty of Versailles signed in 1919?"
    assert reader.yes_or_no(follow_up, note, asked="Was it signed in 1919?").text == "Yes"


def test_the_shipped_classifier_says_yes_to_what_its_note_states_and_not_to_a_place_it_lacks(shipped_reader):
    note = "Insulin is a hormone made by the pancreas. The Amazon mostly lies in Brazil."
    said = shipped_reader.yes_or_no("Is insulin made by the pancreas?", note)
    assert said is not None and said.text == "Yes" and said.margin >= YES_NO_MIN_MARGIN
    mexico = shipped_reader.yes_or_no("Does most of the Amazon lie in Mexico?", note)
    assert mexico is None or mexico.text == "No"  # a "Yes" needs the place in the note
