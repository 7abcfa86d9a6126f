"""Names and ids checked against a pattern must match it whole: `$` alone also matches
before a final newline, which the providers then refuse."""

from __future__ import annotations

import re

import pytest
from modelrouter_server.domain import ResponseFormat, ResponseFormatType
from modelrouter_server.errors import RequestError
from modelrouter_server.providers.tool_wire import anthropic_tool_id
from modelrouter_server.structured import check_response_format


def test_a_tool_call_id_with_a_newline_is_rewritten_for_anthropic() -> None:
    sent = anthropic_tool_id("call_1\n")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", sent)
    assert anthropic_tool_id("call_1") == "call_1"


def test_a_response_format_name_with_a_newline_is_refused() -> None:
    fmt = ResponseFormat(ResponseFormatType.JSON_OBJECT, name="answer\n")
    with pytest.raises(RequestError) as err:
        check_response_format(fmt, set())
    assert err.value.field == "response_format.name"
