-- Preference pairs (DPO or reward model): per prompt of this round's train slice, the
-- decisive battle with the largest score gap of at least K (a battle without scores: the
-- strongest label, of strength at least min_strength). The winner's answer is chosen:
-- the reference's where the champion lost, the champion's own where it won. Ties,
-- inconsistent, unparsed and errored battles, and prompts outside the active pool, are excluded.
-- params: round_id, min_gap, min_strength, kind
with decisive_battles as (
    select *
    from v_minable_battles
    where round_id = $round_id
      and (score_gap >= $min_gap or (score_gap is null and label_strength >= $min_strength))
), widest_gap as (
    select *
    from decisive_battles
    qualify row_number() over (
        partition by prompt_id
        order by score_gap desc nulls last, label_strength desc nulls last, model_b
    ) = 1
), pairs as (
    select
        md5(concat_ws('|', $kind, round_id, prompt_id)) as pair_id,
        $kind as kind,
        round_id,
        prompt_id,
        battle_id,
        case when outcome = 'win' then response_a_id else response_b_id end as chosen_response_id,
        case when outcome = 'win' then response_b_id else response_a_id end as rejected_response_id,
        case when outcome = 'win' then model_a else model_b end as chosen_model,
        case when outcome = 'win' then model_b else model_a end as rejected_model,
        $kind as rule_kind,
        $min_gap::double as rule_min_gap,
        score_gap,
        label_strength,
        'battle' as origin
    from widest_gap
)
select * from pairs order by prompt_id
