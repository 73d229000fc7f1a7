-- The SFT examples a round already holds (a rerun of its mining skips them). params: round_id
select example_id from sft_examples where round_id = $round_id
