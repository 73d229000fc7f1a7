-- schema version 19: a user's correction is also a preference pair (issue 32). An answer the
-- user corrected in explicit feedback (feedback.correction: the user's corrected answer) was
-- an SFT target only; it is now also a preference pair in the answer's context, the correction
-- chosen over the answer it corrects (warehouse/queries/mine_feedback_correction_pairs.sql).

-- preference_pairs: still one row per mined pair (kind dpo or rm). Feedback rows are now of
-- two rules, told apart by chosen_source:
--   `feedback`: one per (kind, positive answer, negative answer) to the same context, as
--     migration 014 describes; the chosen text is the logged answer at (chosen_conversation_id,
--     chosen_turn_index);
--   `correction`: one per (kind, corrected logged exchange); chosen and rejected point to the
--     same logged answer (its conversation and turn: the context is the turns before it), the
--     rejected text is that answer, the chosen text the user's correction,
--     feedback.correction of chosen_feedback_ids[1] (the correction row comes first);
--     chosen_model is null (a user wrote it).
-- null on battle and online rows (their chosen text is the response at chosen_response_id).
alter table preference_pairs add column chosen_source varchar;  -- feedback | correction | null
update preference_pairs set chosen_source = 'feedback' where origin = 'feedback';
