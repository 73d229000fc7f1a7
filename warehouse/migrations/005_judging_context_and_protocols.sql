-- schema version 5 (judging): how much of each conversation the judge and the references saw.
-- context_turns_cut counts the oldest turns dropped to fit the endpoint's max_context_chars
-- (0: the whole conversation was sent).

alter table judgments add column context_turns_cut integer default 0;
alter table responses add column context_turns_cut integer default 0;
