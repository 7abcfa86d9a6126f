"""Images through gRPC: sent to both providers in their own shapes, counted with each
provider's published formula in CountTokens (and so in window fitting), models without
vision skipped, and bad images refused naming the part."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from modelrouter_client import AsyncModelRouterClient, pb
from modelrouter_client.errors import InvalidArgumentError
from modelrouter_server.emulator import Emulator
from modelrouter_testsupport.images import png

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-3-7-sonnet-20250219"
O3 = "o3-mini-2025-01-31"


def with_image(image: pb.Image, text: str = "What is in this picture?") -> list[pb.Message]:
    return [pb.Message(role=pb.ROLE_USER, content=text, parts=[pb.Part(image=image)])]


PICTURE = pb.Image(data=png(1000, 500), media_type="image/png")


def _sent(emulator: Emulator, model: str) -> dict[str, Any]:
    body = [r for r in emulator.requests if r.model == model][-1].body
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize(
    ("model", "image", "tokens"),
    [
        (CLAUDE, PICTURE, 667),  # ceil(1000 * 500 / 750)
        (GPT, PICTURE, 2833 + 5667 * 2),  # 2 x 1 tiles at gpt-4o-mini's prices
        (GPT, pb.Image(data=png(1000, 500), media_type="image/png", detail="low"), 2833),
        (CLAUDE, pb.Image(url="https://example.com/cat.png"), 1600),  # unknown: the most
    ],
)
async def test_count_tokens_adds_each_providers_image_formula(
    router: AsyncModelRouterClient, model: str, image: pb.Image, tokens: int
) -> None:
    plain = await router.count_tokens("What is in this picture?", model=model)
    counted = await router.count_tokens(with_image(image), model=model)

    assert counted.input_tokens - plain.input_tokens == tokens


async def test_an_image_reaches_openai_as_a_data_url_and_is_billed(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    reply = await router.generate(with_image(PICTURE), model=GPT)

    content = _sent(emulator, GPT)["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is in this picture?"}
    url = content[1]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(png(1000, 500)).decode()
    assert content[1]["image_url"]["detail"] == "auto"
    counted = await router.count_tokens(with_image(PICTURE), model=GPT)
    assert reply.usage.input_tokens == counted.input_tokens


async def test_an_image_reaches_claude_as_a_base64_block(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    await router.generate(with_image(PICTURE), model=CLAUDE)

    block = _sent(emulator, CLAUDE)["messages"][0]["content"][1]
    # The newest turn's last block carries the prompt cache's breakpoint.
    assert block.pop("cache_control") == {"type": "ephemeral"}
    assert block == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(png(1000, 500)).decode(),
        },
    }


async def test_a_model_without_vision_is_skipped(router: AsyncModelRouterClient) -> None:
    reply = await router.generate(with_image(PICTURE), task=pb.TASK_REASONING)

    assert reply.model == CLAUDE
    skipped = reply.attempts[0]
    assert skipped.model == O3
    assert skipped.outcome == pb.ATTEMPT_OUTCOME_SKIPPED_CAPABILITY
    assert "does not take images" in skipped.error


@pytest.mark.parametrize(
    ("image", "field", "says"),
    [
        (pb.Image(data=png(10, 10), media_type="image/jpeg"), "data", "not image/jpeg"),
        (pb.Image(data=b"GIF89a", media_type="image/gif"), "data", "not a JPEG"),
        (pb.Image(data=png(9000, 10), media_type="image/png"), "data", "8000"),
        (pb.Image(data=png(10, 10), media_type="image/png", detail="ultra"), "detail", "low"),
        (pb.Image(url="http://example.com/a.png"), "url", "https"),
        (pb.Image(data=png(10, 10), media_type="image/bmp"), "media_type", "image/png"),
    ],
)
async def test_a_bad_image_is_refused_naming_the_part(
    router: AsyncModelRouterClient, image: pb.Image, field: str, says: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await router.generate(with_image(image))

    path = f"messages[0].parts[0].image.{field}"
    assert path in caught.value.field_violations
    assert says in caught.value.field_violations[path]
