"""One settings tree: defaults < YAML file < environment < explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import ConfigurationError
from rag.settings import load_settings


def test_defaults_are_the_embedded_store_under_data():
    settings = load_settings()
    assert settings.data_dir == Path("data")
    assert settings.qdrant.url is None
    assert settings.edge_path == Path("data/qdrant-edge")
    assert settings.embedding.model == "multilingual-e5-small"


def test_nested_environment_variables_override_the_yaml_file(tmp_path, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(
        "qdrant:\n  url: http://from-yaml:6333\ningest:\n  max_file_mb: 5\n", encoding="utf-8"
    )
    monkeypatch.setenv("CITADEL_QDRANT__URL", "http://from-env:6333")
    monkeypatch.setenv("CITADEL_QDRANT__API_KEY", "k3y")

    settings = load_settings(config)

    assert settings.qdrant.url == "http://from-env:6333"
    assert settings.qdrant.api_key is not None
    assert settings.qdrant.api_key.get_secret_value() == "k3y"
    assert "k3y" not in repr(settings)
    assert settings.ingest.max_file_mb == 5


def test_overrides_win_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CITADEL_DATA_DIR", "/from/env")
    assert load_settings(overrides={"data_dir": tmp_path}).data_dir == tmp_path


@pytest.mark.parametrize(
    "content, message",
    [
        ("- just\n- a list\n", "must hold a mapping"),
        ("ingest: {parse_timeout_s: -1}\n", "invalid settings"),
        ("unknown_key: 1\n", "invalid settings"),
        ("qdrant: [unclosed\n", "cannot read settings file"),
    ],
)
def test_bad_settings_files_are_clear_errors(tmp_path, content, message):
    config = tmp_path / "c.yaml"
    config.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_settings(config)
