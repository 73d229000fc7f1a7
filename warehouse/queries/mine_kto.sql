-- KTO examples (unpaired desirable / undesirable answers): every decisive train battle of this
-- round with a score gap of at least K (training.mining.kto_min_gap: by default also the
-- battles whose gap is too small for a DPO pair; a battle without scores: label strength at
-- least min_strength) labels its winner's answer desirable and its loser's undesirable. An
-- answer judged in several battles (the champion's, once per reference) takes the label of
-- its widest-gap battle. Ties, inconsistent, unparsed and errored battles, and prompts
-- outside the active pool, are excluded.
-- params: round_id, min_gap, min_strength
with decisive_battles as (
    select *
    from v_minable_battles
    where round_id = $round_id
      and (score_gap >= $min_gap or (score_gap is null and label_strength >= $min_strength))
), winners as (
    select
        battle_id, round_id, prompt_id, score_gap, label_strength,
        case when outcome = 'win' then response_a_id else response_b_id end as response_id,
        case when outcome = 'win' then model_a else model_b end as source_model,
        true as label
    from decisive_battles
), losers as (
    select
        battle_id, round_id, prompt_id, score_gap, label_strength,
        case when outcome = 'win' then response_b_id else response_a_id end as response_id,
        case when outcome = 'win' then model_b else model_a end as source_model,
        false as label
    from decisive_battles
), judged_answers as (
    select *, count(*) over (partition by prompt_id, response_id) as n_battles
    from (select * from winners union all select * from losers)
), widest_gap as (
    select *
    from judged_answers
    qualify row_number() over (
        partition by prompt_id, response_id
        order by score_gap desc nulls last, label_strength desc nulls last, battle_id
    ) = 1
), examples as (
    select
        md5(concat_ws('|', 'battle', round_id, prompt_id, response_id)) as example_id,
        'battle' as source,
        round_id,
        prompt_id,
        response_id,
        label,
        source_model,
        battle_id,
        n_battles::integer as n_battles,
        score_gap,
        label_strength,
        $min_gap::double as rule_min_gap
    from widest_gap
)
select * from examples order by prompt_id, response_id
