"""The configuration schema. Every model forbids unknown keys and is immutable."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from modelrouter_server.config.security import (
    TENANT_NAME,
    AuthConfig,
    AuthMode,
    LedgerConfig,
    TenantConfig,
    TlsConfig,
)
from modelrouter_server.domain import Task
from modelrouter_server.redis_connection import parse_redis_url


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


PositiveInt = Annotated[int, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class LogFormat(enum.Enum):
    AUTO = "auto"
    """Console lines on a terminal, JSON otherwise (a service manager, a file, a pipe)."""
    CONSOLE = "console"
    JSON = "json"


MAX_WORKERS = 256
"""More worker processes than this is a typo, not a deployment."""


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 50051
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9464
    """0 disables the Prometheus endpoint."""
    metrics_host: str = "127.0.0.1"
    """The metrics endpoint's own address, so exposing gRPC does not expose metrics."""
    reflection: bool = True
    tls: TlsConfig | None = None
    log_format: LogFormat = LogFormat.AUTO
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_grace_s: NonNegFloat = 30.0
    """On SIGTERM, how long in-flight RPCs may run before they end with UNAVAILABLE."""
    idle_connection_timeout_s: PositiveFloat = 300.0
    """A client connection with no RPC for this long is closed (HTTP/2 GOAWAY)."""
    workers: Annotated[StrictInt, Field(ge=0, le=MAX_WORKERS)] = 0
    """Worker processes sharing the gRPC port (SO_REUSEPORT); 0: one per CPU core this
    process may run on. 1 serves from this one process, with no supervisor."""


class ProviderKind(enum.Enum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    OPENAI_COMPATIBLE = "openai_compatible"


class ProviderConfig(_Strict):
    kind: ProviderKind
    api_key_env: str = ""
    """The environment variable holding the key (the key itself never goes in config)."""
    base_url: str = ""
    """Empty: the SDK's own variable (ANTHROPIC_BASE_URL / OPENAI_BASE_URL), else its default."""
    timeout_s: PositiveFloat = 600.0
    connect_timeout_s: PositiveFloat = 5.0
    max_connections: PositiveInt | None = None
    """Connections in this provider's pool. None: `admission.max_concurrent_rpcs`, so every
    call the server admits can hold a connection and none waits behind a smaller pool."""
    pool_timeout_s: PositiveFloat = 10.0
    """How long a call may wait for a free connection of the pool before it fails."""
    http2: bool = False
    """false: HTTP/1.1, as the SDKs' own default. true: HTTP/2 when the server offers it
    over TLS (ALPN: an https base URL or the SDK's default endpoint), and with prior
    knowledge (h2c), which the server must speak, on an http:// base URL. Off by default
    because the HTTP/2 client (httpx2 2.16) can hold a stream's data back until other data
    comes in on the connection: `python -m bench.load.http2_stall`."""


class Capabilities(_Strict):
    streaming: bool = True
    thinking: bool = False
    reasoning_effort: bool = False
    temperature: bool = True
    continuation: bool = True
    """The model can resume a partial answer (assistant prefill or a continue turn)."""
    tools: bool = False
    """The model takes tool definitions, tool calls and tool results."""
    vision: bool = False
    """The model takes image parts."""
    prompt_caching: bool = False
    """Requests get `cache_control` breakpoints (Anthropic's explicit prompt caching)."""


class Pricing(_Strict):
    """USD per million tokens."""

    input_per_mtok: NonNegFloat = 0.0
    output_per_mtok: NonNegFloat = 0.0
    cache_read_per_mtok: NonNegFloat = 0.0
    cache_write_per_mtok: NonNegFloat = 0.0


class Tokenizer(enum.Enum):
    O200K_BASE = "o200k_base"
    CL100K_BASE = "cl100k_base"
    ANTHROPIC = "anthropic"
    """Anthropic's count_tokens endpoint, else a calibrated local estimate."""


class ModelConfig(_Strict):
    provider: str
    context_window: PositiveInt
    max_output_tokens: PositiveInt
    default_output_tokens: PositiveInt = 4096
    aliases: tuple[str, ...] = ()
    capabilities: Capabilities = Capabilities()
    pricing: Pricing = Pricing()
    tokenizer: Tokenizer = Tokenizer.O200K_BASE
    message_overhead_tokens: Annotated[int, Field(ge=0)] = 3
    """Per-message framing tokens of the chat format (OpenAI cookbook: 3)."""
    reply_priming_tokens: Annotated[int, Field(ge=0)] = 3
    image_base_tokens: Annotated[int, Field(ge=0)] = 85
    """OpenAI image pricing: tokens per image (all of a `low` detail image's cost)."""
    image_tile_tokens: Annotated[int, Field(ge=0)] = 170
    """OpenAI image pricing: tokens per 512 px tile of a `high` detail image."""
    ttft_timeout_s: PositiveFloat | None = None
    """Time-to-first-token limit for this model's streams (a reasoning model thinks before
    its first token); None: `resilience.ttft_timeout_s`."""

    @model_validator(mode="after")
    def _output_fits_window(self) -> ModelConfig:
        if self.max_output_tokens > self.context_window:
            raise ValueError("max_output_tokens is larger than context_window")
        return self


RouteName = Literal["default", "chat", "reasoning", "code", "summarize", "extract"]
"""A route: the default one, or a task's (the `Task` values other than unspecified)."""


class RoutingConfig(_Strict):
    default: tuple[str, ...] = Field(min_length=1)
    """The route for TASK_UNSPECIFIED."""
    tasks: dict[Task, tuple[str, ...]] = Field(default_factory=dict)
    refusal_fallback: tuple[RouteName, ...] = ()
    """Routes ("default" or a task) on which a refusal is passed over for the next model;
    on every other route a refusal is the answer."""


class ResilienceConfig(_Strict):
    max_attempts_per_model: PositiveInt = 3
    backoff_initial_s: PositiveFloat = 0.25
    backoff_max_s: PositiveFloat = 8.0
    backoff_jitter: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_retry_after_s: PositiveFloat = 60.0
    """A provider asking to wait longer than this is treated as down for this request."""
    breaker_fail_max: PositiveInt = 5
    breaker_reset_timeout_s: PositiveFloat = 30.0
    ttft_timeout_s: PositiveFloat = 30.0
    inter_token_timeout_s: PositiveFloat = 30.0
    default_deadline_s: PositiveFloat = 300.0
    """Used when the caller sets no gRPC deadline."""


class AdmissionConfig(_Strict):
    """Concurrency limits of one server; calls past them are refused at once with
    RESOURCE_EXHAUSTED and a RetryInfo, never queued."""

    max_concurrent_rpcs: PositiveInt = 1000
    """ModelRouter RPCs in flight at once (health and reflection are not counted)."""
    max_concurrent_streams: PositiveInt = 500
    """GenerateStream calls in flight at once (also counted as RPCs)."""
    retry_after_s: PositiveFloat = 1.0
    """The delay a refused caller is told to wait (google.rpc.RetryInfo)."""
    max_client_connections: PositiveInt = 2048
    """Client connections (HTTP/2) open at once; more are refused by the transport."""
    max_pending_calls: PositiveInt = 10_000
    """Calls the transport holds while the event loop has not yet taken them up (a burst);
    past it grpc itself cancels new calls, so it sits far above `max_concurrent_rpcs`."""
    reserved_file_descriptors: PositiveInt = 128
    """Descriptors kept for everything but connections (store, logs, metrics, the SDKs)
    in the start-up check against RLIMIT_NOFILE."""


class StoreKind(enum.Enum):
    SQLITE = "sqlite"
    REDIS = "redis"
    MEMORY = "memory"


class ContextConfig(_Strict):
    summarize_threshold: Annotated[float, Field(gt=0, le=1)] = 0.8
    safety_margin_tokens: Annotated[int, Field(ge=0)] = 256
    summarizer_model: str = "gpt-4o-mini-2024-07-18"
    summary_max_tokens: PositiveInt = 1024
    store: StoreKind = StoreKind.SQLITE
    sqlite_path: str = "modelrouter.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    """One server (`redis://`, `rediss://`, `unix://`) or a Redis Cluster
    (`redis+cluster://HOST:PORT`, any one node; `rediss+cluster://` over TLS)."""
    anthropic_estimate_margin: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Share added to the local Claude estimate when count_tokens is unreachable."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parse_redis_url(value)
        return value


class EmulatorMode(enum.Enum):
    AUTO = "auto"
    """Serve each provider whose key is not set through the built-in emulator."""
    ALWAYS = "always"
    OFF = "off"


class EmulatorConfig(_Strict):
    mode: EmulatorMode = EmulatorMode.AUTO
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    admin: bool = False
    """Serve the emulator's /_emulator/ admin endpoints (scripting, and every recorded
    prompt to anyone who can reach the port): for tests and benchmarks only."""


_MIB = 1024 * 1024


class LimitsConfig(_Strict):
    """Size limits on what callers send and receive (README: "Size limits")."""

    max_messages: PositiveInt = 1000
    """Messages in one request (Generate, CountTokens, CreateConversation)."""
    max_message_bytes: PositiveInt = 2 * _MIB
    """UTF-8 bytes of one message's content."""
    max_request_bytes: PositiveInt = 8 * _MIB
    """One serialized request: the gRPC server's receive limit."""
    max_response_bytes: Annotated[int, Field(ge=_MIB)] = 4 * _MIB
    """One serialized reply: the gRPC server's send limit. GetConversation pages its
    messages to stay below it; 4 MiB is what a default gRPC client accepts."""
    max_metadata_entries: PositiveInt = 64
    max_metadata_bytes: PositiveInt = 16 * 1024
    """UTF-8 bytes of a request's metadata keys and values together."""
    max_id_length: Annotated[int, Field(ge=32)] = 128
    """Characters of a conversation id or request id."""
    default_page_size: PositiveInt = 50
    max_page_size: Annotated[int, Field(gt=0, le=500)] = 500
    """Conversations per ListConversations page."""
    max_message_page_size: PositiveInt = 1000
    """Messages per GetConversation page (also its default)."""

    @model_validator(mode="after")
    def _consistent(self) -> LimitsConfig:
        if self.default_page_size > self.max_page_size:
            raise ValueError("default_page_size is larger than max_page_size")
        if self.max_message_bytes > self.max_request_bytes:
            raise ValueError("max_message_bytes is larger than max_request_bytes")
        # A stored message must fit one GetConversation page with the conversation's
        # metadata and framing beside it.
        if self.max_message_bytes + self.max_metadata_bytes + 64 * 1024 > self.max_response_bytes:
            raise ValueError(
                "max_message_bytes + max_metadata_bytes + 64 KiB is larger than "
                "max_response_bytes: one message would not fit a GetConversation reply"
            )
        return self


class RouterConfig(_Strict):
    server: ServerConfig = ServerConfig()
    admission: AdmissionConfig = AdmissionConfig()
    providers: dict[str, ProviderConfig]
    models: dict[str, ModelConfig]
    routing: RoutingConfig
    resilience: ResilienceConfig = ResilienceConfig()
    context: ContextConfig = ContextConfig()
    emulator: EmulatorConfig = EmulatorConfig()
    limits: LimitsConfig = LimitsConfig()
    auth: AuthConfig = AuthConfig()
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    ledger: LedgerConfig = LedgerConfig()

    @model_validator(mode="after")
    def _cross_references(self) -> RouterConfig:
        problems: list[str] = []
        problems.extend(self._tenant_problems())
        names: dict[str, str] = {}
        for model_id, model in self.models.items():
            if model.provider not in self.providers:
                problems.append(f"models.{model_id}.provider: no provider {model.provider!r}")
            for name in (model_id, *model.aliases):
                if name in names and names[name] != model_id:
                    problems.append(
                        f"models.{model_id}.aliases: {name!r} already names {names[name]!r}"
                    )
                names[name] = model_id
        routes = {"routing.default": self.routing.default}
        routes.update({f"routing.tasks.{t.value}": c for t, c in self.routing.tasks.items()})
        for path, chain in routes.items():
            for i, name in enumerate(chain):
                if name not in names:
                    problems.append(f"{path}[{i}]: no model or alias {name!r}")
        streams, rpcs = self.admission.max_concurrent_streams, self.admission.max_concurrent_rpcs
        if self.admission.max_pending_calls < rpcs:
            problems.append(
                f"admission.max_pending_calls: {self.admission.max_pending_calls} is less than "
                f"admission.max_concurrent_rpcs ({rpcs})"
            )
        if streams > rpcs:
            problems.append(
                f"admission.max_concurrent_streams: {streams} is more than "
                f"admission.max_concurrent_rpcs ({rpcs})"
            )
        if self.context.summarizer_model not in names:
            problems.append(
                f"context.summarizer_model: no model or alias {self.context.summarizer_model!r}"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _tenant_problems(self) -> list[str]:
        problems = []
        owners: dict[str, str] = {}
        for name, tenant in self.tenants.items():
            if not TENANT_NAME.fullmatch(name):
                problems.append(f"tenants.{name}: not a tenant name (letters, digits, _ . -)")
            for i, digest in enumerate(tenant.api_key_sha256):
                if digest in owners:
                    problems.append(
                        f"tenants.{name}.api_key_sha256[{i}]: already a key of {owners[digest]!r}"
                    )
                owners.setdefault(digest, name)
            for i, model in enumerate(tenant.allowed_models):
                if self.resolve(model) is None:
                    problems.append(f"tenants.{name}.allowed_models[{i}]: no model {model!r}")
        if self.auth.mode is AuthMode.API_KEY and not owners:
            problems.append('auth.mode: "api_key" needs a tenant with an api_key_sha256')
        return problems

    def pool_size(self, provider: ProviderConfig) -> int:
        """The connections of `provider`'s pool: its `max_connections`, else one per RPC the
        server admits."""
        return provider.max_connections or self.admission.max_concurrent_rpcs

    def resolve(self, name: str) -> str | None:
        """The model id that `name` (an id or alias) stands for."""
        if name in self.models:
            return name
        for model_id, model in self.models.items():
            if name in model.aliases:
                return model_id
        return None
