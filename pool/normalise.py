"""Normalisation of prompts: the stored text, the exact-duplicate form, the prompt id."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from json.encoder import encode_basestring  # type: ignore[attr-defined]

from flywheel.warehouse.ids import id_of_json


def clean_content(text: str) -> str:
    """The text as stored: Unicode NFC, stripped; inner layout (newlines, indentation) kept."""
    return unicodedata.normalize("NFC", text).strip()


def normalise_text(text: str) -> str:
    """The exact-duplicate form: NFC, stripped, every whitespace run collapsed to one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def messages_json(messages: Sequence[dict[str, str]]) -> str:
    """Compact JSON of {role, content} turns; the same text as `json.dumps(messages,
    ensure_ascii=False, separators=(",", ":"))`, built faster from the C string encoder."""
    turns = (
        '{"role":'
        + encode_basestring(m["role"])
        + ',"content":'
        + encode_basestring(m["content"])
        + "}"
        for m in messages
    )
    return "[" + ",".join(turns) + "]"


def prompt_id_of(messages: Sequence[dict[str, str]]) -> str:
    """sha256 (hex) of the compact JSON of the normalised messages (role and normalised content
    of each turn, in order)."""
    canonical = [{"role": m["role"], "content": normalise_text(m["content"])} for m in messages]
    return id_of_json(messages_json(canonical))


def dedup_text(messages: Sequence[dict[str, str]]) -> str:
    """The text compared for near-duplicates and contamination: every turn's content."""
    return "\n".join(m["content"] for m in messages)
