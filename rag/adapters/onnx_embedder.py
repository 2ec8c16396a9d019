"""Dense embeddings with an int8 ONNX file through onnxruntime: the Embedder port, same
tokenizer, prompts, window and vectors (within int8 rounding) as the sentence-transformers
folder the file was made from (`python -m rag.e5_onnx FOLDER`, at install time).

No torch here: onnxruntime runs the graph, `tokenizers` reads the folder's tokenizer.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.adapters.embedder import as_counted, resolve_model_path
from rag.errors import EmbedderError
from rag.settings import EmbeddingSettings

ONNX_FILE = "model-int8.onnx"  # rag.e5_onnx.ONNX_FILE (that module imports torch)
_MANIFEST = "citadel-onnx.json"


class OnnxSession:
    """One onnxruntime session over the file, with the folder's tokenizer and window."""

    def __init__(self, onnx_file: Path, folder: Path, threads: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.max_tokens = int(config["max_seq_length"])
        pad = json.loads((folder / "config.json").read_text(encoding="utf-8"))["pad_token_id"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._batch_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._batch_tokenizer.enable_truncation(self.max_tokens)
        self._batch_tokenizer.enable_padding(pad_id=int(pad))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        # Threads that spin between calls steal the core a parser process needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.dimension = int(self._session.get_outputs()[0].shape[1] or 0) or len(
            self.embed(["a"])[0]
        )

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The model's inputs for one batch: token ids and mask, padded to the longest."""
        encoded = self._batch_tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
        }

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised vectors of one batch (padded to its longest text)."""
        (vectors,) = self._session.run(None, self.encode(texts))
        return np.asarray(vectors, dtype=np.float32)


class OnnxInt8Embedder:
    """The Embedder port over `FOLDER/model-int8.onnx`. Its `model_name` is the folder's, as
    for the float32 backend: the vectors are the same model's (cosine to float32 > 0.99 on
    the handbook's chunks), so collections built by either backend are searched by the other.

    Dynamic int8 quantises each batch's activations with one scale: a text's vector depends
    a little on the texts batched with it (cosine 0.986..0.998 against the same text alone),
    as much as int8 differs from float32, and far less than retrieval notices.
    """

    def __init__(self, settings: EmbeddingSettings) -> None:
        self._settings = settings
        self._sessions: dict[int, OnnxSession] = {}
        self._threads = 0  # 0: all cores
        self._prompts: dict[str, str] | None = None

    @property
    def _folder(self) -> Path:
        # The default's name means the folder built at install time, as for float32.
        return Path(resolve_model_path(self._settings.model))

    def _session(self) -> OnnxSession:
        threads = self._threads or len(os.sched_getaffinity(0))
        if threads not in self._sessions:
            self._sessions[threads] = self._open(threads)
        return self._sessions[threads]

    def _open(self, threads: int) -> OnnxSession:
        path = self._folder / ONNX_FILE
        if not (self._folder / _MANIFEST).is_file() or not path.is_file():
            raise EmbedderError(
                f"the onnx-int8 embedding backend needs {path}: make it once with "
                f"`python -m rag.e5_onnx {self._folder}` (Citadel never makes it at run time)"
            )
        try:
            return OnnxSession(path, self._folder, threads)
        except Exception as exc:
            raise EmbedderError(f"cannot load {path}: {exc}") from exc

    def _prompt(self, name: str) -> str:
        if self._prompts is None:
            path = self._folder / "config_sentence_transformers.json"
            try:
                config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                config = {}
            self._prompts = dict(config.get("prompts") or {})
        return self._prompts.get(name, "")

    @property
    def model_name(self) -> str:
        return self._settings.model

    @property
    def dimension(self) -> int:
        return self._session().dimension

    @property
    def max_tokens(self) -> int:
        return self._session().max_tokens

    def count_tokens(self, text: str) -> int:
        """Tokens of the text as embedded (the passage prompt and special tokens included)."""
        return len(self._session().tokenizer.encode(as_counted(self._prompt("passage"), text)).ids)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self._embed([self._prompt("passage") + t for t in texts])

    def embed_query(self, text: str) -> list[float]:
        return self._embed([self._prompt("query") + text])[0]

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        session = self._session()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]
        size = self._settings.batch_size
        for start in range(0, len(order), size):
            part = order[start : start + size]
            for i, vector in zip(part, session.embed([texts[i] for i in part]), strict=True):
                out[i] = vector.tolist()
        return out

    def use_threads(self, threads: int) -> None:
        self._threads = max(1, threads)

    @property
    def backend(self) -> str:
        return "onnx-int8"
