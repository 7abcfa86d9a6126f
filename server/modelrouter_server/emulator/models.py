"""The models the emulator serves and the limits it enforces for each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Api = Literal["anthropic", "openai"]


@dataclass(frozen=True)
class EmulatedModel:
    """One model the emulator answers for, with the limits the real API enforces.

    `reasoning` applies OpenAI's o-series rules: `max_completion_tokens` only, no
    `temperature`/`top_p`, `reasoning_effort` allowed. `thinking` allows Anthropic's extended
    thinking.
    """

    id: str
    api: Api
    context_window: int
    max_output_tokens: int
    reasoning: bool = False
    thinking: bool = False
    image_base_tokens: int = 85
    image_tile_tokens: int = 170
    """OpenAI image pricing (tokens per image, per 512 px tile)."""

    def __post_init__(self) -> None:
        if self.context_window < 1 or self.max_output_tokens < 1:
            raise ValueError(f"{self.id}: context_window and max_output_tokens must be >= 1")
        if self.reasoning and self.api != "openai":
            raise ValueError(f"{self.id}: reasoning applies to openai models only")
        if self.thinking and self.api != "anthropic":
            raise ValueError(f"{self.id}: thinking applies to anthropic models only")


DEFAULT_MODELS: tuple[EmulatedModel, ...] = (
    EmulatedModel(
        id="claude-3-7-sonnet-20250219",
        api="anthropic",
        context_window=200_000,
        max_output_tokens=64_000,
        thinking=True,
    ),
    EmulatedModel(
        id="o3-mini-2025-01-31",
        api="openai",
        context_window=200_000,
        max_output_tokens=100_000,
        reasoning=True,
    ),
    EmulatedModel(
        id="gpt-4o-mini-2024-07-18",
        api="openai",
        context_window=128_000,
        max_output_tokens=16_384,
        image_base_tokens=2833,
        image_tile_tokens=5667,
    ),
)
"""The catalog served when none is given: one model per rule set the router must handle."""
