-- schema version 8: an SFT example records where its target came from. target_source:
-- winner (Arena Learning: the winning reference's answer, `response_id`) or refine (a
-- reference's correction of the champion's losing answer, training.mining.sft_rule refine:
-- the text of the call `target_call_id`; `response_id` stays the battle's winning answer and
-- `source_model` is the reference that wrote the correction). Stored rows are winner rows.
alter table sft_examples add column target_source varchar default 'winner';
alter table sft_examples add column target_call_id varchar;

-- the SFT battles a round selected that have no example because their refine call failed
-- after its retries or returned an empty answer, as of the round's latest mining (a rerun
-- asks again); null for rounds mined by the arena rule
alter table rounds add column n_sft_without_target integer;
