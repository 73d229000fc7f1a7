"""The objective guard and the first-champion limit through the real evaluate path: the sandbox
serves both student versions, the judge and the checkers; a user's objective file is answered
from local checkpoints; figures are stored with the evaluation (migration 016)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import flywheel.llm.checkpoints as checkpoints
from flywheel.config import Config, resolve_sandbox_endpoints
from flywheel.evaluators.abtest import Decision
from flywheel.evaluators.objective import objective_verdict
from flywheel.pool.general_set import load_general_set
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks.evaluate import EvaluationReport, evaluate_round, run_eval_battles
from flywheel.tasks.general_check import check_general, gate_decision, general_refusal
from flywheel.tasks.objective_check import objective_columns, objective_comparison
from flywheel.warehouse.store import connect, now_utc
from flywheel.warehouse.writes import insert_new
from tests.conftest import load_config_in
from tests.tasks.conversation_fixtures import CANDIDATE, CHAMPION, STUDENT, insert_eval_prompts

PASSING = Decision(promote=True, reason="win rate 0.700 [0.620, 0.780] over 24 prompts")


def served_pair(tmp_path: Path, candidate: float, champion: float, **evaluation: object) -> Config:
    """The smoke config whose student versions v1 and v0 are sandbox models of the given
    accuracies (answers end in `Answer: X`, which the checkers read)."""
    base = load_config_in(tmp_path, "smoke")
    models = {name: m.model_dump() for name, m in base.sandbox.models.items()} | {
        "student-v0": {"accuracy": champion, "verbosity": "terse"},
        "student-v1": {"accuracy": candidate, "verbosity": "terse"},
    }
    return load_config_in(
        tmp_path,
        "smoke",
        student={"endpoint": STUDENT},
        evaluation={"bootstrap_samples": 200, **evaluation},
        sandbox={"models": models},
    )


def evaluated(config: Config, n_prompts: int = 24) -> EvaluationReport:
    insert_eval_prompts(config, n_prompts)
    with start_sandbox(config.sandbox) as server:
        live = resolve_sandbox_endpoints(config, server.base_url)
        run_eval_battles(live, 1, (CANDIDATE, None), (CHAMPION, None))
        return evaluate_round(live, 1, CANDIDATE, CHAMPION)


def stored_evaluation(config: Config) -> dict:
    with connect(config.warehouse.path, read_only=True) as con:
        cursor = con.execute("select * from evaluations")
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row, strict=True))


def test_a_more_accurate_winner_passes_the_guard_and_its_figures_are_stored(
    tmp_path: Path,
) -> None:
    config = served_pair(tmp_path, candidate=0.95, champion=0.4)
    report = evaluated(config)
    assert report.decision.promote, report.decision.reason
    assert report.objective_verdict.outcome == "passed"
    assert "objective set (the sandbox's checkers on 24 held-out prompts): accuracy" in (
        report.decision.reason
    )
    row = stored_evaluation(config)
    assert row["objective_source"] == "sandbox_checkers" and row["objective_n_items"] == 24
    assert row["objective_accuracy_candidate"] == report.sandbox_accuracy_candidate
    assert row["objective_accuracy_champion"] == report.sandbox_accuracy_champion
    assert row["objective_correct_candidate"] == round(24 * report.sandbox_accuracy_candidate)
    low, high = (
        row["objective_accuracy_candidate_ci_low"],
        row["objective_accuracy_candidate_ci_high"],
    )
    assert low <= row["objective_accuracy_candidate"] <= high
    assert (row["objective_outcome"], row["objective_max_drop"]) == ("passed", 0.05)


def test_a_winner_that_lost_objective_ground_is_refused_and_the_reason_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox's judge is honest, so the A/B is forced to pass (a judge fooled by
    confident answers, as issue 32's sycophantic users are); the checkers are not fooled."""
    monkeypatch.setattr(
        "flywheel.tasks.evaluate.decide_promotion", lambda ab, margin, *unit: PASSING
    )
    config = served_pair(tmp_path, candidate=0.2, champion=0.9)
    report = evaluated(config)
    assert not report.decision.promote
    assert report.decision.reason.startswith(PASSING.reason)
    assert "refused on the objective set: accuracy" in report.decision.reason
    assert "(limit 0.050, evaluation.objective_max_drop)" in report.decision.reason
    assert report.refusals == (
        "refused on the objective set: accuracy "
        f"{-report.objective.change:.3f} below the champion's (limit 0.050, "
        "evaluation.objective_max_drop)",
    )
    row = stored_evaluation(config)
    assert (row["decision"], row["objective_outcome"]) == ("keep", "refused")
    assert row["reason"] == report.decision.reason


def test_off_the_sandboxs_skills_without_an_objective_set_the_guard_cannot_apply(
    tmp_path: Path,
) -> None:
    config = served_pair(tmp_path, candidate=0.95, champion=0.4)
    insert_eval_prompts(config, 8)
    with connect(config.warehouse.path) as con:  # prompts no checker can check
        con.execute(
            "update prompts set prompt_text = 'Write a haiku about autumn, ' || prompt_id, "
            "messages = json_array(json_object('role', 'user', 'content', "
            "'Write a haiku about autumn, ' || prompt_id))"
        )
    with start_sandbox(config.sandbox) as server:
        live = resolve_sandbox_endpoints(config, server.base_url)
        run_eval_battles(live, 1, (CANDIDATE, None), (CHAMPION, None))
        report = evaluate_round(live, 1, CANDIDATE, CHAMPION)
    assert report.objective_verdict.outcome == "cannot_apply"
    assert "objective guard cannot apply: no objective set (no held-out prompt the sandbox's " in (
        report.decision.reason
    )
    row = stored_evaluation(config)
    assert row["objective_outcome"] == "cannot_apply" and row["objective_source"] is None


def test_an_objective_file_needs_local_checkpoints_or_the_guard_says_it_cannot_apply(
    tmp_path: Path,
) -> None:
    path = tmp_path / "evals.jsonl"
    path.write_text(json.dumps({"prompt": "What is 3 + 4?", "answer": "7"}) + "\n")
    config = served_pair(tmp_path, candidate=0.95, champion=0.4, objective_set=str(path))
    report = evaluated(config, n_prompts=8)
    assert report.objective_verdict.outcome == "cannot_apply"
    assert (
        f"objective guard cannot apply: v1 and v0 cannot answer evaluation.objective_set {path} "
        "(no local checkpoint)" in report.decision.reason
    )


def add_versions(config: Config, paths: dict[str, str]) -> None:
    rows = [
        {
            "version_id": v,
            "stage": "sft",
            "checkpoint_path": p,
            "status": "x",
            "created_at": now_utc(),
        }
        for v, p in paths.items()
    ]
    with connect(config.warehouse.path) as con:
        insert_new(con, "model_versions", rows, ["version_id"])


def test_an_objective_file_is_answered_once_per_version_from_local_checkpoints(
    tmp_path: Path, tiny_student: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[str] = []
    real = checkpoints.generate_answers

    def counting(path, conversations, **kwargs):
        answered.append(str(path))
        return real(path, conversations, **kwargs)

    monkeypatch.setattr(checkpoints, "generate_answers", counting)
    objective_file = tmp_path / "evals.jsonl"
    lines = [{"prompt": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(3)]
    objective_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    config = load_config_in(
        tmp_path,
        "smoke",
        student={"max_new_tokens": 4},
        evaluation={"objective_set": str(objective_file)},
    )
    add_versions(
        config, {"v0": str(tiny_student), "v1": str(tiny_student), "v2": str(tiny_student)}
    )
    comparison, why = objective_comparison(config, 1, "v1", "v0")
    assert why == "" and comparison is not None and len(answered) == 2
    assert comparison.source == f"{objective_file}, 3 items"
    assert comparison.candidate == comparison.champion  # the same checkpoint, greedy
    assert comparison.candidate.n_items == 3
    columns = objective_columns(comparison, objective_verdict(comparison, 0.05), 0.05)
    assert (
        columns["objective_source"] == "objective_set" and columns["objective_outcome"] == "passed"
    )
    with connect(config.warehouse.path) as con:
        insert_new(
            con,
            "evaluations",
            [
                {
                    "evaluation_id": "e1",
                    "round_id": 1,
                    "candidate": "v1",
                    "champion": "v0",
                    "n_prompts": 0,
                    "wins": 0,
                    "ties": 0,
                    "losses": 0,
                    "n_excluded": 0,
                    "decision": "promote",
                    "reason": "test",
                    "created_at": now_utc(),
                    **columns,
                }
            ],
            ["evaluation_id"],
        )
    later, _ = objective_comparison(config, 2, "v2", "v1")  # v1 was stored as a candidate
    assert len(answered) == 3 and later.champion == comparison.candidate


def write_general_rows(config: Config, rows: dict[str, float]) -> None:
    sha = load_general_set().sha256
    with connect(config.warehouse.path) as con:
        insert_new(
            con,
            "general_checks",
            [
                {
                    "round_id": 1,
                    "version_id": v,
                    "n_items": 63,
                    "mean_nll": nll,
                    "collapse_share": 0.0,
                    "set_sha256": sha,
                    "wall_s": 1.0,
                    "measured_at": now_utc(),
                }
                for v, nll in rows.items()
            ],
            ["round_id", "version_id"],
        )


def fake_checkpoint(root: Path, name: str) -> str:
    path = root / name
    path.mkdir()
    for file in checkpoints.CHECKPOINT_FILES:
        (path / file).write_text("{}")
    return str(path)


def first_limit_config(tmp_path: Path) -> Config:
    config = load_config_in(
        tmp_path,
        "smoke",
        evaluation={"general_max_nll_increase": 0.05, "general_max_nll_increase_from_first": 0.05},
    )
    with connect(config.warehouse.path) as con:
        insert_new(
            con,
            "rounds",
            [
                {"round_id": r, "stage": "sft", "status": "done", "champion_before": c}
                for r, c in ((1, "v0"), (2, "v1"), (3, "v2"))
            ],
            ["round_id"],
        )
    return config


def test_steps_under_the_margin_that_add_up_past_it_are_refused_against_the_first_champion(
    tmp_path: Path,
) -> None:
    config = first_limit_config(tmp_path)
    paths = {v: fake_checkpoint(tmp_path, v) for v in ("v0", "v2", "v3")}
    add_versions(config, paths)
    write_general_rows(config, {"v0": 2.0, "v2": 2.08, "v3": 2.15})  # +4.0%, then +3.4%
    checks = check_general(config, 3, ("v3", paths["v3"]), ("v2", paths["v2"]))
    assert (checks.first_version, checks.first_nll) == ("v0", 2.0)
    decision = gate_decision(PASSING, checks, config.evaluation)
    assert not decision.promote
    assert (
        "general set: NLL 2.15 vs champion 2.08 (+3.4%), collapse 0.000, vs first champion v0 2.00 (+7.5%)"
        in decision.reason
    )
    assert decision.reason.endswith(
        "refused on the general set: general-set NLL 2.15 is +7.5% against the first champion "
        "v0's 2.00 (limit +5.0%, evaluation.general_max_nll_increase_from_first)"
    )
    assert general_refusal(checks, config.evaluation) == (
        "refused on the general set: general-set NLL 2.15 is +7.5% against the first champion "
        "v0's 2.00 (limit +5.0%, evaluation.general_max_nll_increase_from_first)"
    )
    with connect(config.warehouse.path, read_only=True) as con:
        stored = con.execute(
            "select version_id from general_checks where round_id = 3 order by version_id"
        ).fetchall()
    assert stored == [("v0",), ("v2",), ("v3",)]  # the first champion's row read this round


def test_the_first_champion_is_measured_when_its_figures_are_missing(
    tmp_path: Path, tiny_student: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flywheel.llm.general_check as llm_general_check

    measured: list[str] = []
    real = llm_general_check.measure_general_set

    def counting(checkpoint: str, **kwargs: object):
        measured.append(str(checkpoint))
        return real(checkpoint, **kwargs)

    monkeypatch.setattr(llm_general_check, "measure_general_set", counting)
    config = first_limit_config(tmp_path)
    config = config.model_copy(
        update={"student": config.student.model_copy(update={"max_new_tokens": 2})}
    )
    paths = {
        "v0": str(tiny_student),
        "v2": fake_checkpoint(tmp_path, "v2"),
        "v3": fake_checkpoint(tmp_path, "v3"),
    }
    add_versions(config, paths)
    write_general_rows(config, {"v2": 2.08, "v3": 2.15})
    checks = check_general(config, 3, ("v3", paths["v3"]), ("v2", paths["v2"]))
    assert measured == [str(tiny_student)]
    assert checks.first_version == "v0" and checks.first_nll is not None and checks.first_nll > 0


def test_without_the_first_limit_the_first_champion_is_neither_read_nor_named(
    tmp_path: Path,
) -> None:
    config = first_limit_config(tmp_path)
    config = config.model_copy(
        update={
            "evaluation": config.evaluation.model_copy(
                update={"general_max_nll_increase_from_first": None}
            )
        }
    )
    paths = {v: fake_checkpoint(tmp_path, v) for v in ("v0", "v2", "v3")}
    add_versions(config, paths)
    write_general_rows(config, {"v0": 2.0, "v2": 2.08, "v3": 2.15})
    checks = check_general(config, 3, ("v3", paths["v3"]), ("v2", paths["v2"]))
    assert checks.first_version is None
    decision = gate_decision(PASSING, checks, config.evaluation)
    assert decision.promote and "first champion" not in decision.reason
