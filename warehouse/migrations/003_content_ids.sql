-- schema version 3: evaluations are keyed by warehouse/ids.py content_id (sha256 of the
-- canonical JSON ["evaluation", round_id, candidate, champion]) instead of a truncated sha256
-- of a '|'-joined string; stored rows get the id they would get now, so a rerun of a stored
-- round finds its evaluation and adds none. Every row is kept.
update evaluations
set evaluation_id = sha256(
    '["evaluation",' || round_id || ',' || to_json(candidate) || ',' || to_json(champion) || ']'
);
