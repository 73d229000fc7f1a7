-- Candidate's and champion's answers to the same held-out eval prompts, with the prompt text,
-- for the objective guard on the sandbox's checkers. params: candidate, champion
with answers as (
    select
        p.prompt_id,
        p.prompt_text,
        c.response_text as candidate_text,
        h.response_text as champion_text
    from prompts as p
    join responses as c
        on c.prompt_id = p.prompt_id and c.model_id = $candidate and c.sample_idx = 0
    join responses as h
        on h.prompt_id = p.prompt_id and h.model_id = $champion and h.sample_idx = 0
    where p.split = 'eval'
)
select * from answers order by prompt_id
