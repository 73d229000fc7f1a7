"""The step tests' shared fixtures (tests/tasks/answer_judge_fixtures.py): the served-champion
smoke config, a sandbox serving it, the tiny local student."""

from tests.tasks.answer_judge_fixtures import sandbox, served_config, tiny_student  # noqa: F401
