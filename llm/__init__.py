"""Model access: the OpenAI-compatible client, the call cache, local checkpoints, TRL stages."""
