"""The evidence gate fitted to each collection at ingestion: the bundled samples answer
what they cover and refuse what they do not; the fit is stored, reused, and redone once
the collection has changed a lot."""

from __future__ import annotations

from pathlib import Path

from rag.retrieval import Retriever
from rag.settings import RetrievalSettings
from rag.sparse import Bm25Encoder


def _retriever(store, embedder) -> Retriever:
    return Retriever(store, embedder, Bm25Encoder(), RetrievalSettings())


def test_the_samples_answer_what_they_cover_and_refuse_the_rest(
    make_pipeline, store, embedder, sample_folder: Path
) -> None:
    make_pipeline().run([sample_folder], "docs")
    r = _retriever(store, embedder)

    fitted = store.calibration("docs")
    assert fitted is not None
    assert fitted.chunks == store.count_chunks("docs")
    assert fitted.embedding_model == embedder.model_name
    # The IT FAQ has this very heading: refusing it was the web UI's false refusal.
    for question in (
        "How do I reset my password?",
        "How many days of paid annual leave do I get?",
        # French over English documents: no shared word, the meaning alone carries it.
        "Combien de jours de congés payés ai-je par an ?",
        "Que dois-je faire si mon ordinateur portable est volé ?",
    ):
        result = r.retrieve(question, ["docs"])
        assert not result.weak_evidence, (question, result.evidence)
        assert result.evidence.calibrated and result.evidence.collection == "docs"
    # Not in the bundled off-topic list the calibration was fitted on.
    for question in (
        "What is the best way to grill a steak on a barbecue?",
        "Qui a écrit Les Misérables ?",
    ):
        result = r.retrieve(question, ["docs"])
        assert result.weak_evidence, (question, result.evidence)


def test_calibration_is_reused_and_redone_after_a_large_change(
    make_pipeline, store, sample_folder: Path
) -> None:
    pipeline = make_pipeline()
    pipeline.run([sample_folder], "docs")
    first = store.calibration("docs")
    assert first is not None

    pipeline.run([sample_folder], "docs")  # nothing changed
    assert store.calibration("docs") == first

    extra = sample_folder / "garden.md"
    sections = [
        f"## Bed {n}\n\nBed {n} of the staff garden grows {crop} from April to October; "
        f"whoever waters it on Fridays may take some {crop} home.\n"
        for n, crop in enumerate(
            ["leeks", "beans", "carrots", "tomatoes", "squash", "lettuce", "radishes", "kale"] * 2
        )
    ]
    extra.write_text("# The staff garden\n\n" + "\n".join(sections), encoding="utf-8")
    pipeline.run([sample_folder], "docs")

    refitted = store.calibration("docs")
    assert refitted is not None
    assert refitted.chunks == store.count_chunks("docs") > first.chunks * 1.2
    assert refitted != first
