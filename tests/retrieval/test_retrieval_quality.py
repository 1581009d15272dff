"""Retrieval on real course material with the real embedder: the right page and lecture come back."""

from __future__ import annotations

import logging

import pytest

from retrieval import Retriever
from retrieval.embedder import native_bf16
from scripts.make_physics_questions import QUESTIONS as PHYSICS_DEFINITIONS
from tests.conftest import sample_course_questions
from tests.retrieval.physics_questions import PHYSICS_QUESTIONS

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.integration
DEFAULT_MIN_SCORE = 0.32  # app.settings.Settings.min_score


def test_questions_md_lists_answered_and_not_covered_questions():
    answered, not_covered = sample_course_questions()
    assert len(answered) >= 15 and len(not_covered) >= 5


def answers(hit, item) -> bool:
    return hit.source == item.source and hit.page <= item.page <= hit.page_end


@pytest.mark.parametrize("item", sample_course_questions()[0], ids=lambda item: item.question[:40])
def test_sample_course_question_finds_its_page_in_the_top_three(sample_store, embedder, item):
    hits = Retriever(sample_store, embedder).search("sample-course", item.question, k=3,
                                                    min_score=DEFAULT_MIN_SCORE)
    assert any(answers(hit, item) for hit in hits), hits


def test_sample_course_questions_mostly_find_their_page_first(sample_store, embedder):
    retriever = Retriever(sample_store, embedder)
    answered, _ = sample_course_questions()
    first = [answers(retriever.search("sample-course", item.question, k=1)[0], item) for item in answered]
    assert sum(first) >= len(answered) - 2, f"{sum(first)} of {len(answered)} found their page first"


def test_the_demo_question_cites_the_page_with_newtons_first_law(sample_store, embedder):
    retriever = Retriever(sample_store, embedder)
    [best] = retriever.search("sample-course", "What does Newton's first law say?", k=1)
    assert (best.source, best.page) == ("mechanics.pdf", 1)
    assert "first law says that an object at rest stays at rest" in " ".join(best.text.split())


def test_default_min_score_keeps_course_questions_and_drops_unrelated_ones(sample_store, embedder):
    retriever = Retriever(sample_store, embedder)
    answered, not_covered = sample_course_questions()
    relevant = [retriever.search("sample-course", q.question, k=1)[0].score for q in answered]
    unrelated = [retriever.search("sample-course", q, k=1)[0].score for q in not_covered]
    logger.info("Top scores: relevant %.2f-%.2f, unrelated %.2f-%.2f.", min(relevant), max(relevant),
                min(unrelated), max(unrelated))
    assert max(unrelated) < DEFAULT_MIN_SCORE < min(relevant)


def test_physics_questions_find_their_lecture_in_the_top_four(physics_store, embedder):
    retriever = Retriever(physics_store, embedder)
    found = []
    for question, lecture in PHYSICS_QUESTIONS:
        sources = [hit.source for hit in retriever.search("physics", question, k=4)]
        found.append(lecture in sources)
        if lecture not in sources:
            logger.warning("%r: expected %s, got %s", question, lecture, sources)
    assert len(PHYSICS_QUESTIONS) >= 10 and sum(found) >= len(PHYSICS_QUESTIONS) - 2


def test_physics_definition_questions_mostly_find_the_defining_page_first(physics_store, embedder):
    """"What is a phonon?" and 37 more (``scripts.make_physics_questions``): 25 found their page first when
    the contents pages were searched and "what", "does" and "mean" were lexical terms; no hit is a line
    of a table of contents ("2 Generic Hall effect and Hall coefficient . . . 2")."""
    retriever = Retriever(physics_store, embedder)
    hits = [retriever.search("physics", question, k=4) for question, *_ in PHYSICS_DEFINITIONS]
    first = sum(found[0].source == source and found[0].page <= page <= found[0].page_end
                for found, (_, source, page, _) in zip(hits, PHYSICS_DEFINITIONS, strict=True))
    assert first >= 28, f"{first} of {len(PHYSICS_DEFINITIONS)} found their page first"
    assert not any(". . . . ." in hit.text for found in hits for hit in found)


def test_hybrid_search_finds_the_physics_lectures_as_dense_search_does(physics_store, embedder):
    retriever = Retriever(physics_store, embedder)
    def lectures(question: str, mode: str) -> list[str]:
        return [hit.source for hit in retriever.search("physics", question, k=4, mode=mode)]

    found = {mode: sum(lecture in lectures(question, mode) for question, lecture in PHYSICS_QUESTIONS)
             for mode in ("dense", "hybrid")}
    assert found["hybrid"] >= found["dense"], found


def test_unrelated_questions_score_below_the_default_min_score_on_the_physics_notes(physics_store, embedder):
    retriever = Retriever(physics_store, embedder)
    _, not_covered = sample_course_questions()
    assert all(retriever.search("physics", q, k=4, min_score=DEFAULT_MIN_SCORE) == [] for q in not_covered)


def test_bf16_embeddings_match_fp32_ones(embedder):
    """bf16 autocast (the default on AMX/AVX512-BF16 CPUs) changes vectors only in float noise."""
    import numpy as np

    from engine.runtime.models import default_embedder_path
    from retrieval import Embedder

    texts = ["Newton's first law: a body keeps its velocity unless a force acts on it.",
             "Floor division // rounds the quotient down to the nearest integer.", "x" * 700]
    fp32 = np.array(Embedder(default_embedder_path(), precision="float32").embed(texts))
    bf16 = np.array(Embedder(default_embedder_path(), precision="bfloat16").embed(texts))
    assert (fp32 * bf16).sum(axis=1).min() > 0.999
    assert not np.array_equal(fp32, bf16)  # the bf16 path really ran
    assert embedder.bf16 == native_bf16("cpu")  # "auto" follows the hardware


def test_onnx_question_embeddings_match_torch_ones_and_export_once(tmp_path):
    """Questions embedded by ONNX Runtime (the server's default on a CPU) keep torch's vectors; the export
    is written once and reused by the next process."""
    import numpy as np

    from engine.runtime.models import default_embedder_path
    from retrieval import Embedder
    from retrieval.embedder import ONNX_MAX_BATCH

    embedder = Embedder(default_embedder_path(), onnx_dir=tmp_path, precision="float32")
    exported = list(tmp_path.glob("*.onnx"))
    assert embedder.onnx is not None and len(exported) == 1
    texts = ["What does Newton's first law say?", "Floor division // rounds down.", "word " * 400]
    onnx = np.array(embedder.embed(texts))  # padded to the longest, the last one truncated like torch's
    torch = embedder.model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
    assert (onnx * torch).sum(axis=1).min() > 0.9999
    assert not np.array_equal(onnx, torch)  # the ONNX path really ran
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    many = [f"question number {n}" for n in range(ONNX_MAX_BATCH + 1)]  # large batches embed in torch
    assert np.array_equal(np.array(embedder.embed(many)),
                          embedder.model.encode(many, normalize_embeddings=True, show_progress_bar=False))

    written = exported[0].stat().st_mtime_ns
    again = Embedder(default_embedder_path(), onnx_dir=tmp_path, precision="float32")
    assert again.onnx is not None and exported[0].stat().st_mtime_ns == written
    assert list(tmp_path.iterdir()) == exported  # no partial file left behind
