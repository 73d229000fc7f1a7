"""Prompt dedup's pure parts: normalisation, shingles, LSH bands and their candidates."""

from __future__ import annotations

import json

import numpy as np

from flywheel.pool.dedup import (
    BandIndex,
    choose_bands,
    featurize,
    jaccard,
    lsh_params,
    self_candidates,
    shingle_sets,
)
from flywheel.pool.normalise import messages_json, normalise_text, prompt_id_of
from tests.pool.pool_helpers import story


def test_normalisation_collapses_whitespace_and_keeps_case():
    assert normalise_text("  Cafe\u0301\t au\n\n lait ") == "Café au lait"
    assert prompt_id_of([{"role": "user", "content": "Hi  there"}]) == prompt_id_of(
        [{"role": "user", "content": " Hi there\n"}]
    )
    assert prompt_id_of([{"role": "user", "content": "Hi"}]) != prompt_id_of(
        [{"role": "user", "content": "hi"}]
    )


def test_messages_json_equals_compact_json_dumps():
    messages = [
        {"role": "system", "content": 'Say "hi"\n\tthen \\ stop \u00e9\u4e2d \x01'},
        {"role": "user", "content": "plain"},
    ]
    expected = json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
    assert messages_json(messages) == expected
    assert json.loads(messages_json(messages)) == messages


def test_bands_keep_recall_at_the_threshold():
    assert choose_bands(0.8, 128) == (21, 6)
    bands, rows_per_band = choose_bands(0.8, 128)
    assert 1 - (1 - 0.8**rows_per_band) ** bands >= 0.99


def test_one_word_change_in_a_long_prompt_is_above_threshold_and_found_by_lsh():
    params = lsh_params(0.8, 128, 3)
    base = story(1)
    edited = base.replace("w1x15", "changed")
    features = featurize([base, edited, story(2)], params)
    assert jaccard(features.shingle_set(0), features.shingle_set(1)) >= 0.8
    found = self_candidates(features.band_keys, max_bucket=64, max_per_doc=16)
    assert list(zip(found.doc.tolist(), found.item.tolist(), strict=True)) == [(1, 0)]


def test_self_candidates_match_brute_force_band_sharing():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(40, 3))  # many collisions
    keys = (values + 100 * np.arange(3)).astype(np.uint64)  # like real keys: salted per band
    found = self_candidates(keys, max_bucket=1000, max_per_doc=1000)
    expected = {
        (d, e): int((values[d] == values[e]).sum())
        for d in range(40)
        for e in range(d)
        if (values[d] == values[e]).any()
    }
    got = {(d, e): s for d, e, s in zip(found.doc, found.item, found.n_shared_bands, strict=True)}
    assert got == expected


def test_band_index_merges_runs_and_finds_every_stored_item():
    index = BandIndex()
    rng = np.random.default_rng(1)
    all_keys = rng.integers(0, 2**63, size=(1000, 4), dtype=np.uint64)
    for start in range(0, 1000, 100):
        index.add(all_keys[start : start + 100], np.arange(start, start + 100))
    assert len(index) == 4000
    found = index.query(all_keys[[5, 555, 999]], max_bucket=8, max_per_doc=4)
    assert found.item.tolist() == [5, 555, 999]
    assert found.n_shared_bands.tolist() == [4, 4, 4]


def test_shingle_sets_ignore_case_and_punctuation_but_keep_decimals_and_symbols():
    plain, shouted, decimal = shingle_sets(["pi is 3.14 ok", "PI, is 3.14 ok!", "pi is 3 14 ok"], 3)
    assert plain == shouted
    assert plain != decimal
    plus, minus = shingle_sets(["What is 12 + 35?", "What is 12 - 35?"], 3)
    assert jaccard(plus, minus) < 0.5


# ---------------------------------------------------------------------- ingest: literal files
