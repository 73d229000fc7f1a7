"""The prompt pool: file readers, normalisation, the dedup index, decontamination, ingest."""
