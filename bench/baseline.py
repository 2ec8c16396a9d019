"""The "stock llama-index recipe", as a tutorial would write it: the retrieval baseline.

Used by `python -m bench.retrieval`, which scores it side by side with Citadel.

`SimpleDirectoryReader(corpus, recursive=True)` with its default file readers (PDF: one
Document per page, via pypdf; DOCX: docx2txt; everything else, HTML included, read as plain
text), `SentenceSplitter(chunk_size=1024, chunk_overlap=200)` with its default tokenizer, and
dense-only top-k retrieval from an in-memory `VectorStoreIndex`. The one change from the
tutorial is the embedder: Citadel's own (the configured model, multilingual-e5-small by
default, with its query and passage prompts), so the comparison is about the recipe, not
the model. llama-index's global `Settings` are never touched and no LLM is involved.

Needs `llama-index-readers-file` (the default readers) and `docx2txt` (its DOCX reader).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from llama_index.core.embeddings import BaseEmbedding
from pydantic import PrivateAttr

from rag.ports import Embedder


class CitadelEmbedding(BaseEmbedding):
    """Citadel's embedder behind llama-index's embedding interface: the same model, prompts
    and normalised vectors as Citadel's own index. llama-index hands `_get_text_embeddings`
    groups of `embed_batch_size` texts."""

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: Embedder, embed_batch_size: int = 256) -> None:
        super().__init__(model_name=embedder.model_name, embed_batch_size=embed_batch_size)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "CitadelEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return list(self._embedder.embed_query(query))

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return list(self._embedder.embed_documents(texts))


def _page_numbers(metadata: dict[str, Any]) -> list[int]:
    """The PDF reader's `page_label` as a 1-based int; [] for other formats or odd labels."""
    label = metadata.get("page_label")
    if label is None:
        return []
    try:
        return [int(str(label).strip())]
    except ValueError:
        return []


def _relative_source(file_path: str, root: Path) -> str:
    path = Path(file_path)
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def stock_llamaindex_results(
    corpus: Path, questions: list[dict[str, Any]], embedder: Embedder, top_k: int = 10
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Index `corpus` with the stock llama-index recipe and answer every question's retrieval.

    Returns (results, info): results = one dict per question, in this exact form:
      {"id": q["id"], "retrieved": [{"source": <path relative to corpus, forward slashes>,
        "pages": [<int 1-based PDF page>] or [], "score": float}, ... top_k items, best first],
       "refused": False, "latency_ms": float (question in -> ranked passages out)}
    info = {"documents": n, "chunks": n, "index_seconds": float}.

    `documents` counts corpus files (the PDF reader yields one llama-index Document per page);
    `index_seconds` covers reading, splitting, embedding and building the index, not loading
    the embedding model. Latencies are measured after one untimed warm-up query.
    """
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    root = Path(corpus).resolve()
    embed_model = CitadelEmbedding(embedder)

    started = time.perf_counter()
    documents = SimpleDirectoryReader(str(root), recursive=True).load_data()
    splitter = SentenceSplitter(chunk_size=1024, chunk_overlap=200)
    nodes = splitter.get_nodes_from_documents(documents)
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    index_seconds = time.perf_counter() - started

    retriever = index.as_retriever(similarity_top_k=top_k)
    if questions:
        retriever.retrieve(str(questions[0]["question"]))  # warm-up, not timed

    results: list[dict[str, Any]] = []
    for q in questions:
        t0 = time.perf_counter()
        hits = retriever.retrieve(str(q["question"]))
        retrieved = [
            {
                "source": _relative_source(str(hit.node.metadata.get("file_path", "")), root),
                "pages": _page_numbers(hit.node.metadata),
                "score": float(hit.score if hit.score is not None else 0.0),
            }
            for hit in hits
        ]
        latency_ms = (time.perf_counter() - t0) * 1000.0
        results.append(
            {"id": q["id"], "retrieved": retrieved, "refused": False, "latency_ms": latency_ms}
        )

    files = {str(d.metadata.get("file_path", d.doc_id)) for d in documents}
    info = {"documents": len(files), "chunks": len(nodes), "index_seconds": index_seconds}
    return results, info
