"""The evidence gate fitted to each collection at ingestion: the bundled samples answer
what they cover and refuse what they do not; the fit is stored, reused, and redone once
the collection has changed a lot."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rag.calibration import METHOD, _meaning_cut
from rag.evidence import Calibration, Signals
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


def test_a_stray_off_topic_question_does_not_set_the_bar_for_questions_in_another_language() -> (
    None
):
    """On the Python documentation, "Why does my car engine knock...?" (English, close to
    technical prose) set the bar the meaning alone had to pass for French questions, and
    9 of 14 answerable French questions were refused."""
    base = Calibration(
        method=METHOD, embedding_model="e5", chunks=8000, candidates=50,
        cosine_centre=0.85, cosine_scale=0.035, lexical_centre=3.7, lexical_scale=1.9,
        bm25_centre=18.7, bm25_scale=13.7, cut=-0.1, meaning_cut=0.0, positives=55,
        positives_refused=0.05, negatives=0, negatives_refused=0.0, fitted_at="",
    )  # fmt: skip

    def asked(cosine: float, other_language: bool) -> Signals:
        return Signals(cosine=cosine, lexical_z=0.5, bm25=4.0, other_language=other_language)

    french_off_topic = [asked(0.78 + 0.002 * n, True) for n in range(30)]  # meaning -2..-0.3
    stray = [asked(0.866, False), asked(0.862, True)]  # car engine; the oil warning light
    fitted = replace(base, meaning_cut=_meaning_cut(base, [*french_off_topic, *stray]))

    french_answerable = asked(0.845, True)  # meaning -0.14: a unit below English questions
    assert fitted.combined(french_answerable) >= fitted.cut
    assert sum(fitted.combined(q) < fitted.cut for q in french_off_topic) >= 27
    # The same signals in the documents' language: the missing words still refuse it.
    assert fitted.combined(asked(0.845, False)) < fitted.cut
