"""The int8 ONNX embedding backend: made at install time from the multilingual-e5-small
folder (export, quantisation, check, record), and the Embedder it serves agrees with the
float32 sentence-transformers model: same tokens, same prompts, near-identical vectors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag import e5_convert, e5_onnx
from rag.adapters.embedder import SentenceTransformerEmbedder
from rag.adapters.onnx_embedder import OnnxInt8Embedder
from rag.e5_convert import installed_folder
from rag.errors import EmbedderError
from rag.offline import enforce_offline
from rag.settings import EmbeddingSettings, Settings
from rag.wiring import Services

TEXTS = [
    "",
    "hello world",
    "How many days of paid annual leave do employees get?",
    "Combien de jours de congés payés les salariés ont-ils ?",
    "员工每年有多少天带薪年假？",
    "Debian Handbook\nPackaging > APT\n\nAPT gives the target release a pin priority of 990.",
    "get_user_id getUserId HTTPServerError __init__",
    "To create a mirrored ZFS pool, run zpool create tank mirror /dev/sda /dev/sdb. " * 40,
]


@pytest.fixture(scope="module")
def e5_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The installed float32 folder's files, linked into a folder of the test's own (the int8
    file and its record are written there): no 470 MB copy on the suite's disk."""
    installed = installed_folder()
    assert e5_convert.is_complete(installed), "make install builds the e5 folder"
    folder = tmp_path_factory.mktemp("e5") / "model"
    for path in installed.rglob("*"):
        if path.is_file() and path.name not in (e5_onnx.ONNX_FILE, e5_onnx.MANIFEST):
            (folder / path.relative_to(installed)).parent.mkdir(parents=True, exist_ok=True)
            (folder / path.relative_to(installed)).symlink_to(path)
    yield folder
    shutil.rmtree(folder.parent)


@pytest.fixture(scope="module")
def built(e5_folder: Path) -> Path:
    return e5_onnx.build(e5_folder)


@pytest.fixture(scope="module")
def reference(e5_folder: Path) -> Any:
    enforce_offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(e5_folder), device="cpu", local_files_only=True)


def test_the_int8_file_is_recorded_and_a_current_one_is_kept(e5_folder: Path, built: Path) -> None:
    record = json.loads((e5_folder / e5_onnx.MANIFEST).read_text())
    assert built == e5_folder / e5_onnx.ONNX_FILE
    assert record["size"] == built.stat().st_size < 150 * 2**20  # a quarter of float32
    assert record["check_min_cosine"] >= e5_onnx.MIN_COSINE
    assert e5_onnx.is_current(e5_folder)
    assert e5_convert.is_complete(e5_folder)  # the float32 folder is untouched
    made = built.stat().st_mtime_ns

    e5_onnx.build(e5_folder)

    assert built.stat().st_mtime_ns == made


def test_a_damaged_or_outdated_int8_file_is_not_current(e5_folder: Path, built: Path) -> None:
    manifest = e5_folder / e5_onnx.MANIFEST
    record = json.loads(manifest.read_text())
    try:
        manifest.write_text(json.dumps({**record, "sha256": "0" * 64}))
        assert not e5_onnx.is_current(e5_folder)
        manifest.write_text(json.dumps({**record, "weights_sha256": "0" * 64}))
        assert not e5_onnx.is_current(e5_folder)
    finally:
        manifest.write_text(json.dumps(record))
    assert e5_onnx.is_current(e5_folder)


def test_vectors_and_token_counts_agree_with_the_float32_model(
    e5_folder: Path, built: Path, reference: Any
) -> None:
    embedder = OnnxInt8Embedder(EmbeddingSettings(model=str(e5_folder), backend="onnx-int8"))
    assert (embedder.dimension, embedder.max_tokens) == (384, 512)
    assert embedder.model_name == str(e5_folder)
    # Both backends count alike, so chunks fit the window whichever one built them.
    torch_side = SentenceTransformerEmbedder(EmbeddingSettings(model=str(e5_folder)))
    assert [embedder.count_tokens(t) for t in TEXTS] == [torch_side.count_tokens(t) for t in TEXTS]
    passages = np.array(embedder.embed_documents(TEXTS))
    queries = np.array([embedder.embed_query(t) for t in TEXTS])
    want_p = reference.encode(TEXTS, prompt_name="passage", normalize_embeddings=True)
    want_q = reference.encode(TEXTS, prompt_name="query", normalize_embeddings=True)
    assert np.min(np.sum(passages * want_p, axis=1)) > 0.97
    assert np.min(np.sum(queries * want_q, axis=1)) > 0.97
    assert np.allclose(np.linalg.norm(passages, axis=1), 1, atol=1e-3)
    # Alone or within a batch of longer ones: padding is masked out, but int8 activations
    # take one scale per batch, so the vector moves a little (measured 0.986..0.998).
    alone = np.array(embedder.embed_documents([TEXTS[2]]))[0]
    assert float(alone @ passages[2]) > 0.98


def test_the_backend_is_chosen_by_the_settings_and_never_made_at_run_time(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path, embedding=EmbeddingSettings(model=str(tmp_path), backend="onnx-int8")
    )
    embedder = Services(settings).embedder
    assert isinstance(embedder, OnnxInt8Embedder)
    with pytest.raises(EmbedderError, match=r"python -m rag\.e5_onnx"):
        _ = embedder.dimension
    assert not (tmp_path / e5_onnx.ONNX_FILE).exists()


def test_the_default_model_name_means_the_folder_built_at_install_time() -> None:
    """`CITADEL_EMBEDDING__BACKEND=onnx-int8` alone: the int8 file is looked for beside the
    installed default (it was looked for in ./multilingual-e5-small)."""
    embedder = OnnxInt8Embedder(EmbeddingSettings(backend="onnx-int8"))
    folder = e5_convert.installed_folder()
    if (folder / e5_onnx.ONNX_FILE).is_file():  # made here by `make models-e5-int8`
        assert len(embedder.embed_query("congés payés")) == embedder.dimension
    else:
        with pytest.raises(EmbedderError, match=str(folder / e5_onnx.ONNX_FILE)):
            embedder.embed_query("congés payés")
