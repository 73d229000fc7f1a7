"""The one way to make a row id: sha256 of canonical JSON."""

from __future__ import annotations

import hashlib
import json


def id_of_json(canonical_json: str) -> str:
    """sha256 (hex) of an already canonical JSON text."""
    return hashlib.sha256(canonical_json.encode("utf-8")).hexdigest()


def content_id(value: object) -> str:
    """The natural key of a value: sha256 (hex) of its canonical JSON (keys sorted, compact,
    UTF-8 kept). `content_id(["response", prompt_id, model_id, 0])` keys a response."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return id_of_json(text)
