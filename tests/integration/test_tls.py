"""TLS and mTLS on the gRPC port, reflection switched off, the metrics endpoint on its own
address, and the refusal to serve a network address with no authentication."""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from modelrouter_client import AsyncModelRouterClient, KeyWithoutTls, ModelRouterClient, TlsFiles
from modelrouter_server.app import App
from modelrouter_server.config import ConfigError
from modelrouter_server.emulator import Emulator
from modelrouter_testsupport.router_process import modelrouter_command

from .certs import Certs, make_certs
from .conftest import StartRouter, make_config


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certs]:
    yield make_certs(tmp_path_factory.mktemp("certs"))


def _tls(certs: Certs, *, mtls: bool = False) -> dict[str, dict[str, object]]:
    tls: dict[str, object] = {
        "cert_file": str(certs.server_cert),
        "key_file": str(certs.server_key),
    }
    if mtls:
        tls["client_ca_file"] = str(certs.ca)
    return {"server": {"metrics_port": 0, "shutdown_grace_s": 0.5, "tls": tls}}


def _port(client: AsyncModelRouterClient) -> int:
    return int(client.target.rsplit(":", 1)[1])


async def _refused(client: AsyncModelRouterClient) -> grpc.StatusCode:
    try:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await client.list_models(timeout=10)
        return error.value.code()
    finally:
        await client.close()


async def test_tls_serves_a_client_that_trusts_its_ca(
    start_router: StartRouter, certs: Certs
) -> None:
    plain = await start_router(**_tls(certs))
    port = _port(plain)
    async with AsyncModelRouterClient(
        f"localhost:{port}", tls=TlsFiles(ca_file=str(certs.ca))
    ) as client:
        assert len(await client.list_models(timeout=10)) == 3
    async with AsyncModelRouterClient(
        f"127.0.0.1:{port}", tls=TlsFiles(ca_file=str(certs.ca))
    ) as client:
        assert len(await client.list_models(timeout=10)) == 3
    # Plaintext to a TLS port, and TLS with the system roots (which do not hold the test
    # CA), both fail before any RPC.
    assert await _refused(plain) is grpc.StatusCode.UNAVAILABLE
    assert (
        await _refused(AsyncModelRouterClient(f"localhost:{port}", tls=TlsFiles()))
        is grpc.StatusCode.UNAVAILABLE
    )


async def test_mtls_refuses_a_client_without_a_trusted_certificate(
    start_router: StartRouter, certs: Certs
) -> None:
    port = _port(await start_router(**_tls(certs, mtls=True)))
    trusted = TlsFiles(str(certs.ca), str(certs.client_cert), str(certs.client_key))
    async with AsyncModelRouterClient(f"localhost:{port}", tls=trusted) as client:
        assert len(await client.list_models(timeout=10)) == 3
    no_cert = TlsFiles(ca_file=str(certs.ca))
    rogue = TlsFiles(str(certs.ca), str(certs.rogue_client_cert), str(certs.rogue_client_key))
    for tls in (no_cert, rogue):
        client = AsyncModelRouterClient(f"localhost:{port}", tls=tls)
        assert await _refused(client) is grpc.StatusCode.UNAVAILABLE


async def test_the_cli_connects_with_tls_and_a_client_certificate(
    start_router: StartRouter, certs: Certs
) -> None:
    port = _port(await start_router(**_tls(certs, mtls=True)))
    base = [*modelrouter_command(), "models", "--target", f"localhost:{port}", "--timeout", "20"]
    files = ["--ca-file", str(certs.ca), "--cert-file", str(certs.client_cert)]
    ok = await asyncio.create_subprocess_exec(
        *base, "--tls", *files, "--key-file", str(certs.client_key),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await ok.communicate()
    assert ok.returncode == 0, err.decode()
    assert "gpt-4o-mini-2024-07-18" in out.decode()
    refused = await asyncio.create_subprocess_exec(
        *base, "--ca-file", str(certs.ca),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await refused.communicate()
    assert refused.returncode == 1 and "UNAVAILABLE" in err.decode()


async def test_reflection_can_be_switched_off(start_router: StartRouter) -> None:
    async def services(client: AsyncModelRouterClient) -> grpc.StatusCode | int:
        async with grpc.aio.insecure_channel(client.target) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            try:
                async for reply in stub.ServerReflectionInfo(iter([request]), timeout=10):
                    return len(reply.list_services_response.service)
            except grpc.aio.AioRpcError as error:
                return error.code()
        raise AssertionError("no reply")

    # ModelRouterService, Health, and reflection v1 and v1alpha.
    assert await services(await start_router()) == 4
    off = await start_router(server={"metrics_port": 0, "reflection": False})
    assert await services(off) is grpc.StatusCode.UNIMPLEMENTED
    assert len(await off.list_models()) == 3


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except (urllib.error.URLError, ConnectionError):
        return 0


async def test_metrics_listen_on_their_own_host(emulator: Emulator) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("127.0.0.2 is a loopback address only on Linux")
    config = make_config(server={"metrics_host": "127.0.0.2", "shutdown_grace_s": 0.5})
    app = await App.start(
        config, env={}, host="127.0.0.1", port=0, metrics_port=0, emulator=emulator
    )
    try:
        assert app.metrics_port is None  # 0 switches the endpoint off
    finally:
        await app.stop(grace_s=0)
    from .test_metrics_endpoint import _free_port

    metrics_port = _free_port()
    app = await App.start(
        config, env={}, host="127.0.0.1", port=0, metrics_port=metrics_port, emulator=emulator
    )
    try:
        loop = asyncio.get_running_loop()
        on_own = await loop.run_in_executor(None, _get, f"http://127.0.0.2:{metrics_port}/metrics")
        on_grpc = await loop.run_in_executor(None, _get, f"http://127.0.0.1:{metrics_port}/metrics")
        assert (on_own, on_grpc) == (200, 0)
    finally:
        await app.stop(grace_s=0)


async def test_no_auth_on_a_network_address_refuses_to_start(emulator: Emulator) -> None:
    with pytest.raises(ConfigError):
        await App.start(make_config(), env={}, host="0.0.0.0", port=0, emulator=emulator)
    # An explicit opt-out starts (and warns).
    app = await App.start(
        make_config(auth={"allow_unauthenticated": True}),
        env={},
        host="0.0.0.0",
        port=0,
        emulator=emulator,
    )
    await app.stop(grace_s=0)


async def test_serve_refuses_with_one_line() -> None:
    serve = await asyncio.create_subprocess_exec(
        *modelrouter_command(), "serve", "--host", "0.0.0.0", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MODELROUTER_CONFIG": ""},
    )  # fmt: skip
    _, err = await asyncio.wait_for(serve.communicate(), timeout=120)
    assert serve.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and 'auth.mode = "none"' in lines[0], lines


async def test_a_key_goes_in_plaintext_only_to_a_loopback_address(certs: Certs) -> None:
    key = "not-a-real-key"
    for target in ("10.0.0.1:50051", "router.internal:50051", "dns:///example.com:443"):
        with pytest.raises(KeyWithoutTls):
            AsyncModelRouterClient(target, api_key=key)
        with pytest.raises(KeyWithoutTls):
            ModelRouterClient(target, api_key=key)
    for target in ("127.0.0.1:50051", "localhost:50051", "[::1]:50051"):
        await AsyncModelRouterClient(target, api_key=key).close()
    tls = TlsFiles(ca_file=str(certs.ca))
    await AsyncModelRouterClient("router.internal:50051", api_key=key, tls=tls).close()
    refused = await asyncio.create_subprocess_exec(
        *modelrouter_command(), "models", "--target", "10.0.0.1:50051", "--api-key", key,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await refused.communicate()
    assert refused.returncode == 2 and "plaintext" in err.decode()
