-- The battles mining learns from (warehouse/queries/mine_sft.sql, mine_pairs.sql, mine_kto.sql):
-- one rule for all three, so a change to which battles count is made once.

-- one row per decisive train battle on an active pool prompt: won or lost by the champion
-- (never a tie, an inconsistent, unparsed or errored battle), with its score gap and label
-- strength, which each mining rule compares with its own minimum
create or replace view v_minable_battles as
select b.*
from battles as b
join prompts as p using (prompt_id)
where b.purpose = 'train'
  and b.outcome in ('win', 'loss')
  and p.split = 'pool'
  and p.status = 'active';
