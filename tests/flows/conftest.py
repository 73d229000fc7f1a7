"""The flow tests' shared fixtures: the untrained smoke student from test_round.py."""

from tests.flows.test_round import smoke_student  # noqa: F401
