"""The `flywheel` command: config errors, read-only SQL, exports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flywheel.flows.cli import main
from flywheel.warehouse.store import connect
from tests.conftest import REPO_ROOT
from tests.warehouse.literal_rows import write_literal_round


def write_config(tmp_path: Path, **changes: Any) -> Path:
    """configs/smoke.yaml with the warehouse in tmp_path and `section.field` changes applied."""
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"]["path"] = str(tmp_path / "flywheel.duckdb")
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[leaf] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BAD_CONFIGS = [
    ("training__sft__learning_rate", "fast", "training.sft.learning_rate"),
    ("training__sft__bogus", 1, "training.sft.bogus: unknown key"),
    ("prompts__slice_size", -5, "prompts.slice_size = -5"),
    ("prompts__eval_size", 0, "prompts.eval_size = 0"),
    ("schedule__stages", ["sft", "ppo"], 'schedule.stages.1 = "ppo"'),
    ("schedule__stages", [], "schedule.stages"),
    ("references__0__max_concurrency", 0, "references.0.max_concurrency = 0"),
    ("judge__timeout_s", -1, "judge.timeout_s = -1"),
    ("evaluation__promotion_margin", 0.7, "evaluation.promotion_margin = 0.7"),
    ("evaluation__ci", 1.5, "evaluation.ci = 1.5"),
    ("warehouse__lock_timeout_s", "soon", "warehouse.lock_timeout_s"),
    ("sandbox__models__sandbox-judge__malformed_rate", 2, "malformed_rate = 2"),
    ("student__device", "tpu", 'student.device = "tpu"'),
    ("references__0__model", "not-served", "sandbox.models has no 'not-served'"),
]


@pytest.mark.parametrize(("field", "value", "expected"), BAD_CONFIGS)
def test_bad_config_names_the_field_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, field: str, value: Any, expected: str
) -> None:
    path = write_config(tmp_path, **{field: value})
    assert main(["sql", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert expected in error
    assert "Fix:" in error or "add it under sandbox.models" in error
    assert not (tmp_path / "flywheel.duckdb").exists(), "nothing may run on an invalid config"


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["sql", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_missing_section_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("references: []\n")
    assert main(["sql", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert "judge: required but missing" in error
    assert "references = []" in error


def test_not_a_mapping_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("- just\n- a list\n")
    assert main(["sql", "--config", str(path)]) == 2
    assert "must be a mapping" in capsys.readouterr().err


def test_sql_lists_tables_and_views_with_their_grain(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["sql", "--config", str(write_config(tmp_path))]) == 0
    listing = capsys.readouterr().out
    assert "one row per judged game" in listing
    assert "v_round_summary" in listing


def test_sql_on_an_empty_warehouse_prints_the_round_summary_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = str(write_config(tmp_path))
    assert main(["sql", "--config", config, "select * from v_round_summary"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("round_id | stage | champion_before | champion_after | promoted")
    assert header.endswith("sandbox_accuracy | wall_s | status | error")


@pytest.mark.parametrize(
    "statement",
    [
        "delete from rounds",
        "drop table rounds",
        "insert into rounds (round_id) values (1)",
        "update rounds set stage = 'x'",
        "create table t (a int)",
        "select 1; delete from rounds",
    ],
)
def test_sql_refuses_writes(tmp_path: Path, capsys: pytest.CaptureFixture, statement: str) -> None:
    config = str(write_config(tmp_path))
    with connect(tmp_path / "flywheel.duckdb") as con:
        write_literal_round(con)
    assert main(["sql", "--config", config, statement]) == 2
    assert "Fix:" in capsys.readouterr().err
    with connect(tmp_path / "flywheel.duckdb") as con:
        assert con.execute("select count(*) from rounds").fetchone()[0] == 1


def test_sql_formats_csv_and_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = str(write_config(tmp_path))
    with connect(tmp_path / "flywheel.duckdb") as con:
        write_literal_round(con)
    query = "select round_id, stage, n_sft from v_round_summary"
    assert main(["sql", "--config", config, "--format", "csv", query]) == 0
    # the literal round's SFT example from its battle and the one mined from users' feedback
    assert capsys.readouterr().out.splitlines() == ["round_id,stage,n_sft", "1,sft,2"]
    assert main(["sql", "--config", config, "--format", "json", query]) == 0
    assert json.loads(capsys.readouterr().out) == [{"round_id": 1, "stage": "sft", "n_sft": 2}]


def test_run_with_an_unset_judge_key_exits_2_before_any_round_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_TEST_UNSET_KEY", raising=False)
    student = tmp_path / "student"  # present, so the run would not stop to build one
    student.mkdir()
    for name in ("config.json", "model.safetensors"):
        (student / name).write_text("{}")
    config = write_config(
        tmp_path,
        judge__api_key_env="FLYWHEEL_TEST_UNSET_KEY",
        student__path=str(student),
        training__output_dir=str(tmp_path / "models"),
    )
    assert main(["run", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "endpoint 'judge'" in error and "FLYWHEEL_TEST_UNSET_KEY, which is not set" in error
    assert "Traceback" not in error and "ExceptionGroup" not in error
    warehouse = tmp_path / "flywheel.duckdb"
    if warehouse.exists():
        with connect(warehouse, read_only=True) as con:
            assert con.execute("select count(*) from rounds").fetchone() == (0,)
            assert con.execute("select count(*) from responses").fetchone() == (0,)


@pytest.mark.parametrize(
    ("query", "first_line"),
    [
        ("select * from nope", "Catalog Error: Table with name nope does not exist. Fix: "),
        ("selec 1", 'Parser Error: syntax error at or near "selec". Fix: correct the SQL'),
        ("select nope from rounds", 'Binder Error: Referenced column "nope" not found'),
        ("select 'a'::int", "Conversion Error: Could not convert string 'a' to INT32. Fix: "),
    ],
)
def test_sql_error_is_one_line_with_the_fix_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, query: str, first_line: str
) -> None:
    assert main(["sql", "--config", str(write_config(tmp_path)), query]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"flywheel: {first_line}")
    assert error.count("\n") == 1, f"one line, no DuckDB context or traceback: {error!r}"


def test_sql_error_passes_on_duckdb_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["sql", "--config", str(write_config(tmp_path)), "select * from battle"]) == 2
    assert 'Did you mean "battles"?' in capsys.readouterr().err


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_sql_on_a_bad_warehouse_path_names_the_field_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, where: str
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("a regular file")
    bad_path = tmp_path / "folder" if where == "folder" else tmp_path / "notes.txt" / "w.duckdb"
    config = str(write_config(tmp_path, warehouse__path=str(bad_path)))
    assert main(["sql", "--config", config]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"flywheel: warehouse.path = {str(bad_path)!r} ")
    assert "Fix:" in error and error.count("\n") == 1
    assert list((tmp_path / "folder").iterdir()) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty: no records, nothing added"),
        (
            '{"text": "hi"}\n[1]\n',
            "has no valid record: all 2 are malformed, nothing added; "
            "the first is line 1: missing field",
        ),
    ],
)
def test_prompts_add_of_a_file_without_a_valid_record_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str, expected: str
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(content)
    assert main(["prompts", "add", "--config", str(write_config(tmp_path)), str(prompts)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"flywheel: prompt file {str(prompts)!r} {expected}")
    assert "Fix:" in error


@pytest.mark.parametrize("problem", ["missing", "folder"])
def test_prompts_add_of_a_missing_or_unreadable_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, problem: str
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    if problem == "folder":
        prompts.mkdir()
    assert main(["prompts", "add", "--config", str(write_config(tmp_path)), str(prompts)]) == 2
    assert str(prompts) in capsys.readouterr().err


def test_prompts_add_of_a_partly_malformed_file_adds_the_good_records_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Why is the sky blue?"}\n{"text": "no prompt"}\n')
    assert main(["prompts", "add", "--config", str(write_config(tmp_path)), str(prompts)]) == 0
    report = capsys.readouterr().out
    assert "1 added" in report and "1 malformed (skipped)" in report and "line 2:" in report


# the literal round's rows: each from its battle; sft and dpo also have one from users' feedback,
# and dpo one from a user's correction
LITERAL_ROWS_OF_KIND = {"sft": 2, "dpo": 3, "rm": 1}


@pytest.mark.parametrize("kind", ["sft", "dpo", "rm"])
def test_export_writes_trl_ready_rows_that_load_with_datasets(tmp_path: Path, kind: str) -> None:
    import datasets

    config = str(write_config(tmp_path))
    with connect(tmp_path / "flywheel.duckdb") as con:
        write_literal_round(con)
    for suffix in ("jsonl", "parquet"):
        out = tmp_path / f"{kind}.{suffix}"
        assert (
            main(["export", "--config", config, "--kind", kind, "--round", "1", "--out", str(out)])
            == 0
        )
        loader = "json" if suffix == "jsonl" else "parquet"
        dataset = datasets.load_dataset(loader, data_files=str(out), split="train")
        assert len(dataset) == LITERAL_ROWS_OF_KIND[kind]
        if kind == "sft":
            assert dataset.column_names == ["messages"]
            assert dataset[0]["messages"][-1] == {"role": "assistant", "content": "Answer: 5"}
        else:
            assert dataset.column_names == ["prompt", "chosen", "rejected"]
            assert dataset[0]["chosen"] == [{"role": "assistant", "content": "Answer: 5"}]
            assert dataset[0]["rejected"] == [{"role": "assistant", "content": "Answer: 6"}]


def test_export_of_a_round_without_data_writes_no_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = str(write_config(tmp_path))
    out = tmp_path / "none.jsonl"
    assert (
        main(["export", "--config", config, "--kind", "sft", "--round", "9", "--out", str(out)])
        == 0
    )
    assert out.read_text() == ""
    assert "wrote 0 sft rows (round 9)" in capsys.readouterr().out


def test_console_command_is_installed_and_prints_help() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "flywheel"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "run" in result.stdout and "sql" in result.stdout and "export" in result.stdout


def test_init_with_a_gguf_student_converts_it_instead_of_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flywheel.llm.gguf import MANIFEST_NAME, base_checkpoint_dir, file_sha256

    gguf = tmp_path / "mine.Q4_1.gguf"
    gguf.write_bytes(b"gguf bytes")
    output_dir = tmp_path / "models"
    converted = base_checkpoint_dir(gguf, output_dir)  # as an earlier conversion left it
    converted.mkdir(parents=True)
    (converted / MANIFEST_NAME).write_text(json.dumps({"sha256": file_sha256(gguf)}))
    path = write_config(tmp_path, student__path=str(gguf), training__output_dir=str(output_dir))
    assert main(["init", "--config", str(path)]) == 0
    assert f"round-0 student: {converted} (converted from {gguf})" in capsys.readouterr().out
