"""The answer a reply commits to: its final `Answer: X` line, or a common natural form.

Rules (`extract_final_answer`), in order:
1. An answer line is a line that starts (after optional spaces and markdown `**`/`#`) with
   `Answer:` or `Final answer:` (any case). The last answer line counts, and it must be the
   last non-empty line of the reply: prose after the committed answer makes the reply
   uncommitted (None), because text such as "Answer: 5 ... wait, it is 6" commits to nothing.
2. A reply without any answer line is read by its last non-empty line, when that line ends
   in one of the natural forms pretrained chat models write (public verifiable benchmarks
   read the same ones):
   - `\\boxed{X}` (MATH's form), the only boxed value of that line;
   - "... is X" at the very end, as in "The answer is 7." or "The word reversed is olleh.";
   - "... = X" at the very end, as in "3 + 4 = 7.", with a single `=` on the line;
   - the whole reply is one value ("7", "**olleh**").
   X is then one token: "It is 7, or maybe 8." and "7? No, 8" commit to nothing (None).
3. X is stripped of spaces, one pair of surrounding markdown (`**`, `` ` ``, `$`) or quotes,
   and one trailing period. Empty X means None.

A natural form is never read where it would pick an answer the reply did not commit to:
the last line decides, an answer line anywhere in the reply turns the natural forms off, and
anything after the value on that line (a second value, a hedge) leaves the reply uncommitted.

Pure: standard library only, no I/O.
"""

from __future__ import annotations

import re

ANSWER_LINE_RE = re.compile(
    r"^[\s#*]*(?:final\s+)?answer\s*(?:\*\*)?\s*:\s*(?:\*\*(?!.*\*\*\s*$))?(.*)$", re.IGNORECASE
)
_TOKEN = r"([^\s=]+?)"
_END = r"\s*[.!]?\s*$"
_BOXED_RE = re.compile(r"\\boxed\{([^{}]*)\}")
_IS_RE = re.compile(rf"\bis\s*:?\s*{_TOKEN}{_END}", re.IGNORECASE)
_EQUALS_RE = re.compile(rf"^[^=]*=\s*{_TOKEN}{_END}")
_WRAPPERS = (("**", "**"), ("`", "`"), ("$", "$"), ('"', '"'), ("'", "'"), ("\u201c", "\u201d"))


def _strip_period(value: str) -> str:
    value = value.strip()
    return value[:-1].rstrip() if value.endswith(".") and not value.endswith("..") else value


def strip_wrapping(value: str) -> str:
    """The value without one trailing period and one pair of markdown or quote wrappers."""
    value = _strip_period(value)
    for left, right in _WRAPPERS:
        if (
            len(value) >= len(left) + len(right)
            and value.startswith(left)
            and value.endswith(right)
        ):
            value = value[len(left) : len(value) - len(right)]
            break
    return _strip_period(value)


def _natural_answer(last_line: str, only_line: bool) -> str | None:
    """X of the natural form that ends `last_line` (rule 2 of the module doc), or None."""
    boxed = _BOXED_RE.findall(last_line)
    if boxed:
        return boxed[0] if len(boxed) == 1 else None
    for pattern in (_IS_RE, _EQUALS_RE):
        m = pattern.search(last_line)
        if m is not None:
            return m.group(1)
    value = strip_wrapping(last_line)
    return value if only_line and value and len(value.split()) == 1 else None


def extract_final_answer(answer_text: str) -> str | None:
    """The answer a reply commits to (see the module doc for the rules); None when it commits
    to nothing."""
    lines = [line for line in answer_text.splitlines() if line.strip()]
    if not lines:
        return None
    answer_lines = [ANSWER_LINE_RE.match(line) for line in lines]
    if answer_lines[-1] is not None:
        value = strip_wrapping(answer_lines[-1].group(1))
    elif any(answer_lines):
        return None
    else:
        value = strip_wrapping(_natural_answer(lines[-1].strip(), len(lines) == 1) or "")
    return value or None
