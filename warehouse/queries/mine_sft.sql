-- SFT targets: per prompt of this round's train slice, the best reference answer among the
-- battles the champion lost by at least the score gap K, or, for a battle without scores
-- (a label protocol), by a label strength of at least min_strength. Ties, inconsistent,
-- unparsed and errored battles, and prompts outside the active pool, never become training data.
-- params: round_id, min_gap, min_strength
with lost_battles as (
    select *
    from v_minable_battles
    where round_id = $round_id
      and outcome = 'loss'
      and (score_gap >= $min_gap or (score_gap is null and label_strength >= $min_strength))
), best_winner as (
    select *
    from lost_battles
    qualify row_number() over (
        partition by prompt_id
        order by score_b desc nulls last, score_gap desc nulls last,
            label_strength desc nulls last, model_b
    ) = 1
), examples as (
    select
        md5(concat_ws('|', 'sft', round_id, prompt_id)) as example_id,
        round_id,
        prompt_id,
        battle_id,
        response_b_id as response_id,
        model_b as source_model,
        'sft' as rule_kind,
        $min_gap::double as rule_min_gap,
        score_gap,
        label_strength,
        'winner' as target_source,
        null::varchar as target_call_id,
        'battle' as origin
    from best_winner
)
select * from examples order by prompt_id
