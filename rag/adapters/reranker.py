"""Optional cross-encoder reranking: reads question and passage together, slower but sharper."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from rag.adapters.embedder import resolve_model_path
from rag.errors import EmbedderError

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class CrossEncoderReranker:
    """Scores (question, passage) pairs with a sentence-transformers CrossEncoder, as 0..1."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        self._model_name = model
        self._device = device

    @cached_property
    def _model(self) -> CrossEncoder:
        from sentence_transformers import CrossEncoder

        try:
            model: CrossEncoder = CrossEncoder(
                resolve_model_path(self._model_name),
                device=self._device,
                local_files_only=True,
            )
        except (OSError, ValueError) as exc:
            raise EmbedderError(
                f"cannot load the reranking model {self._model_name!r}: {exc}. Give a folder "
                "path, or a model already in the local Hugging Face cache."
            ) from exc
        return model

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        import torch

        # Raw logits (sentence-transformers would apply the model's own activation, often a
        # sigmoid already); one sigmoid here, so every model gives the same 0..1 scale.
        logits = self._model.predict(
            [(question, p) for p in passages],
            convert_to_numpy=True,
            activation_fn=torch.nn.Identity(),
        )
        values = [float(x) for x in logits.reshape(len(passages), -1)[:, -1]]
        # Most rerankers output a relevance logit; a sigmoid makes it a 0..1 evidence score.
        return [1.0 / (1.0 + math.exp(-v)) for v in values]
