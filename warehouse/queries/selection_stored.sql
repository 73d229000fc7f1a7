-- a round's stored judge-budget choice: every (champion, reference) battle, selected or not
select prompt_id, model_a, model_b, selected, selector
from battle_selection
where round_id = ?
order by prompt_id, model_b
