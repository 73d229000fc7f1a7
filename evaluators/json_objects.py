"""The JSON objects a model wrote in its reply, wherever they stand in the text (the JSON
judge verdict, the feedback classifier's reply). Pure: standard library only."""

from __future__ import annotations

import json


def json_objects(text: str) -> list[dict]:
    """Every JSON object in `text`, in order."""
    decoder, found, position = json.JSONDecoder(), [], 0
    while (start := text.find("{", position)) != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        if isinstance(obj, dict):
            found.append(obj)
        position = end
    return found
