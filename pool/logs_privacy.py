"""Privacy before anything is stored: personal data in logged text redacted, user ids hashed.

Redacted (each replaced by `[EMAIL]`, `[PHONE]`, `[CREDIT_CARD]`, `[SECRET]`, counted by kind):

- secrets: the regex detectors of Yelp's detect-secrets (AWS, GitHub, GitLab, Slack, Stripe,
  OpenAI, JWT, npm, PyPI, SendGrid, Twilio, Mailchimp, Discord, Telegram, Azure, IBM, Square,
  Artifactory, Cloudant, SoftLayer keys, and credentials in URLs), read from its plugins, plus
  whole PEM private-key blocks and today's provider key forms it predates (`sk-proj-...`,
  `sk-ant-...`, `hf_...`). Its entropy and keyword detectors are left out: they are made for
  code, and flag ordinary words of prose.
- e-mail addresses; credit-card numbers (13-19 digits, spaces or dashes between groups, that
  pass the Luhn checksum, as Presidio's credit-card recognizer checks them); phone numbers
  (an international `+` number of 8-15 digits, or a national one of 10-11 digits written with
  separators or brackets, such as `(415) 555-0132` or `020 7946 0958`).

Not redacted: ordinary numbers (`12 pears`, `2024`, `3.14159`, a 16-digit number failing the
Luhn check), words, names, addresses. Names and addresses need a language model (Presidio's
spaCy NER), which this offline tool does not load.

A text is scanned only when a cheap test says it may hold one (`@`, a run of digits, a long
token); the tests themselves start with what C string methods answer fastest (is there a digit
at all, a word of 16 characters), so most chat text costs no regex search.

User ids are stored as `sha256(salt + ":" + user id)`; the salt is secret (see
`flywheel.config.logs`), so the stored hash cannot be turned back into the id by hashing
guesses, while the same user keeps the same hash across files and nights.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

KINDS = ("email", "phone", "credit_card", "secret")
PLACEHOLDERS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit_card": "[CREDIT_CARD]",
    "secret": "[SECRET]",
}
LEFT_OUT_DETECTORS = frozenset({"IPPublicDetector", "PrivateKeyDetector"})  # see module doc
EXTRA_SECRET_PATTERNS = (
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
    r"\bsk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    r"\bhf_[A-Za-z0-9]{30,}",
)
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
CARD = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])")
PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}(?!\w)"  # +1 415 555 0132, +44 (20) ...
    r"|(?<![\w(])\(\d{2,4}\)[ .\-]?\d{3,4}[ .\-]?\d{3,4}(?!\w)"  # (415) 555-0132
    r"|(?<![\w.\-])0?\d{2,4}[ .\-]\d{3,4}[ .\-]\d{3,4}(?![\w.\-])"  # 415-555-0132, 020 7946 0958
)
TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-+/=.]*")
MAYBE_NUMBER = re.compile(r"\d[\d \-.()]{7,}\d")
LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9_\-+/=.])[A-Za-z0-9_\-+/=.]{16}")  # at a token's start
LONG_TOKEN_CHARS = 16  # LONG_TOKEN's length: a whitespace-free run that long
DIGITS = "0123456789"


@dataclass
class RedactionCounts:
    """How many of each kind were redacted (per file, summed by the ingest)."""

    by_kind: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def as_dict(self) -> dict[str, int]:
        return {kind: int(self.by_kind.get(kind, 0)) for kind in KINDS}


@cache
def secret_patterns() -> tuple[re.Pattern[str], ...]:
    """detect-secrets' regex detectors (module doc) and the extra key forms, compiled once."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    patterns: list[re.Pattern[str]] = []
    for detector in get_mapping_from_secret_type_to_class().values():
        if not issubclass(detector, RegexBasedDetector):
            continue
        if detector.__name__ in LEFT_OUT_DETECTORS:
            continue
        patterns.extend(detector.denylist)
    patterns.extend(re.compile(p) for p in EXTRA_SECRET_PATTERNS)
    return tuple(patterns)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number's digits (what card numbers satisfy)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _secret_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for pattern in secret_patterns():
        for match in pattern.finditer(text):
            start, end = match.span()
            while start < end and text[start] in " \t=:/\"'`(":  # detectors' leading context
                start += 1
            if end > start and TOKEN_TAIL.fullmatch(text[end - 1]):
                end = TOKEN_TAIL.match(text, end).end()  # a lazy pattern's unmatched tail
            if end > start:
                spans.append((start, end))
    return spans


def _card_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            spans.append(match.span())
    return spans


def _phone_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in PHONE.finditer(text):
        n_digits = sum(c.isdigit() for c in match.group())
        international = match.group().startswith("+")
        if (8 <= n_digits <= 15) if international else (10 <= n_digits <= 11):
            spans.append(match.span())
    return spans


def may_hold_long_token(text: str) -> bool:
    """Whether `text` has a LONG_TOKEN: the regex runs only where a whitespace-separated word
    of 16 characters or more (which every such token lies in) exists."""
    return (
        len(text) >= LONG_TOKEN_CHARS
        and max(map(len, text.split()), default=0) >= LONG_TOKEN_CHARS
        and LONG_TOKEN.search(text) is not None
    )


def may_hold_number(text: str) -> bool:
    """Whether `text` has a MAYBE_NUMBER: the regex runs only where an ASCII digit is, or
    where the text is not all ASCII (`\\d` matches other scripts' digits too)."""
    maybe = not text.isascii() or any(digit in text for digit in DIGITS)
    return maybe and MAYBE_NUMBER.search(text) is not None


def _found_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of everything to redact, in the order kinds win an overlap."""
    found: list[tuple[int, int, str]] = []
    has_at = "@" in text
    if "-----BEGIN" in text or (has_at and "://" in text) or may_hold_long_token(text):
        found += [(s, e, "secret") for s, e in _secret_spans(text)]
    if has_at:
        found += [(m.start(), m.end(), "email") for m in EMAIL.finditer(text)]
    if may_hold_number(text):
        found += [(s, e, "credit_card") for s, e in _card_spans(text)]
        found += [(s, e, "phone") for s, e in _phone_spans(text)]
    return found


def redact_text(text: str, counts: RedactionCounts) -> str:
    """The text with every secret, e-mail, card and phone number replaced (module doc);
    `counts` gains one per redaction. A span inside one already taken is not counted again."""
    found = _found_spans(text)
    if not found:
        return text
    taken: list[tuple[int, int, str]] = []
    for start, end, kind in found:  # earlier kinds win overlaps
        if all(end <= s or start >= e for s, e, _ in taken):
            taken.append((start, end, kind))
    pieces, last = [], 0
    for start, end, kind in sorted(taken):
        pieces += [text[last:start], PLACEHOLDERS[kind]]
        counts.by_kind[kind] += 1
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def redact_all(texts: Iterable[str], counts: RedactionCounts) -> list[str]:
    return [redact_text(text, counts) for text in texts]


def hash_user_id(user_id: str | None, salt: str) -> str | None:
    """The stored form of a user id: sha256 of the salt, a colon and the id (hex); None stays None."""
    if user_id is None:
        return None
    return hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()
