"""The A/B eval's generation reports its progress as the answer step does: both models'
answers as one (done, total), separate from the judging's."""

from __future__ import annotations

from pathlib import Path

from flywheel.config import resolve_sandbox_endpoints
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks.evaluate import run_eval_battles
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in
from tests.tasks.answer_judge_fixtures import insert_prompts

N_PROMPTS = 6


def test_eval_generation_reports_both_models_answers_then_the_judging(
    tmp_path: Path, tiny_student: Path
) -> None:
    config = load_config_in(tmp_path, "smoke", student={"max_new_tokens": 8, "batch_size": 4})
    insert_prompts(config, N_PROMPTS)
    with connect(config.warehouse.path) as con:
        con.execute("update prompts set split = 'eval', slice_id = null")
    answered: list[tuple[int, int]] = []
    judged: list[tuple[int, int]] = []
    with start_sandbox(config.sandbox) as server:
        run_eval_battles(
            resolve_sandbox_endpoints(config, server.base_url),
            1,
            ("v1", str(tiny_student)),
            ("v0", str(tiny_student)),
            on_progress=lambda done, total: judged.append((done, total)),
            on_answer_progress=lambda done, total: answered.append((done, total)),
        )
    both = 2 * N_PROMPTS
    assert {total for _, total in answered} == {both}
    assert (N_PROMPTS, both) in answered, "the candidate's answers end halfway"
    assert answered[-1] == (both, both)
    assert [done for done, _ in answered] == sorted(done for done, _ in answered)
    assert judged and judged[-1][0] == judged[-1][1] > 0
