"""The judge step's summary line names the set it judged, writes its figures by the rule, and
says when the games it sent cost fewer calls (identical games share one)."""

from __future__ import annotations

from flywheel.tasks.judge_report import JudgeReport


def report(**counts: int) -> JudgeReport:
    return JudgeReport(
        round_id=2, purpose="eval", n_pairs=1600, n_planned_games=3200, n_to_send=3200, **counts
    )


def test_the_summary_names_the_set_and_separates_thousands() -> None:
    line = report().summary()
    assert line.startswith("round 2 judge on the eval set: 1,600 pairs, ")
    assert "3,200 games planned (0 answered from the call cache, 3,200 sent, est. $0.0000" in line
    assert "calls" not in line.split("sent")[1].split(",")[0]


def test_games_sent_in_fewer_calls_say_so() -> None:
    line = report(n_calls_sent=2450).summary()
    assert "3,200 sent in 2,450 calls, identical games sharing one, est." in line
    assert "train battles" in JudgeReport(round_id=1, purpose="train").summary()
