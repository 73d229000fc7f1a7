-- How many rows of one kind a round holds: SFT examples, DPO / reward-model pairs, or KTO
-- examples.
-- params: kind, round_id
with mined as (
    select 'sft' as kind, round_id from sft_examples
    union all
    select kind, round_id from preference_pairs
    union all
    select 'kto' as kind, round_id from kto_examples
)
select count(*) from mined where kind = $kind and round_id = $round_id
