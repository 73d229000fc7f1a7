"""Privacy before storage: each kind of personal data is redacted and counted; ordinary
numbers and words are left alone; user ids are salted hashes."""

from __future__ import annotations

import pytest

from flywheel.pool.logs_privacy import RedactionCounts, hash_user_id, luhn_valid, redact_text


def redacted(text: str) -> tuple[str, dict[str, int]]:
    counts = RedactionCounts()
    return redact_text(text, counts), {k: v for k, v in counts.as_dict().items() if v}


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("mail jane.doe+x@mail.example.co.uk now", "mail [EMAIL] now", "email"),
        ("call +1 415-555-0132 today", "call [PHONE] today", "phone"),
        ("call (415) 555-0132 today", "call [PHONE] today", "phone"),
        ("ring 020 7946 0958 please", "ring [PHONE] please", "phone"),
        ("card 4111 1111 1111 1111 ok", "card [CREDIT_CARD] ok", "credit_card"),
        ("card 5500-0000-0000-0004 ok", "card [CREDIT_CARD] ok", "credit_card"),
        ("aws AKIAIOSFODNN7EXAMPLE ok", "aws [SECRET] ok", "secret"),
        ("gh ghp_1234567890abcdefghijABCDEFGHIJ123456 ok", "gh [SECRET] ok", "secret"),
        ("key sk-proj-abcDEF1234567890abcdefGHIJKL ok", "key [SECRET] ok", "secret"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n ok",
            "jwt [SECRET] ok",
            "secret",
        ),
        (
            "db https://admin:hunter2@db.example.org/x",
            "db https://[SECRET]db.example.org/x",
            "secret",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY----- end",
            "[SECRET] end",
            "secret",
        ),
    ],
)
def test_each_kind_is_redacted_and_counted(text: str, expected: str, kind: str) -> None:
    assert redacted(text) == (expected, {kind: 1})


@pytest.mark.parametrize(
    "text",
    [
        "I have 3 apples and 12 pears; in 2024 pi was still 3.14159.",
        "What is 123456 * 789? Then add 1000000.",
        "Order 1234567890123456 shipped.",  # 16 digits that fail the Luhn check
        "Meet 10:30-11:45 on 2024-05-06, version 1.2.3.4, id 550e8400-e29b-41d4-a716-446655440000.",
        "Reverse the word 'internationalization'. Answer with only the result.",
        "Contact me at the office, room 12, or write to support.",
    ],
)
def test_ordinary_numbers_and_words_are_left_alone(text: str) -> None:
    assert redacted(text) == (text, {})


def test_several_kinds_in_one_text_are_each_counted() -> None:
    text, counts = redacted("a@b.io, b@c.io, +44 20 7946 0958 and 4111111111111111")
    assert text == "[EMAIL], [EMAIL], [PHONE] and [CREDIT_CARD]"
    assert counts == {"email": 2, "phone": 1, "credit_card": 1}


def test_luhn_checksum() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


def test_user_ids_are_salted_hashes_stable_across_calls() -> None:
    first = hash_user_id("alice", "s3cret")
    assert first == hash_user_id("alice", "s3cret")
    assert first != hash_user_id("alice", "other-salt")
    assert "alice" not in first and len(first) == 64
    assert hash_user_id(None, "s3cret") is None


@pytest.mark.parametrize(
    "text",
    [
        "plain words only, nothing to find here at all",
        "a key AKIAIOSFODNN7EXAMPLE in prose",
        "fifteen chars: abcdefghijklmno; sixteen: abcdefghijklmnop",
        "a path /usr/local/lib/python3.11/site-packages in text",
        "tabs\tand\nnewlines\u00a0around_a_long_token_of_letters\u2003end",
        "digits 415 555 0132 and 12 pears",
        "Arabic-Indic ٤١٥ ٥٥٥ ٠١٣٢ and Devanagari ४१५-५५५-०१३२ digits",
        "full-width ４１５-５５５-０１３２",
        "",
        "12",
    ],
)
def test_the_cheap_tests_skip_no_text_the_regexes_would_match(text: str) -> None:
    from flywheel.pool.logs_privacy import (
        LONG_TOKEN,
        MAYBE_NUMBER,
        may_hold_long_token,
        may_hold_number,
    )

    assert may_hold_long_token(text) == (LONG_TOKEN.search(text) is not None)
    assert may_hold_number(text) == (MAYBE_NUMBER.search(text) is not None)
