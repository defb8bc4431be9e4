"""Tool calls written as text, in each shape local models use: found, and only those."""

from __future__ import annotations

import pytest

from zoo.models.textcalls import parse


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"name": "read_file", "arguments": {"path": "sales:leads/initech.md"}}\n```',
        '{"name": "read_file", "arguments": {"path": "sales:leads/initech.md"}}',
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "sales:leads/initech.md"}}\n'
        "</tool_call>",
        '```\n{"name": "read_file", "parameters": {"path": "sales:leads/initech.md"}}\n```',
        '{"type": "function", "function": {"name": "read_file", '
        '"arguments": "{\\"path\\": \\"sales:leads/initech.md\\"}"}}',
    ],
)
def test_each_shape_is_one_call(text: str) -> None:
    found = parse(text)
    assert [(c.name, c.arguments, c.error) for c in found.calls] == [
        ("read_file", {"path": "sales:leads/initech.md"}, None)
    ]
    assert found.text == ""


def test_calls_mixed_with_prose_keep_the_prose() -> None:
    text = (
        "I will read the lead first.\n\n"
        '<tool_call>{"name": "read_file", "arguments": {"path": "a.md"}}</tool_call>\n'
        '<tool_call>{"name": "remember", "arguments": {"note": "Initech wants a demo"}}'
        "</tool_call>\nThen I hand it on."
    )
    found = parse(text)
    assert [c.name for c in found.calls] == ["read_file", "remember"]
    first, second = (c.id for c in found.calls)
    assert first.startswith("text-") and first.endswith("-0") and second == first[:-1] + "1"
    assert [c.id for c in parse(text).calls] == [first, second]  # the same text, the same ids
    assert all(c.written for c in found.calls)
    assert found.text == "I will read the lead first.\n\n\n\nThen I hand it on."


def test_a_list_of_calls_in_a_fence() -> None:
    text = (
        'Two things:\n```json\n[{"name": "remember", "arguments": {"note": "x"}}, '
        '{"name": "handoff", "arguments": {"to": "owl", "note": "ready"}}]\n```'
    )
    found = parse(text)
    assert [(c.name, c.arguments) for c in found.calls] == [
        ("remember", {"note": "x"}),
        ("handoff", {"to": "owl", "note": "ready"}),
    ]
    assert found.text == "Two things:"


@pytest.mark.parametrize(
    "text",
    [
        "I could call read_file on leads/initech.md, but the brief has all I need.",
        "Use the `handoff` tool when done.",
        '```json\n{"path": "leads/initech.md"}\n```',  # JSON, but no tool named
        '```json\n{"name": "Initech", "industry": "software"}\n```',  # a name, not a call
        '{"name": "read_file", "arguments": ',  # cut short
        "",
    ],
)
def test_text_that_is_not_a_call_is_left_alone(text: str) -> None:
    found = parse(text)
    assert found.calls == () and found.text == text


def test_a_call_to_any_tool_is_returned_for_the_tool_layer_to_judge() -> None:
    found = parse('{"name": "delete_everything", "arguments": {}}')
    assert [c.name for c in found.calls] == ["delete_everything"]


def test_unreadable_arguments_are_the_calls_error() -> None:
    [call] = parse('{"name": "write_file", "arguments": "{not json"}').calls
    assert call.error == "arguments are not valid JSON" and call.arguments == {}
    [call] = parse('{"name": "write_file", "arguments": [1, 2]}').calls
    assert call.error == "arguments must be a JSON object"


def test_a_call_without_arguments_counts_only_for_an_offered_tool() -> None:
    assert [c.name for c in parse('{"name": "list_files"}', ["list_files"]).calls] == ["list_files"]
    assert parse('{"name": "Initech"}', ["list_files"]).calls == ()
