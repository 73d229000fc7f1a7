"""Migration 019 (preference_pairs.chosen_source): pairs stored before it keep their meaning."""

from __future__ import annotations

from pathlib import Path

import duckdb

from flywheel.warehouse.store import connect, migrate

# a battle pair and a same-context feedback pair as a version-18 warehouse stored them
# (plain SQL: insert_new caches a table's columns per process)
PAIRS_V18 = """
insert into preference_pairs (pair_id, kind, round_id, prompt_id, battle_id, chosen_response_id,
    rejected_response_id, chosen_model, rejected_model, rule_kind, rule_min_gap, score_gap,
    created_at, origin, chosen_conversation_id, chosen_turn_index, rejected_conversation_id,
    rejected_turn_index)
values
    ('d1', 'dpo', 1, 'p1', 'b1', 'r1', 'r2', 'ref:strong', 'v0', 'dpo', 2.0, 7.0, now(),
     'battle', null, null, null, null),
    ('d-fb', 'dpo', 1, 'p1', null, null, null, 'v0', 'v0', 'dpo', null, null, now(),
     'feedback', 'c1', 1, 'c2', 1)
"""


def test_pairs_stored_before_019_say_where_their_chosen_text_comes_from(tmp_path: Path) -> None:
    path = tmp_path / "flywheel.duckdb"
    con = duckdb.connect(str(path))
    assert migrate(con, str(path), up_to=18) == 18
    con.execute(PAIRS_V18)
    con.close()
    with connect(path) as con:
        stored = con.execute(
            "select pair_id, chosen_source from preference_pairs order by pair_id"
        ).fetchall()
    assert stored == [("d-fb", "feedback"), ("d1", None)]
