"""The docker compose deployment, checked as files: no Docker engine is needed (nor run).

Compose's variable substitution is reproduced here (`${VAR}`, `${VAR:-default}`,
`${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `$$`) so that the values Citadel gets
can be validated by the real `Settings` model.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from rag.settings import Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
CITADEL = SERVICES["citadel"]
VLLM = SERVICES["vllm"]
DOCS = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
ONE_SHOT = "ollama-pull"
OLLAMA_VARIANTS = ("ollama", "ollama-gpu")
# Inside its container Citadel must listen on every interface; the host publishes one port.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg, value = match.group("op"), match.group("arg"), env.get(name)
        missing = not value if op in (":-", ":?") else value is None
        if missing and op in (":-", "-"):
            return arg
        if missing and op in (":?", "?"):
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _VARIABLE.sub(replace, text)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def compose_variables() -> set[str]:
    """The variables compose substitutes (`$$NAME` is a literal for the container's shell)."""
    names = set()
    for text in strings(COMPOSE):
        for match in _VARIABLE.finditer(text):
            if match.group(0) != "$$":
                names.add(match.group("name") or match.group("bare"))
    return names


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def commented_assignments(path: Path) -> dict[str, str]:
    """`#   NAME=value` lines: settings an env file shows without setting them."""
    pairs = re.findall(
        r"^#\s+([A-Z][A-Z0-9_]*)=(\S*)\s*$", path.read_text(encoding="utf-8"), re.MULTILINE
    )
    return dict(pairs)


ENV_EXAMPLE = env_file(REPO / ".env.example")
CONFIGURED = {**ENV_EXAMPLE, "QDRANT_API_KEY": "a-long-random-key"}
VLLM_KEY = "another-long-random-key"
# The .env lines that switch the stack from Ollama to vLLM (docs/deployment.md gives them).
VLLM_SWITCH = {
    "COMPOSE_PROFILES": "vllm",
    "CITADEL_MODEL": "qwen2.5-7b-instruct",
    "CITADEL_LLM__PROVIDER": "openai",
    "CITADEL_LLM__HOST": "http://vllm:8000/v1",
}
# What .env holds under each profile that runs a model server in the stack.
PROFILE_ENV: dict[str, dict[str, str]] = {
    "cpu": CONFIGURED,
    "gpu": {**CONFIGURED, "COMPOSE_PROFILES": "gpu"},
    "vllm": {**CONFIGURED, **VLLM_SWITCH, "VLLM_API_KEY": VLLM_KEY},
}


def service_environment(name: str, env: Mapping[str, str]) -> dict[str, str]:
    environment = SERVICES[name].get("environment", {})
    return {key: interpolate(str(value), env) for key, value in environment.items()}


def citadel_environment(env: Mapping[str, str]) -> dict[str, str]:
    return service_environment("citadel", env)


def active_services(profiles: str) -> set[str]:
    """The services compose runs for COMPOSE_PROFILES=`profiles`."""
    enabled = {profile for profile in profiles.split(",") if profile}
    return {
        name
        for name, service in SERVICES.items()
        if "profiles" not in service or enabled & set(service["profiles"])
    }


def network_names(name: str) -> set[str]:
    """The names a service answers to on the project's network."""
    networks = SERVICES[name].get("networks") or {}
    return {name, *((networks.get("default") or {}).get("aliases") or [])}


def waited_for(name: str, active: set[str]) -> set[str]:
    """What compose starts, and waits for, before `name`; fails where compose would refuse
    (a required dependency that no profile enables) or could never go on (a health condition
    on a service without a health check, a completion on a service that restarts)."""
    waited: set[str] = set()
    for dependency, config in SERVICES[name].get("depends_on", {}).items():
        if dependency not in active:
            assert config.get("required", True) is False, f"{name} requires {dependency}"
            continue
        if config["condition"] == "service_healthy":
            assert "healthcheck" in SERVICES[dependency], dependency
        if config["condition"] == "service_completed_successfully":
            assert SERVICES[dependency]["restart"] == "no", dependency
        waited |= {dependency} | waited_for(dependency, active)
    return waited


def run_vllm_command(env: Mapping[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The vllm service's command as its container runs it (entrypoint, environment), with a
    stand-in `vllm` that prints its arguments one a line."""
    stand_in = tmp_path / "bin" / "vllm"
    stand_in.parent.mkdir(exist_ok=True)
    stand_in.write_text('#!/bin/sh\nfor arg in "$@"; do printf \'%s\\n\' "$arg"; done\n')
    stand_in.chmod(0o755)
    (script,) = VLLM["command"]
    container_env = {**service_environment("vllm", env), "PATH": f"{stand_in.parent}:/usr/bin:/bin"}
    return subprocess.run(
        [*VLLM["entrypoint"], interpolate(script, env)],
        env=container_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def is_settings_path(variable: str) -> bool:
    """CITADEL_QDRANT__URL -> Settings.qdrant.url, which must be a leaf (not a whole model)."""
    if not variable.startswith("CITADEL_"):
        return False
    model: type[BaseModel] | None = Settings
    for part in variable.removeprefix("CITADEL_").lower().split("__"):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            model = None
    return model is None


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comment lines dropped (as Docker)."""
    instructions, current = [], ""
    for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            name, _, rest = current.strip().partition(" ")
            instructions.append((name.upper(), rest.strip()))
        current = ""
    return instructions


def instruction(name: str) -> list[str]:
    return [rest for found, rest in dockerfile() if found == name]


def test_the_stack_is_qdrant_a_model_server_by_profile_the_model_pull_and_citadel() -> None:
    assert set(SERVICES) == {"qdrant", "ollama", "ollama-gpu", "vllm", ONE_SHOT, "citadel"}
    assert SERVICES["ollama"]["profiles"] == ["cpu"]
    assert SERVICES["ollama-gpu"]["profiles"] == ["gpu"]
    assert VLLM["profiles"] == ["vllm"]
    # The pull runs with Ollama only: under the vllm profile nothing waits for it.
    assert sorted(SERVICES[ONE_SHOT]["profiles"]) == sorted(
        profile for name in OLLAMA_VARIANTS for profile in SERVICES[name]["profiles"]
    )
    assert all("profiles" not in SERVICES[name] for name in ("qdrant", "citadel"))
    assert ENV_EXAMPLE["COMPOSE_PROFILES"] == "cpu"
    assert active_services("cpu") == {"qdrant", "ollama", ONE_SHOT, "citadel"}
    assert active_services("vllm") == {"qdrant", "vllm", "citadel"}
    assert active_services("") == {"qdrant", "citadel"}


def test_only_citadel_publishes_a_port_and_it_is_the_one_the_image_exposes() -> None:
    assert [name for name, service in SERVICES.items() if "ports" in service] == ["citadel"]
    (port,) = CITADEL["ports"]
    assert interpolate(port, {}) == "8000:8000"
    assert interpolate(port, {"CITADEL_PORT": "127.0.0.1:9000"}) == "127.0.0.1:9000:8000"
    assert instruction("EXPOSE") == [port.rsplit(":", 1)[1]]


def test_third_party_images_are_pinned() -> None:
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", SERVICES["qdrant"]["image"])
    for name in ("ollama", "ollama-gpu", ONE_SHOT):
        assert SERVICES[name]["image"] == "ollama/ollama:0.12.6"
    assert re.fullmatch(r"vllm/vllm-openai:v\d+\.\d+\.\d+", VLLM["image"])
    assert CITADEL["image"] == "citadel:${CITADEL_VERSION:-latest}"
    assert CITADEL["build"]["context"] == "."


def test_the_qdrant_server_is_the_minor_version_of_citadels_qdrant_client() -> None:
    # qdrant-client warns against (and is not tested with) a server more than 1 minor away.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    (client,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("qdrant-client")]
    client_minor = re.search(r">=\s*(\d+\.\d+)", client)
    server_minor = re.search(r":v(\d+\.\d+)\.", SERVICES["qdrant"]["image"])
    assert client_minor and server_minor
    assert server_minor.group(1) == client_minor.group(1)


def test_every_long_running_service_has_a_healthcheck_and_restarts() -> None:
    for name, service in SERVICES.items():
        if name == ONE_SHOT:
            assert service["restart"] == "no"
            assert "healthcheck" not in service
        else:
            assert service["restart"] == "unless-stopped", name
            assert service["healthcheck"]["test"][0] == "CMD", name


def test_citadel_health_is_liveness_so_a_stopped_model_server_is_only_search_mode() -> None:
    check = " ".join(CITADEL["healthcheck"]["test"])
    assert "/healthz" in check
    assert "/readyz" not in check
    (image_check,) = instruction("HEALTHCHECK")
    assert "/healthz" in image_check


def test_the_gpu_variant_is_ollama_with_nvidia_gpus_answering_to_the_same_name() -> None:
    cpu, gpu = SERVICES["ollama"], SERVICES["ollama-gpu"]
    for key in ("image", "volumes", "healthcheck", "expose"):
        assert gpu[key] == cpu[key]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert "ollama" in gpu["networks"]["default"]["aliases"]


def test_the_model_pull_skips_a_model_already_present_and_pulls_what_citadel_uses() -> None:
    pull = SERVICES[ONE_SHOT]
    script = pull["command"][0]
    assert 0 <= script.index("ollama show") < script.index("ollama pull")
    assert pull["environment"]["OLLAMA_HOST"] == "http://ollama:11434"
    for env in ({}, {"CITADEL_MODEL": "qwen2.5:7b"}):
        wanted = interpolate(pull["environment"]["MODEL"], env)
        assert wanted == citadel_environment({**env, "QDRANT_API_KEY": "k"})["CITADEL_LLM__MODEL"]
    for variant in OLLAMA_VARIANTS:
        assert pull["depends_on"][variant] == {"condition": "service_healthy", "required": False}


def test_citadel_waits_for_qdrant_and_for_the_model_server_of_the_active_profile() -> None:
    assert CITADEL["depends_on"] == {
        "qdrant": {"condition": "service_healthy"},
        ONE_SHOT: {"condition": "service_completed_successfully", "required": False},
        "vllm": {"condition": "service_healthy", "required": False},
    }


@pytest.mark.parametrize("profile", sorted(PROFILE_ENV))
def test_under_each_profile_citadel_waits_for_the_model_server_it_talks_to(profile: str) -> None:
    env = PROFILE_ENV[profile]
    active = active_services(env["COMPOSE_PROFILES"])
    waited = waited_for("citadel", active)
    assert "qdrant" in waited
    host = urlsplit(citadel_environment(env)["CITADEL_LLM__HOST"])
    (server,) = [name for name in active if host.hostname in network_names(name)]
    assert server in waited
    assert str(host.port) in SERVICES[server]["expose"]


def test_with_no_profile_citadel_waits_only_for_qdrant() -> None:
    # A model server elsewhere (a load balancer in front of vLLM replicas), or none at all.
    assert waited_for("citadel", active_services("")) == {"qdrant"}


def test_with_two_model_servers_enabled_citadel_waits_for_both() -> None:
    assert waited_for("citadel", active_services("cpu,vllm")) >= {"ollama", ONE_SHOT, "vllm"}


def test_named_volumes_are_declared_and_each_is_used() -> None:
    used = {
        volume.split(":", 1)[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/", "$"))
    }
    assert used == set(COMPOSE["volumes"])
    assert "citadel-data:/data" in CITADEL["volumes"]
    assert "qdrant-storage:/qdrant/storage" in SERVICES["qdrant"]["volumes"]
    assert "ollama-models:/root/.ollama" in SERVICES["ollama"]["volumes"]
    assert instruction("VOLUME") == ["/data"]


def test_the_settings_path_check_catches_a_typo() -> None:
    assert is_settings_path("CITADEL_QDRANT__URL")
    assert not is_settings_path("CITADEL_QDRANT__URLL")
    assert not is_settings_path("CITADEL_QDRANT_URL")
    assert not is_settings_path("CITADEL_LLM")
    assert not is_settings_path("QDRANT__URL")


def test_citadel_is_configured_only_through_real_settings_variables() -> None:
    for variable in CITADEL["environment"]:
        assert is_settings_path(variable), f"{variable} is not a Citadel setting"


def test_the_compose_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in citadel_environment(CONFIGURED).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.data_dir == Path("/data")
    assert settings.qdrant.url == "http://qdrant:6333"
    assert settings.qdrant.api_key is not None
    assert settings.qdrant.api_key.get_secret_value() == "a-long-random-key"
    assert settings.llm.provider == "ollama"
    assert settings.llm.host == "http://ollama:11434"
    assert settings.llm.model == "llama3.2:3b"
    assert not settings.llm.api_key  # empty: no key is sent
    assert settings.server.host == ALL_INTERFACES
    assert settings.server.auth


def test_the_vllm_profile_values_are_valid_settings_for_the_openai_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in citadel_environment(PROFILE_ENV["vllm"]).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.llm.provider == "openai"
    assert settings.llm.host == "http://vllm:8000/v1"
    assert settings.llm.model == "qwen2.5-7b-instruct"
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == VLLM_KEY
    assert settings.qdrant.api_key is not None


def test_the_vllm_switch_is_the_one_the_docs_and_the_env_example_give() -> None:
    shown = commented_assignments(REPO / ".env.example")
    for name, value in VLLM_SWITCH.items():
        assert f"{name}={value}" in DOCS
        assert shown[name] == value
        assert name in ENV_EXAMPLE  # a line of .env.example to change, not one to add
    assert "VLLM_API_KEY" in ENV_EXAMPLE


def test_vllm_is_not_published_is_health_checked_and_gets_the_gpus_as_ollama_gpu() -> None:
    assert "ports" not in VLLM
    assert VLLM["expose"] == ["8000"]
    assert VLLM["restart"] == "unless-stopped"
    check = VLLM["healthcheck"]["test"]
    assert check[0] == "CMD"
    assert "http://127.0.0.1:8000/health" in " ".join(check)
    assert VLLM["deploy"] == SERVICES["ollama-gpu"]["deploy"]
    (device,) = VLLM["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]


def test_the_vllm_weights_come_from_a_read_only_folder_and_it_runs_offline() -> None:
    (mount,) = VLLM["volumes"]
    source, target, mode = interpolate(mount, ENV_EXAMPLE).split(":")
    assert (source, target, mode) == (ENV_EXAMPLE["VLLM_MODELS_DIR"], "/models", "ro")
    assert interpolate(mount, {}).startswith("./")
    env = service_environment("vllm", ENV_EXAMPLE)
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["HF_HUB_CACHE"].startswith("/models/")
    assert env["MODEL"].startswith("/models/")
    # Nothing leaves the premises: vLLM's usage statistics are off.
    assert env["VLLM_NO_USAGE_STATS"] == env["DO_NOT_TRACK"] == "1"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, {"--tensor-parallel-size": "1", "--max-model-len": "8192"}),
        (
            {
                "VLLM_TENSOR_PARALLEL_SIZE": "4",
                "VLLM_MAX_MODEL_LEN": "32768",
                "VLLM_ARGS": "--gpu-memory-utilization 0.85 --reasoning-parser qwen3",
            },
            {
                "--tensor-parallel-size": "4",
                "--max-model-len": "32768",
                "--gpu-memory-utilization": "0.85",
                "--reasoning-parser": "qwen3",
            },
        ),
    ],
)
def test_vllm_serves_the_weights_under_citadels_model_name_with_the_shared_key(
    tmp_path: Path, settings: dict[str, str], expected: dict[str, str]
) -> None:
    weights = tmp_path / "Qwen2.5-7B-Instruct"
    weights.mkdir()
    env = {**PROFILE_ENV["vllm"], "VLLM_MODEL": str(weights), **settings}
    done = run_vllm_command(env, tmp_path)
    assert done.returncode == 0, done.stderr
    args = done.stdout.splitlines()
    assert args[:2] == ["serve", str(weights)]
    flags = dict(zip(args[2::2], args[3::2], strict=True))
    citadel = citadel_environment(env)
    assert flags["--served-model-name"] == citadel["CITADEL_LLM__MODEL"] == "qwen2.5-7b-instruct"
    assert flags["--api-key"] == citadel["CITADEL_LLM__API_KEY"] == VLLM_KEY
    assert flags["--port"] == "8000"
    assert flags.items() >= expected.items()


def test_vllm_takes_a_model_name_from_the_hugging_face_cache_as_it_is(tmp_path: Path) -> None:
    env = {**PROFILE_ENV["vllm"], "VLLM_MODEL": "Qwen/Qwen2.5-7B-Instruct"}
    done = run_vllm_command(env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["serve", "Qwen/Qwen2.5-7B-Instruct"]


def test_vllm_refuses_to_start_without_an_api_key_or_without_its_weights(tmp_path: Path) -> None:
    no_key = run_vllm_command({**PROFILE_ENV["vllm"], "VLLM_API_KEY": ""}, tmp_path)
    assert no_key.returncode != 0
    assert no_key.stdout == ""
    assert "VLLM_API_KEY" in no_key.stderr
    missing = tmp_path / "not-carried-in"
    no_weights = run_vllm_command({**PROFILE_ENV["vllm"], "VLLM_MODEL": str(missing)}, tmp_path)
    assert no_weights.returncode != 0
    assert no_weights.stdout == ""
    assert str(missing) in no_weights.stderr
    # As .env.example ships it, with only the profile switched: no key, so no start.
    assert run_vllm_command({**CONFIGURED, **VLLM_SWITCH}, tmp_path).returncode != 0


def test_the_qdrant_api_key_is_required_and_shared_by_qdrant_and_citadel() -> None:
    key = "${QDRANT_API_KEY:?set QDRANT_API_KEY in .env}"
    assert SERVICES["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"] == key
    assert CITADEL["environment"]["CITADEL_QDRANT__API_KEY"] == key
    # .env.example ships no key: compose refuses to start until one is set.
    assert ENV_EXAMPLE["QDRANT_API_KEY"] == ""
    with pytest.raises(MissingVariable, match=re.escape("set QDRANT_API_KEY in .env")):
        citadel_environment(ENV_EXAMPLE)


def test_qdrant_sends_no_telemetry() -> None:
    assert SERVICES["qdrant"]["environment"]["QDRANT__TELEMETRY_DISABLED"] == "true"


def test_env_example_names_every_variable_compose_reads() -> None:
    assert compose_variables() <= set(ENV_EXAMPLE)


def test_the_docs_mention_every_variable_and_service() -> None:
    container_variables = {name for s in SERVICES.values() for name in s.get("environment", {})}
    for name in compose_variables() | container_variables | set(ENV_EXAMPLE) | set(SERVICES):
        assert name in DOCS, f"docs/deployment.md does not mention {name}"
    for heading in (
        "On-premises install with docker compose",
        "GPUs: Ollama or vLLM",
        "Scaling out generation with vLLM",
        "No model server: the embedded llama.cpp",
        "Air-gapped install (images and models carried in)",
        "Backups (what to copy)",
        "Upgrading",
    ):
        assert f"## {heading}\n" in DOCS


def test_every_nested_citadel_variable_the_docs_name_is_a_real_setting() -> None:
    named = set(re.findall(r"\bCITADEL_[A-Z0-9_]*__[A-Z0-9_]*[A-Z0-9]", DOCS))
    assert named, "the docs name no nested settings variable"
    assert [name for name in sorted(named) if not is_settings_path(name)] == []


def test_the_image_installs_with_the_makefile_as_ci_does() -> None:
    runs = " ".join(instruction("RUN"))
    assert re.search(r"\bmake install VENV=/opt/venv\b", runs)
    assert "TORCH_INDEX_URL" in runs
    assert "pip install" not in runs  # the install steps live in the Makefile only
    assert re.search(r"^TORCH_INDEX_URL \?=\s*$", (REPO / "Makefile").read_text(), re.MULTILINE)


def test_the_image_copies_every_package_pyproject_installs() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    copied = {shlex.split(rest)[0] for rest in instruction("COPY") if "--from" not in rest}
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in copied
    assert {"pyproject.toml", "Makefile", "README.md"} <= set(
        shlex.split(instruction("COPY")[0])[:-1]
    )


def test_the_image_is_python_311_slim_runs_as_non_root_and_serves() -> None:
    assert "PYTHON_IMAGE=python:3.11-slim-bookworm" in instruction("ARG")
    assert all(rest.startswith("${PYTHON_IMAGE}") for rest in instruction("FROM"))
    user = instruction("USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    # No flags, which would win over the CITADEL_* variables the deployment is configured by.
    assert json.loads(instruction("CMD")[-1]) == ["citadel", "serve"]
    env = dict(pair.split("=", 1) for rest in instruction("ENV") for pair in shlex.split(rest))
    assert env["CITADEL_SERVER__HOST"] == ALL_INTERFACES
    assert env["CITADEL_SERVER__PORT"] == "8000" and instruction("EXPOSE") == ["8000"]
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["CITADEL_DATA_DIR"] == CITADEL["environment"]["CITADEL_DATA_DIR"] == "/data"


def test_the_image_proves_offline_that_both_models_are_baked_in() -> None:
    (warm_up,) = [rest for rest in instruction("RUN") if rest.startswith("--network=none")]
    assert "en_core_web_sm.load()" in warm_up
    assert "SentenceTransformerEmbedder" in warm_up
    assert "citadel --data-dir" in warm_up and " ingest " in warm_up


def test_the_build_context_leaves_out_the_venv_data_git_and_secrets() -> None:
    ignored = set((REPO / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", "data", ".git", ".env"} <= ignored
