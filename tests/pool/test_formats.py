"""Prompt files in the formats people have: Alpaca, ShareGPT, OpenAI chat, JSON, gzip, CSV."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.pool.ingest import add_prompt_file
from flywheel.pool.records import parse_messages
from flywheel.pool.report import NoValidRecordError
from flywheel.warehouse.store import connect

CODE = "Fix this:\n\ndef f(x):\n    return  x"


def stored(config, path: Path) -> list[tuple]:
    """(line, messages, category, reference_answer) of every stored line of `path`."""
    with connect(config.warehouse.path, read_only=True) as con:
        rows = con.execute(
            "select o.line_no, p.messages, p.category, p.reference_answer "
            "from prompt_occurrences as o join prompts as p using (prompt_id) "
            "where o.file_path = ? order by o.line_no",
            [str(path.resolve())],
        ).fetchall()
    return [(line, json.loads(messages), category, ref) for line, messages, category, ref in rows]


def test_alpaca_instruction_and_input_become_the_prompt_and_output_the_reference() -> None:
    record = {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"}
    assert parse_messages(record) == (
        [{"role": "user", "content": "Translate to French.\n\nGood morning"}],
        "Bonjour",
    )
    assert parse_messages({"instruction": "Name a prime.", "input": ""}) == (
        [{"role": "user", "content": "Name a prime."}],
        None,
    )


def test_sharegpt_roles_map_and_a_final_gpt_turn_becomes_the_reference() -> None:
    record = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": CODE},
            {"from": "gpt", "value": "Remove a space."},
            {"from": "human", "value": "Why?"},
            {"from": "gpt", "value": "Style."},
        ]
    }
    messages, reference = parse_messages(record)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == CODE  # indentation kept
    assert reference == "Style."


def test_openai_content_parts_developer_and_tool_turns_are_read() -> None:
    record = {
        "messages": [
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}],
            },
            {"role": "tool", "content": "-3 C, snow"},
            {"role": "assistant", "content": "It is -3 C and snowing."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "And"}, {"type": "text", "text": "tomorrow?"}],
            },
        ]
    }
    messages, reference = parse_messages(record)
    assert messages == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": '[tool call] weather({"city":"Oslo"})'},
        {"role": "user", "content": "[tool result]\n-3 C, snow"},
        {"role": "assistant", "content": "It is -3 C and snowing."},
        {"role": "user", "content": "And\n\ntomorrow?"},
    ]
    assert reference is None


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"question": "Why?"}, "Nearest: rename `question` to `prompt`"),
        ({"id": 3}, "missing field: expected `prompt` (text), `messages` (OpenAI chat turns)"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "only text parts"),
        ({"conversations": [{"from": "robot", "value": "hi"}]}, "has role 'robot'; roles are"),
        ({"conversations": [{"from": "gpt", "value": "Hello"}]}, "wrong roles"),
        ({"instruction": "x", "prompt": "y"}, "has both `prompt` and `instruction`"),
        ({"prompt": "Hi", "category": True}, "`category` must be a string or an integer"),
    ],
)
def test_refusals_name_the_expected_fields_or_the_nearest_format(record: dict, reason: str) -> None:
    from flywheel.pool.records import validate_record

    problem = validate_record(7, record, 8000, "sha")
    assert getattr(problem, "line_no", None) == 7 and reason in problem.reason


def test_json_array_gzip_lines_csv_and_parquet_files_are_ingested(smoke_config, tmp_path) -> None:
    array = tmp_path / "alpaca.json"
    array.write_text(
        json.dumps([{"instruction": "Name a colour.", "output": "Red", "category": 3}])
    )
    lines = tmp_path / "to_json.json"  # what datasets' Dataset.to_json writes: JSON lines
    lines.write_text('{"prompt": "Name a fruit."}\n{"prompt": "Name a tree."}\n')
    gz = tmp_path / "chat.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"messages": [{"role": "user", "content": CODE}]}) + "\n")
    table = tmp_path / "prompts.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instruction", "input", "category"])
        writer.writerow(["Sum these, one per line:", "1\n2\n3", "7"])
        writer.writerow(["", "", "7"])  # no instruction: refused with its line
    parquet = tmp_path / "sharegpt.parquet"
    conversations = [
        [{"from": "human", "value": "Name a river."}, {"from": "gpt", "value": "Nile"}]
    ]
    pq.write_table(pa.table({"conversations": conversations, "category": [5]}), parquet)

    assert add_prompt_file(smoke_config, array).n_added == 1
    assert stored(smoke_config, array) == [
        (1, [{"role": "user", "content": "Name a colour."}], "3", "Red")
    ]
    assert add_prompt_file(smoke_config, lines).n_added == 2
    assert add_prompt_file(smoke_config, gz).n_added == 1
    assert stored(smoke_config, gz)[0][1] == [{"role": "user", "content": CODE}]
    report = add_prompt_file(smoke_config, table)
    assert report.n_added == 1 and [p.line_no for p in report.problems] == [5]  # row 1: lines 2-4
    assert "missing field" in report.problems[0].reason
    assert stored(smoke_config, table)[0][1:3] == (
        [{"role": "user", "content": "Sum these, one per line:\n\n1\n2\n3"}],
        "7",
    )
    assert add_prompt_file(smoke_config, parquet).n_added == 1
    assert stored(smoke_config, parquet) == [
        (1, [{"role": "user", "content": "Name a river."}], "5", "Nile")
    ]


def test_a_csv_without_a_valid_record_is_refused(smoke_config, tmp_path) -> None:
    table = tmp_path / "bad.csv"
    table.write_text("question,answer\nWhy?,Because\n", encoding="utf-8")
    with pytest.raises(NoValidRecordError, match="rename `question` to `prompt`"):
        add_prompt_file(smoke_config, table)
