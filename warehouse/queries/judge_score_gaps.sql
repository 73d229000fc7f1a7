-- Decisive battles of one round and purpose, and how many of them have neither a score gap
-- nor a label strength (their games kept a verdict but lost the scores, so mining cannot
-- rank them).
-- params: round_id, purpose
with decisive as (
    select score_gap, label_strength
    from battles
    where round_id = $round_id
      and purpose = $purpose
      and outcome in ('win', 'loss')
)
select
    count(*) as n_decisive,
    count(*) filter (where score_gap is null and label_strength is null) as n_decisive_without_gap
from decisive
