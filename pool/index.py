"""The dedup index and decontamination: which kept prompts a new one is compared with.

The LSH index of a split is rebuilt from the stored prompts when an ingest first needs it (so a
change of shingle size, permutations or threshold in the config applies to the whole pool), then
grows with every batch: ~12 bytes per band per kept prompt, ~80 us per stored prompt to build.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from flywheel.config import Config
from flywheel.pool.dedup import (
    BandIndex,
    Candidates,
    Features,
    LshParams,
    NgramIndex,
    featurize,
    jaccard,
    lsh_params,
    shingle_sets,
)
from flywheel.pool.normalise import (
    dedup_text,
)
from flywheel.pool.records import Split
from flywheel.warehouse.store import (
    connect_warehouse,
    read_query,
    registered,
)

MAX_BUCKET_ITEMS = 64  # items read from one LSH bucket per query band
MAX_CANDIDATES_PER_PROMPT = 16  # candidates verified per new prompt, most shared bands first


@dataclass
class PromptIndex:
    """The kept prompts of a split that new ones are compared with. Pool: LSH buckets only
    (shingle sets are read back from the warehouse for candidates). Eval (small): also the
    long n-grams and shingle sets, for the contamination checks."""

    ids: list[str]
    bands: BandIndex
    ngrams: NgramIndex | None
    shingles: list[set[int]] | None

    @classmethod
    def empty(cls, split: Split) -> PromptIndex:
        if split == "eval":
            return cls([], BandIndex(), NgramIndex(), [])
        return cls([], BandIndex(), None, None)

    def add(self, ids: Sequence[str], features: Features, docs: np.ndarray) -> None:
        """Index the documents `docs` of a featurized batch under `ids` (one per doc)."""
        if len(docs) == 0:
            return
        items = np.arange(len(self.ids), len(self.ids) + len(docs))
        self.bands.add(features.band_keys[docs], items)
        if self.ngrams is not None:
            position = np.full(len(features.offsets) - 1, -1, dtype=np.int64)
            position[docs] = items
            owners = position[features.ngram_doc]
            self.ngrams.add(features.ngrams[owners >= 0], owners[owners >= 0])
        if self.shingles is not None:
            self.shingles.extend(features.shingle_set(int(d)) for d in docs)
        self.ids.extend(ids)


def lsh_params_for(config: Config) -> LshParams:
    p = config.prompts
    return lsh_params(p.near_duplicate_threshold, p.num_perm, p.shingle_words)


def pool_available(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(read_query("prompts_pool_available")).fetchone()[0])


def texts_of(messages_json: Iterable[str]) -> list[str]:
    return [dedup_text(json.loads(m)) for m in messages_json]


def iter_stored(config: Config, split: Split) -> Iterator[pd.DataFrame]:
    """Pages (prompt_id, messages) of the active prompts of a split, one short burst each."""
    last_id = ""
    while True:
        with connect_warehouse(config.warehouse) as con:
            page = con.execute(
                read_query("prompts_index_page"), [split, last_id, config.prompts.batch_size]
            ).df()
        if page.empty:
            return
        yield page
        last_id = str(page["prompt_id"].iloc[-1])


def add_to_index(
    index: PromptIndex, params: LshParams, config: Config, ids: list[str], texts: list[str]
) -> None:
    ngram_words = config.prompts.contamination_ngram if index.ngrams is not None else None
    features = featurize(texts, params, ngram_words)
    index.add(ids, features, np.arange(len(ids)))


def load_index(config: Config, params: LshParams, split: Split) -> PromptIndex:
    """The index of a split's active prompts, rebuilt page by page from the warehouse. Eval
    indexes keep n-grams and shingle sets (they are small); pool indexes only LSH keys."""
    index = PromptIndex.empty(split)
    for page in iter_stored(config, split):
        add_to_index(index, params, config, list(page["prompt_id"]), texts_of(page["messages"]))
    return index


def shingles_of(
    config: Config, params: LshParams, index: PromptIndex, items: np.ndarray
) -> dict[int, set[int]]:
    """Shingle sets of indexed items: from memory, or re-read from the warehouse."""
    wanted = sorted(set(items.tolist()))
    if index.shingles is not None:
        return {item: index.shingles[item] for item in wanted}
    if not wanted:
        return {}
    ids = pd.DataFrame({"prompt_id": [index.ids[i] for i in wanted]})
    with connect_warehouse(config.warehouse) as con, registered(con, "_wanted_ids", ids):
        found = con.execute(read_query("prompts_messages_of")).df()
    texts = dict(zip(found["prompt_id"], texts_of(found["messages"]), strict=True))
    sets = shingle_sets([texts[index.ids[i]] for i in wanted], params.shingle_words)
    return dict(zip(wanted, sets, strict=True))


def eval_overlaps(
    features: Features, docs: np.ndarray, eval_index: PromptIndex, params: LshParams
) -> dict[int, int]:
    """doc -> eval item it overlaps: a shared long n-gram, or shingle Jaccard > threshold."""
    if not eval_index.ids or len(docs) == 0:
        return {}
    assert eval_index.ngrams is not None and eval_index.shingles is not None  # an eval index
    wanted = np.zeros(len(features.offsets) - 1, dtype=bool)
    wanted[docs] = True
    in_docs = wanted[features.ngram_doc]
    found = eval_index.ngrams.first_owner(features.ngrams[in_docs], features.ngram_doc[in_docs])
    similar = eval_index.bands.query(
        features.band_keys[docs], MAX_BUCKET_ITEMS, MAX_CANDIDATES_PER_PROMPT
    )
    for local_doc, item in zip(similar.doc.tolist(), similar.item.tolist(), strict=True):
        doc = int(docs[local_doc])
        if doc in found:
            continue
        if jaccard(features.shingle_set(doc), eval_index.shingles[item]) > params.threshold:
            found[doc] = item
    return found


def grouped_candidates(
    candidates: Candidates, to_doc: np.ndarray | None = None
) -> dict[int, list[tuple[int, int]]]:
    """doc -> [(n shared bands, item)], docs mapped through `to_doc` when given."""
    grouped: dict[int, list[tuple[int, int]]] = {}
    docs = candidates.doc if to_doc is None else to_doc[candidates.doc]
    for doc, item, shared in zip(
        docs.tolist(), candidates.item.tolist(), candidates.n_shared_bands.tolist(), strict=True
    ):
        grouped.setdefault(doc, []).append((shared, item))
    return grouped


def find_pool_overlaps(
    config: Config, params: LshParams, eval_index: PromptIndex, skip: set[str]
) -> pd.DataFrame:
    """(prompt_id, eval_prompt_id) of every active pool prompt overlapping an eval prompt."""
    found: list[tuple[str, str]] = []
    if not eval_index.ids:
        return pd.DataFrame(found, columns=["prompt_id", "eval_prompt_id"])
    for page in iter_stored(config, "pool"):
        ids = list(page["prompt_id"])
        features = featurize(texts_of(page["messages"]), params, config.prompts.contamination_ngram)
        docs = np.array(
            [i for i, prompt_id in enumerate(ids) if prompt_id not in skip], dtype=np.int64
        )
        for doc, item in eval_overlaps(features, docs, eval_index, params).items():
            found.append((ids[doc], eval_index.ids[item]))
    return pd.DataFrame(found, columns=["prompt_id", "eval_prompt_id"])


def mark_contaminated(con: duckdb.DuckDBPyConnection, overlaps: pd.DataFrame) -> None:
    if overlaps.empty:
        return
    with registered(con, "_contaminated", overlaps):
        con.execute(read_query("prompts_mark_contaminated"))
