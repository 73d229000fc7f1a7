"""The step tests' shared fixtures: the tiny local student from test_answer_judge.py."""

from tests.tasks.test_answer_judge import tiny_student  # noqa: F401
