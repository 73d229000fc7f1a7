-- schema version 17: simulated users whose goal is drawn from the production logs, and the name
-- each version answered its conversations as (issue 37). A persona opens with a held-out eval
-- prompt (goal_source eval) or with a logged conversation's opening prompt, playing the logged
-- user's reaction to the first answer (goal_source logs: a correction after a negative one, the
-- logged next question as its follow-up, else done); the logged model name lets real users'
-- feedback on the same model be set beside the simulated user's verdict (v_conversation_*).

-- sim_personas keeps its grain: one row per persona
alter table sim_personas add column if not exists goal_source varchar default 'eval';  -- eval | logs
alter table sim_personas add column if not exists log_conversation_id varchar;  -- logs: the
                                                    -- log_conversations row it was drawn from

-- sim_conversations keeps its grain: one row per (round, persona, model)
alter table sim_conversations add column if not exists served_model varchar;  -- the model name
                                                    -- the version answered as (its endpoint's
                                                    -- `model`); null: stored before version 17
