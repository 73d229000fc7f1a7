"""`prompts`: the held-out eval set, each round's fresh slice, and the pool's ingest checks
(length, near-duplicates, contamination)."""

from __future__ import annotations

from flywheel.config.base import Section, _help


class PromptsConfig(Section):
    eval_size: int = _help(
        "held-out eval prompts drawn once, stratified by category", default=200, gt=0
    )
    slice_size: int = _help("fresh prompts drawn for each round", default=300, gt=0)
    max_chars: int = _help("longer prompts are rejected at ingest", default=8000, gt=0)
    near_duplicate_threshold: float = _help(
        "Jaccard similarity of word shingles above which prompts are near-duplicates",
        default=0.8,
        gt=0,
        le=1,
    )
    shingle_words: int = _help("words per shingle for near-duplicate detection", default=3, gt=0)
    num_perm: int = _help("MinHash permutations (more: better recall, slower)", default=128, gt=0)
    contamination_ngram: int = _help(
        "a pool prompt sharing a word n-gram this long with an eval prompt is contaminated",
        default=13,
        gt=0,
    )
    batch_size: int = _help("records per ingest batch (bounds memory)", default=20000, gt=0)
    seed: int = _help("seed of the eval draw and the slice partition", default=0)
    sandbox_pool_size: int = _help(
        "sandbox prompts generated into an empty pool on first run, and as many new ones "
        "from fresh seeds whenever the next slices would run short (0: none, bring your own)",
        default=0,
        ge=0,
    )
