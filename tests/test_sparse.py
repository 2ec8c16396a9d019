"""Sparse lexical vectors: the same term gets the same index in documents and queries."""

from __future__ import annotations

import pytest

from rag.sparse import Bm25Encoder, terms


def test_terms_fold_case_and_accents_and_drop_stopwords():
    assert terms("La CLÉ du Système est dans le tiroir") == ["cle", "systeme", "tiroir"]


def test_query_terms_land_on_the_document_indices():
    encoder = Bm25Encoder()
    document = encoder.encode_document("Restart the nginx service after editing nginx.conf")
    query = encoder.encode_query("how to restart nginx")
    assert set(query.indices) <= set(document.indices)
    assert query.values == [1.0] * len(query.indices)


def test_repeated_terms_saturate_instead_of_growing_linearly():
    encoder = Bm25Encoder(avg_doc_tokens=10)
    once = encoder.encode_document("backup " + "word " * 9)
    many = encoder.encode_document("backup " * 10)
    weight_once = dict(zip(once.indices, once.values, strict=True))
    weight_many = dict(zip(many.indices, many.values, strict=True))
    key = encoder.encode_query("backup").indices[0]
    assert weight_once[key] < weight_many[key] < 10 * weight_once[key]


def test_empty_text_gives_an_empty_vector():
    assert Bm25Encoder().encode_document("   ").indices == []


IDENTIFIERS = {
    "snake_case_setting": "snake case setting",
    "--long-option": "long option",
    "resolv.conf": "resolv conf",
    "os.path.join": "os path join",
    "getLogger": "get logger",
    "HTTPServer": "http server",
}


def _weights(vector) -> dict[int, float]:
    return dict(zip(vector.indices, vector.values, strict=True))


@pytest.mark.parametrize(("identifier", "spoken"), IDENTIFIERS.items())
def test_an_identifier_is_found_whole_and_by_its_parts(identifier: str, spoken: str) -> None:
    encoder = Bm25Encoder()
    exact = set(encoder.encode_document(f"Set {identifier} before the first run.").indices)
    parts_only = set(encoder.encode_document(f"Set {spoken} before the first run.").indices)

    whole = _weights(encoder.encode_query(identifier))
    # the parts find the identifier: "snake case setting" meets snake_case_setting
    assert set(encoder.encode_query(spoken).indices) <= exact
    # the identifier's every term is in the passage that holds it; a passage with only its
    # parts lacks the heaviest one, the whole (rare, so high IDF too)
    assert set(whole) <= exact
    missing = set(whole) - parts_only
    assert [whole[i] for i in missing] == [max(whole.values())] == [1.0]
    assert sum(w for i, w in whole.items() if i in parts_only) <= 0.5


def test_a_path_holds_its_file_name_whole() -> None:
    encoder = Bm25Encoder()
    document = encoder.encode_document("The resolver reads /etc/resolv.conf at start.")
    assert set(encoder.encode_query("resolv.conf").indices) <= set(document.indices)


def test_a_sentence_end_or_a_mid_word_capital_in_prose_is_no_identifier() -> None:
    encoder = Bm25Encoder()
    assert encoder.encode_document("Restart it. Then wait.").indices == (
        encoder.encode_document("restart then wait").indices
    )
    plain = "How many days of paid annual leave do employees get"
    assert len(encoder.encode_document(plain).indices) == len(terms(plain))


def test_french_elisions_are_dropped_and_accents_folded() -> None:
    encoder = Bm25Encoder()
    elided = encoder.encode_document("À l'heure d'arrivée, présentez-vous à l'accueil.")
    assert set(encoder.encode_query("heure arrivee accueil").indices) <= set(elided.indices)
    assert _weights(encoder.encode_query("Clé")) == _weights(encoder.encode_query("cle"))
    assert elided.indices == encoder.encode_document("heure arrivée présentez accueil").indices


def test_a_french_question_searches_its_subject_not_its_question_words() -> None:
    """A French "Comment lancer une commande ?" is not about code comments: the question
    and function words of a French question are no search terms (on the Python docs, every
    French "Comment ..." question ranked the passages about comments first). In an English
    question, "comment" is the subject."""
    encoder = Bm25Encoder()
    about_comments = encoder.encode_document(
        "A comment starts with a hash character and extends to the end of the line."
    )
    french = encoder.encode_query("Comment lancer une commande externe ?")
    assert not set(french.indices) & set(about_comments.indices)
    english = encoder.encode_query("How do I write a comment?")
    assert set(english.indices) & set(about_comments.indices)
    about_folders = encoder.encode_document("Pour supprimer un dossier non vide, utilisez rmtree.")
    asked = encoder.encode_query("Comment supprimer un dossier ?")
    assert asked.indices and set(asked.indices) <= set(about_folders.indices)
