import math

from router.core.features import (
    STRUCT_FEATURES,
    TOOL_RESULT_HEAD_CHARS,
    extract_turn,
    structure_matrix,
)
from router.core.schemas import RouteRequest


def test_prompt_turn() -> None:
    turn = extract_turn(RouteRequest(prompt="What is 2+2?"))
    assert turn.text == "What is 2+2?"
    assert turn.n_turns == 1
    assert not turn.has_tools


def test_last_user_message_with_tool_results_reduced() -> None:
    dump = "row," * 10_000
    req = RouteRequest.model_validate(
        {
            "system": "agent",
            "tools": [{"name": "sql"}],
            "messages": [
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": [{"type": "tool_use", "name": "sql"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "content": [{"type": "text", "text": dump}]},
                        {"type": "text", "text": "summarise it"},
                    ],
                },
            ],
        }
    )
    turn = extract_turn(req)
    assert "first question" not in turn.text
    assert "summarise it" in turn.text
    assert dump[:TOOL_RESULT_HEAD_CHARS] in turn.text
    assert len(turn.text) < TOOL_RESULT_HEAD_CHARS + 100
    assert turn.tool_result_turn and turn.has_tools
    assert turn.n_turns == 2
    # Tokens count the whole conversation, not just the focus text.
    assert turn.approx_tokens >= len(dump) // 4


def test_structure_matrix_columns() -> None:
    turns = [extract_turn(RouteRequest(prompt="x" * 400))]
    m = structure_matrix(turns)
    assert m.shape == (1, len(STRUCT_FEATURES))
    assert math.isclose(m[0, STRUCT_FEATURES.index("log_tokens")], math.log1p(100), rel_tol=1e-6)
