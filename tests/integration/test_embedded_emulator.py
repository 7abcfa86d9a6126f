"""The router's embedded emulator (what `make run` serves without keys) keeps its admin
endpoints, which hand out every recorded prompt, closed unless the config opens them."""

from __future__ import annotations

import httpx2
import pytest
from modelrouter_client import AsyncModelRouterClient, user
from modelrouter_server.app import App

from .conftest import make_config


@pytest.mark.parametrize(("admin", "status"), [(None, 404), (True, 200)])
async def test_embedded_emulator_serves_admin_only_when_configured(
    admin: bool | None, status: int
) -> None:
    config = make_config() if admin is None else make_config(emulator={"admin": admin})
    app = await App.start(config, env={}, host="127.0.0.1", port=0)
    try:
        assert app.emulator is not None
        async with AsyncModelRouterClient(f"127.0.0.1:{app.port}", default_timeout=30) as client:
            reply = await client.generate([user("a secret prompt")])
        async with httpx2.AsyncClient() as http:
            listed = await http.get(f"{app.emulator.base_url}/_emulator/requests")
    finally:
        await app.stop(grace_s=0)

    assert reply.text
    assert listed.status_code == status
    # Unreadable records are not worth keeping: only a few, whatever the traffic.
    assert app.emulator.max_records == (1000 if admin else 16)
    assert ("a secret prompt" in listed.text) == (status == 200)
