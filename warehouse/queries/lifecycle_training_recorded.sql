-- A round's finished training stage (done or skipped), with its candidate's checkpoint.
-- params: round id
with finished as (
    select t.status, t.output_version, m.checkpoint_path, t.reason, t.n_examples
    from training_runs as t
    left join model_versions as m on m.version_id = t.output_version
    where t.round_id = ? and t.status in ('done', 'skipped')
)
select * from finished
