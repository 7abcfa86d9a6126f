"""The composition root: builds every stage from config, once, and serves.

Nothing here is imported by the stages themselves; configuration is passed in. The
emulator starts only when some provider has no key (or `emulator.mode = "always"`), and
the log says which providers it serves.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from modelrouter_server.api.admission import Admission, AdmissionInterceptor, AdmissionLimits
from modelrouter_server.api.descriptors import ensure_descriptors
from modelrouter_server.api.drain import drain
from modelrouter_server.api.server import GrpcServer
from modelrouter_server.api.servicer import ModelRouterServicer, ServicerDeps
from modelrouter_server.api.tls import server_credentials
from modelrouter_server.config import ProviderKind, RouterConfig, check_exposure, load_config
from modelrouter_server.context import (
    ContextManager,
    ConversationService,
    ConversationStore,
    ModelSummarizer,
    TokenCounter,
    open_store,
)
from modelrouter_server.emulator import EmulatedModel, Emulator
from modelrouter_server.generation import Generation
from modelrouter_server.observability import Metrics, configure_logging
from modelrouter_server.providers import (
    Provider,
    build_providers,
    needs_emulator,
    resolve_targets,
)
from modelrouter_server.resilience import BreakerRegistry, CircuitTransition, FallbackChain
from modelrouter_server.routing import Router

log = structlog.get_logger(__name__)


def emulated_models(config: RouterConfig) -> list[EmulatedModel]:
    """The catalog as the emulator must enforce it (same windows and caps)."""
    out = []
    for model_id, model in config.models.items():
        kind = config.providers[model.provider].kind
        out.append(
            EmulatedModel(
                id=model_id,
                api="anthropic" if kind is ProviderKind.ANTHROPIC else "openai",
                context_window=model.context_window,
                max_output_tokens=model.max_output_tokens,
                reasoning=model.capabilities.reasoning_effort,
                thinking=model.capabilities.thinking,
            )
        )
    return out


@dataclass
class App:
    """A running router: its gRPC server and everything the server owns."""

    config: RouterConfig
    grpc: GrpcServer
    admission: Admission
    providers: Mapping[str, Provider]
    store: ConversationStore
    metrics: Metrics
    breakers: BreakerRegistry
    emulator: Emulator | None
    port: int
    metrics_port: int | None

    @classmethod
    async def start(
        cls,
        config: RouterConfig,
        *,
        env: Mapping[str, str],
        host: str | None = None,
        port: int | None = None,
        metrics_port: int | None = None,
        emulator: Emulator | None = None,
    ) -> App:
        """Build and serve. `emulator`: a running one to use instead of starting one
        (tests script it); the caller keeps owning it. `ConfigError` when the config is
        unsafe to serve (no auth on a network address) or its TLS files are unreadable."""
        listen = host or config.server.host
        exposed = check_exposure(config, listen)
        if exposed is not None:
            log.warning("unauthenticated", detail=exposed)
        tls = config.server.tls
        # Read before anything starts, so unreadable files fail start-up with nothing to undo.
        credentials = server_credentials(tls) if tls is not None else None
        budget = ensure_descriptors(config)
        log.info("descriptor_budget", needed=budget.needed, limit=budget.limit)
        owned = False
        if emulator is None and needs_emulator(config, env=env):
            emulator = Emulator(emulated_models(config), admin=config.emulator.admin)
            await emulator.start(config.emulator.host, config.emulator.port)
            owned = True
            log.info("emulator_started", base_url=emulator.base_url)
        base_url = emulator.base_url if emulator else None
        targets = resolve_targets(config, env=env, emulator_base_url=base_url)
        for target in targets.values():
            log.info("provider_ready", provider=target.name, target=target.describe())
        emulated = frozenset(name for name, t in targets.items() if t.emulated)
        if emulated:
            log.warning(
                "serving_through_emulator",
                providers=sorted(emulated),
                hint="set the providers' API key variables to use the real APIs",
            )
        metrics = Metrics()
        providers = build_providers(
            config,
            env=env,
            emulator_base_url=base_url,
            pool_observer=metrics.observe_pool_timeout,
        )

        def on_transition(transition: CircuitTransition) -> None:
            metrics.set_breaker_state(
                transition.provider, transition.model, transition.to_state.value
            )

        breakers = BreakerRegistry.from_config(config.resilience, observers=(on_transition,))
        counter = TokenCounter(config, providers)
        await asyncio.to_thread(counter.load_vocabularies)
        chain = FallbackChain(providers, breakers, config.resilience, counter=counter)
        # Summaries go through the chain: the summarizer model's breaker and the retry loop.
        summarizer = ModelSummarizer(config, chain.complete_request)
        context = ContextManager(config, counter, summarizer=summarizer)
        store = await open_store(config.context)
        conversations = ConversationService(store, counter, config)
        generation = Generation(
            router=Router(config, breakers.allows),
            chain=chain,
            context=context,
            counter=counter,
            conversations=conversations,
            safety_margin_tokens=config.context.safety_margin_tokens,
        )
        servicer = ModelRouterServicer(
            ServicerDeps(
                config=config,
                generation=generation,
                counter=counter,
                conversations=conversations,
                breakers=breakers,
                metrics=metrics,
                emulated_providers=emulated,
            )
        )
        admission = Admission(
            AdmissionLimits(
                max_rpcs=config.admission.max_concurrent_rpcs,
                max_streams=config.admission.max_concurrent_streams,
                retry_after_s=config.admission.retry_after_s,
            )
        )
        grpc_server = GrpcServer(
            servicer,
            limits=config.limits,
            reflection_enabled=config.server.reflection,
            interceptors=[AdmissionInterceptor(admission)],
            idle_connection_timeout_s=config.server.idle_connection_timeout_s,
            max_client_connections=config.admission.max_client_connections,
        )
        bound = await grpc_server.start(
            listen, config.server.port if port is None else port, credentials=credentials
        )
        wanted_metrics = config.server.metrics_port if metrics_port is None else metrics_port
        bound_metrics = (
            metrics.start_http(config.server.metrics_host, wanted_metrics)
            if wanted_metrics
            else None
        )
        return cls(
            config=config,
            grpc=grpc_server,
            admission=admission,
            providers=providers,
            store=store,
            metrics=metrics,
            breakers=breakers,
            emulator=emulator if owned else None,
            port=bound,
            metrics_port=bound_metrics,
        )

    async def stop(self, grace_s: float | None = None) -> None:
        grace = self.config.server.shutdown_grace_s if grace_s is None else grace_s
        await drain(self.grpc, self.admission, grace)
        self.metrics.stop_http()
        for provider in self.providers.values():
            await provider.aclose()
        await self.store.aclose()
        if self.emulator is not None:
            await self.emulator.stop()


async def serve(
    config_path: Path | None, *, host: str | None = None, port: int | None = None
) -> None:
    """Run until SIGINT or SIGTERM, then drain in-flight RPCs and stop."""
    path = config_path or (Path(p) if (p := os.environ.get("MODELROUTER_CONFIG")) else None)
    config = load_config(path)
    configure_logging(json=config.server.log_format.value == "json", level=config.server.log_level)
    app = await App.start(config, env=os.environ, host=host, port=port)
    log.info(
        "serving",
        address=f"{host or config.server.host}:{app.port}",
        metrics=f"http://{config.server.metrics_host}:{app.metrics_port}/metrics"
        if app.metrics_port
        else "off",
        emulated=app.emulator is not None,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting_down")
        await app.stop()
