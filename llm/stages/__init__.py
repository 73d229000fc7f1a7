"""The training stages: one module per stage (`sft`, `dpo`, `rm_rl`; `reward_model` trains the
reward models `rm_rl` uses), each with its config class, the kind of rows it trains on and its
`train()`; `registry` lists them; `common` runs a TRL trainer, saves the candidate and gathers
its figures. See docs/ARCHITECTURE.md, "Add a training stage".
"""
