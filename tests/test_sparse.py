"""Sparse lexical vectors: the same term gets the same index in documents and queries."""

from __future__ import annotations

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
