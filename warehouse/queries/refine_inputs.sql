-- What each selected SFT battle's correction request needs: the conversation and the
-- champion's losing answer (side A of a train battle). params: round_id, battle_ids
with selected as (
    select b.battle_id, b.prompt_id, b.response_a_id
    from battles as b
    where b.round_id = $round_id
      and list_contains($battle_ids, b.battle_id)
), inputs as (
    select s.battle_id, p.messages, r.response_text as champion_answer
    from selected as s
    join prompts as p using (prompt_id)
    join responses as r on r.response_id = s.response_a_id
)
select * from inputs order by battle_id
