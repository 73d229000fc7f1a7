"""Pure helpers of the prompt pool: word shingles, MinHash and LSH (normalisation: normalise.py).

No I/O here. Everything works on whole batches with numpy so that a million prompts take
seconds, not minutes:

- `tokenize`: lower-cased runs of letters and digits (3.14, 1,000 and don't stay one word) and
  single symbols (+ - * / = < > ...); other punctuation is dropped; hashed to 64 bits.
- `ngram_hashes`: hashes of every run of n consecutive words (word shingles, and the long
  n-grams of the contamination check).
- `minhash_band_keys`: MinHash signatures (multiply-shift permutations of 32-bit shingle
  hashes) folded into one 64-bit key per LSH band.
- `BandIndex`: LSH buckets as sorted numpy runs merged like an LSM tree (12 bytes per band per
  indexed prompt); `query` returns candidate pairs ranked by the number of shared bands.
- `NgramIndex`: which indexed prompt owns an n-gram hash.

Candidates are only candidates: the caller confirms each one with the exact Jaccard similarity
of the two shingle sets (`jaccard`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# words: runs of letters/digits (3.14, 1,000 and don't stay whole), and each symbol such as
# + - * / = < > as a word of its own (12 + 35 and 12 - 35 differ); other punctuation is dropped
_WORD = re.compile(r"[^\W_]+(?:['.,][^\W_]+)*|[^\w\s.,;:!?'\"`()\[\]{}]")
_SEED = 20240917  # fixed: hashes are recomputed in every process, never stored
_MASK32 = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class LshParams:
    """MinHash LSH settings; `n_bands * rows_per_band` permutations are used."""

    threshold: float
    num_perm: int
    shingle_words: int
    n_bands: int
    rows_per_band: int


def choose_bands(threshold: float, num_perm: int, min_recall: float = 0.99) -> tuple[int, int]:
    """(n_bands, rows_per_band): the most rows per band (fewest false candidates) such that a
    pair exactly at `threshold` still becomes a candidate with probability >= `min_recall`."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        recall = 1.0 - (1.0 - threshold**rows) ** bands
        if recall >= min_recall:
            best = (bands, rows)
    return best


def lsh_params(threshold: float, num_perm: int, shingle_words: int) -> LshParams:
    n_bands, rows_per_band = choose_bands(threshold, num_perm)
    return LshParams(threshold, num_perm, shingle_words, n_bands, rows_per_band)


@dataclass(frozen=True)
class Tokens:
    """Word hashes of a batch of documents, concatenated; `lengths[i]` words belong to doc i."""

    word_hashes: np.ndarray  # uint64
    lengths: np.ndarray  # int64, one per document, every one >= 1


def tokenize(texts: Sequence[str]) -> Tokens:
    """Lower-cased letter/digit words of every text, hashed (deterministic, 64-bit).

    A text without any letter or digit counts as one word (itself), so that every document
    has at least one shingle.
    """
    words: list[str] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        lowered = text.lower()
        found = _WORD.findall(lowered) or [lowered.strip() or "\0"]
        words.extend(found)
        lengths[i] = len(found)
    hashes = (
        pd.util.hash_array(np.asarray(words, dtype=object)) if words else np.empty(0, np.uint64)
    )
    return Tokens(hashes.astype(np.uint64, copy=False), lengths)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the whole 64-bit output."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _odd_constants(n: int, salt: int) -> np.ndarray:
    rng = np.random.default_rng(_SEED + salt)
    return rng.integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def ngram_hashes(
    tokens: Tokens, n_words: int, whole_short_docs: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, doc index) of every run of `n_words` consecutive words, in document order.

    A document shorter than `n_words` contributes its whole word sequence as one n-gram when
    `whole_short_docs` is true (shingles), and nothing otherwise (contamination n-grams).
    """
    n_total = len(tokens.word_hashes)
    n_docs = len(tokens.lengths)
    doc_of = np.repeat(np.arange(n_docs), tokens.lengths)
    ends = np.cumsum(tokens.lengths)
    span = np.minimum(n_words, ends[doc_of] - np.arange(n_total))  # words left in the doc
    padded = np.concatenate([tokens.word_hashes, np.zeros(n_words, dtype=np.uint64)])
    weights = _odd_constants(n_words, salt=n_words)
    acc = np.zeros(n_total, dtype=np.uint64)
    for i in range(n_words):
        part = padded[i : i + n_total] * weights[i]
        acc += np.where(span > i, part, np.uint64(0))
    starts = span == n_words
    if whole_short_docs:
        short_doc_start = (ends - tokens.lengths)[tokens.lengths < n_words]
        starts[short_doc_start] = True
    return _mix64(acc[starts]), doc_of[starts]


def shingle_offsets(shingle_doc: np.ndarray, n_docs: int) -> np.ndarray:
    """Offsets (n_docs + 1) of each document's shingles in the doc-ordered shingle arrays."""
    return np.searchsorted(shingle_doc, np.arange(n_docs + 1), side="left")


def minhash_band_keys(
    shingles: np.ndarray, offsets: np.ndarray, params: LshParams, perm_chunk: int = 8
) -> np.ndarray:
    """(n_docs, n_bands) uint64 LSH keys; every doc needs at least one shingle.

    Permutation i maps a 32-bit shingle hash x to (a_i * x + b_i) >> 32 (multiply-shift, a_i
    odd); the MinHash value is the minimum over the doc's shingles. Each band's
    `rows_per_band` values are folded into one key, salted by the band number.
    """
    n_docs = len(offsets) - 1
    n_used = params.n_bands * params.rows_per_band
    a = _odd_constants(n_used, salt=1)
    b = _odd_constants(n_used, salt=2)
    x = shingles & _MASK32
    signatures = np.empty((n_docs, n_used), dtype=np.uint64)
    starts = offsets[:-1]
    for p0 in range(0, n_used, perm_chunk):
        hashed = x[None, :] * a[p0 : p0 + perm_chunk, None]
        hashed += b[p0 : p0 + perm_chunk, None]
        hashed >>= np.uint64(32)
        signatures[:, p0 : p0 + perm_chunk] = np.minimum.reduceat(hashed, starts, axis=1).T
    rows = signatures.reshape(n_docs, params.n_bands, params.rows_per_band)
    weights = _odd_constants(params.rows_per_band, salt=3)
    folded = (rows * weights).sum(axis=2, dtype=np.uint64)
    band_salt = _odd_constants(params.n_bands, salt=4)
    return _mix64(folded + band_salt)


@dataclass(frozen=True)
class Features:
    """What dedup needs of a batch of documents: shingles and LSH keys (and long n-grams)."""

    shingles: np.ndarray  # uint64 shingle hashes, grouped by doc
    offsets: np.ndarray  # (n_docs + 1,) start of each doc's shingles
    band_keys: np.ndarray  # (n_docs, n_bands) uint64
    ngrams: np.ndarray  # uint64 hashes of the long n-grams (empty when not asked for)
    ngram_doc: np.ndarray  # doc index of each long n-gram

    def shingle_set(self, doc: int) -> set[int]:
        return set(self.shingles[self.offsets[doc] : self.offsets[doc + 1]].tolist())


def featurize(texts: Sequence[str], params: LshParams, ngram_words: int | None = None) -> Features:
    """Shingles, MinHash LSH keys and (optionally) contamination n-grams of `texts`."""
    tokens = tokenize(texts)
    shingles, shingle_doc = ngram_hashes(tokens, params.shingle_words, whole_short_docs=True)
    offsets = shingle_offsets(shingle_doc, len(texts))
    if len(texts):
        band_keys = minhash_band_keys(shingles, offsets, params)
    else:
        band_keys = np.empty((0, params.n_bands), dtype=np.uint64)
    if ngram_words is None:
        ngrams, ngram_doc = np.empty(0, np.uint64), np.empty(0, np.int64)
    else:
        ngrams, ngram_doc = ngram_hashes(tokens, ngram_words, whole_short_docs=False)
    return Features(shingles, offsets, band_keys, ngrams, ngram_doc)


def shingle_sets(texts: Sequence[str], shingle_words: int) -> list[set[int]]:
    """The word-shingle set of each text (the sets `jaccard` compares)."""
    tokens = tokenize(texts)
    shingles, shingle_doc = ngram_hashes(tokens, shingle_words, whole_short_docs=True)
    offsets = shingle_offsets(shingle_doc, len(texts))
    return [set(shingles[offsets[i] : offsets[i + 1]].tolist()) for i in range(len(texts))]


def jaccard(left: set[int], right: set[int]) -> float:
    """|A and B| / |A or B|; 0.0 when both are empty."""
    union = len(left | right)
    return len(left & right) / union if union else 0.0


@dataclass(frozen=True)
class Candidates:
    """Candidate pairs (query doc, indexed item), sorted by doc then most shared bands first."""

    doc: np.ndarray  # int64
    item: np.ndarray  # int64
    n_shared_bands: np.ndarray  # int64


def _empty_candidates() -> Candidates:
    empty = np.empty(0, dtype=np.int64)
    return Candidates(empty, empty, empty)


def _rank_pairs(doc: np.ndarray, item: np.ndarray, max_per_doc: int) -> Candidates:
    """Count shared bands per (doc, item) and keep each doc's `max_per_doc` best items."""
    if len(doc) == 0:
        return _empty_candidates()
    codes, n_shared = np.unique((doc << 32) | item, return_counts=True)
    doc, item = codes >> 32, codes & 0xFFFFFFFF
    order = np.lexsort((item, -n_shared, doc))
    doc, item, n_shared = doc[order], item[order], n_shared[order]
    first_of_doc = np.searchsorted(doc, doc, side="left")
    keep = (np.arange(len(doc)) - first_of_doc) < max_per_doc
    return Candidates(doc[keep], item[keep], n_shared[keep].astype(np.int64))


class BandIndex:
    """LSH buckets: sorted runs of (band key, item) merged like an LSM tree.

    `add` appends a sorted run and merges the last two runs while the older one is not more
    than twice the newer, so there are O(log n) runs and each entry is re-merged O(log n)
    times. Memory: 12 bytes per band per indexed item.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self._runs)

    def add(self, band_keys: np.ndarray, items: np.ndarray) -> None:
        """Index every band key of each row of `band_keys` under the matching item (< 2**31)."""
        if len(items) == 0:
            return
        keys = band_keys.ravel()
        owners = np.repeat(items.astype(np.int32), band_keys.shape[1])
        order = np.argsort(keys, kind="stable")
        self._runs.append((keys[order], owners[order]))
        while len(self._runs) >= 2 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            newer = self._runs.pop()
            older = self._runs.pop()
            self._runs.append(_merge_runs(older, newer))

    def query(self, band_keys: np.ndarray, max_bucket: int, max_per_doc: int) -> Candidates:
        """Indexed items sharing at least one band with each row; at most `max_bucket` items
        per bucket and `max_per_doc` items per row (most shared bands first)."""
        queries = band_keys.ravel()
        query_doc = np.repeat(np.arange(band_keys.shape[0], dtype=np.int64), band_keys.shape[1])
        docs, items = [], []
        for keys, owners in self._runs:
            doc, item = _match_run(keys, owners, queries, query_doc, max_bucket)
            docs.append(doc)
            items.append(item)
        if not docs:
            return _empty_candidates()
        return _rank_pairs(np.concatenate(docs), np.concatenate(items), max_per_doc)


def _merge_runs(
    older: tuple[np.ndarray, np.ndarray], newer: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """One sorted run from two; equal keys keep the older entries first."""
    (old_keys, old_items), (new_keys, new_items) = older, newer
    position = np.searchsorted(old_keys, new_keys, side="right") + np.arange(len(new_keys))
    is_new = np.zeros(len(old_keys) + len(new_keys), dtype=bool)
    is_new[position] = True
    keys = np.empty(len(is_new), dtype=old_keys.dtype)
    items = np.empty(len(is_new), dtype=old_items.dtype)
    keys[position], items[position] = new_keys, new_items
    keys[~is_new], items[~is_new] = old_keys, old_items
    return keys, items


def _match_run(
    keys: np.ndarray,
    owners: np.ndarray,
    queries: np.ndarray,
    query_doc: np.ndarray,
    max_bucket: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(query doc, owner) for every run entry whose key equals a query key (capped per key)."""
    order = np.argsort(queries)  # sorted needles make the binary searches cache-friendly
    sorted_queries = queries[order]
    low = np.searchsorted(keys, sorted_queries, side="left")
    high = np.searchsorted(keys, sorted_queries, side="right")
    count = np.minimum(high - low, max_bucket)
    hit = count > 0
    low, count, doc = low[hit], count[hit], query_doc[order][hit]
    total = int(count.sum())
    within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    return np.repeat(doc, count), owners[np.repeat(low, count) + within].astype(np.int64)


def self_candidates(band_keys: np.ndarray, max_bucket: int, max_per_doc: int) -> Candidates:
    """Pairs (doc, earlier doc) inside one batch that share at least one band; each doc meets
    at most `max_bucket` earlier docs per bucket."""
    keys = band_keys.ravel()
    docs = np.repeat(np.arange(band_keys.shape[0], dtype=np.int64), band_keys.shape[1])
    order = np.argsort(keys, kind="stable")  # stable: docs stay ascending inside a bucket
    keys, docs = keys[order], docs[order]
    run_start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    rank = np.arange(len(keys)) - np.repeat(run_start, np.diff(np.r_[run_start, len(keys)]))
    n_earlier = np.minimum(rank, max_bucket)
    total = int(n_earlier.sum())
    first = np.repeat(np.arange(len(keys)) - rank, n_earlier)  # each bucket's first entry
    within = np.arange(total) - np.repeat(np.cumsum(n_earlier) - n_earlier, n_earlier)
    later, earlier = np.repeat(docs, n_earlier), docs[first + within]
    distinct = later != earlier
    return _rank_pairs(later[distinct], earlier[distinct], max_per_doc)


class NgramIndex:
    """Which indexed item owns an n-gram hash (the first item added, when several do).

    An n-gram that `TEMPLATE_OWNERS` or more distinct items share is template text (an answer
    format or a system instruction every eval prompt carries, such as "put your final answer
    within \\boxed{}"), not the content of one of them: `first_owner` does not count it as an
    overlap (the shingle-similarity check still compares the whole prompts).
    """

    TEMPLATE_OWNERS = 4

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype=np.uint64)
        self._owners = np.empty(0, dtype=np.int64)
        self._n_owners = np.empty(0, dtype=np.int64)  # distinct items holding each n-gram

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, hashes: np.ndarray, owners: np.ndarray) -> None:
        pairs = np.unique(np.stack([hashes, owners.astype(np.uint64)]), axis=1)  # one per item
        all_hashes = np.concatenate([self._hashes, pairs[0]])
        all_owners = np.concatenate([self._owners, pairs[1].astype(np.int64)])
        all_counts = np.concatenate([self._n_owners, np.ones(pairs.shape[1], dtype=np.int64)])
        unique, first, inverse = np.unique(all_hashes, return_index=True, return_inverse=True)
        self._hashes, self._owners = unique, all_owners[first]  # first: the earliest owner
        self._n_owners = np.bincount(inverse, weights=all_counts).astype(np.int64)

    def first_owner(self, hashes: np.ndarray, hash_doc: np.ndarray) -> dict[int, int]:
        """doc -> owner of the first of the doc's n-grams found in the index (template text
        aside)."""
        if len(self._hashes) == 0 or len(hashes) == 0:
            return {}
        position = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
        found = (self._hashes[position] == hashes) & (
            self._n_owners[position] < self.TEMPLATE_OWNERS
        )
        owners: dict[int, int] = {}
        for doc, owner in zip(
            hash_doc[found].tolist(), self._owners[position[found]].tolist(), strict=True
        ):
            owners.setdefault(doc, owner)
        return owners
