-- The round's training runs (done, skipped or failed). params: round_id
with round_runs as (
    select stage, status, reason, n_examples, first_loss, last_loss, wall_s
    from training_runs
    where round_id = $round_id
)
select * from round_runs
