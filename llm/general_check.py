"""The general check of one local checkpoint: what it still knows outside the sandbox's skills.

Over the held-out general set (pool/general_set.py) a checkpoint is measured twice, loaded once:

1. the mean per-token NLL of the set's good answers given their prompts, rendered with the
   checkpoint's own chat template (the answer's tokens only, its end-of-turn token included;
   batched, right-padded, no gradients);
2. its greedy replies to the prompts (local generation, llm/checkpoints.py, with the student's
   `max_new_tokens`), and the share that collapse into the sandbox's answer format.

The figures are the pure functions of evaluators/general_check.py. Torch's threads are left as
configured (`training.cpu_threads`, set when the generator loads).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from flywheel.evaluators.general_check import summarise_general_check
from flywheel.llm.calls import ProgressFn
from flywheel.llm.chat_template import end_of_turn_token
from flywheel.llm.checkpoints import GeneratedAnswer, LocalGenerator
from flywheel.pool.general_set import GeneralItem, GeneralSet, load_general_set

NLL_BATCH_SIZE = 8  # items per forward pass: the logits of a batch are (batch, length, vocab)


@dataclass(frozen=True)
class GeneralCheck:
    """One checkpoint measured on the general set (None: nothing could be measured)."""

    n_items: int
    mean_nll: float | None
    collapse_share: float | None
    set_sha256: str
    wall_s: float


def answer_token_ids(
    tokenizer: PreTrainedTokenizerBase, item: GeneralItem
) -> tuple[list[int], list[int]]:
    """The prompt's ids (chat template with the generation prompt, as local generation encodes
    it) and the good answer's ids as the template writes them after it, up to and including
    the end-of-turn token. A template that does not render the prompt as a prefix of the whole
    conversation gets the answer's text followed by its end-of-turn token."""
    prompt_text = tokenizer.apply_chat_template(
        item.messages, tokenize=False, add_generation_prompt=True
    )
    full_text = tokenizer.apply_chat_template(
        [*item.messages, {"role": "assistant", "content": item.answer}], tokenize=False
    )
    turn_end = end_of_turn_token(tokenizer) or ""
    if full_text.startswith(prompt_text):
        answer_text = full_text[len(prompt_text) :]
        if turn_end and turn_end in answer_text:
            answer_text = answer_text[: answer_text.index(turn_end) + len(turn_end)]
    else:
        answer_text = item.answer + turn_end
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
    return prompt_ids, answer_ids


def _batch_nlls(
    model: PreTrainedModel, pad_id: int, rows: list[tuple[list[int], list[int]]]
) -> list[tuple[float, int]]:
    """(summed NLL of the answer tokens, their count) for each (prompt ids, answer ids) row."""
    length = max(len(p) + len(a) for p, a in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    for i, (prompt, answer) in enumerate(rows):
        ids = prompt + answer
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        labels[i, len(prompt) : len(ids)] = torch.tensor(answer)
    device = model.device
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
    shifted = logits[:, :-1].float()
    targets = labels[:, 1:].to(device)
    token_nll = torch.nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    scored = targets != -100
    sums = (token_nll * scored).sum(dim=1).tolist()
    counts = scored.sum(dim=1).tolist()
    return [(float(s), int(c)) for s, c in zip(sums, counts, strict=True)]


def answer_nlls(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: tuple[GeneralItem, ...] | list[GeneralItem],
    batch_size: int = NLL_BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[float, int]]:
    """Each item's (summed NLL of its good answer's tokens, their count), in the order given;
    items are batched by length so little is padded. `on_batch(n_done)` after each batch."""
    rows = [answer_token_ids(tokenizer, item) for item in items]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    results: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            nlls = _batch_nlls(model, pad_id, [rows[i] for i in batch])
            for i, nll in zip(batch, nlls, strict=True):
                results[i] = nll
            if on_batch is not None:
                on_batch(start + len(batch))
    return results


def greedy_replies(
    generator: LocalGenerator,
    conversations: list[list[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[GeneratedAnswer]:
    """The greedy reply to each conversation, in the order given: the generator's own batches
    (longest prompts first, `batch_size` a batch), one call each so that `on_batch(n_done)`
    follows every batch."""
    order = sorted(
        range(len(conversations)),
        key=lambda i: len(generator.encode(conversations[i])),
        reverse=True,
    )
    replies: list[GeneratedAnswer | None] = [None] * len(conversations)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        answers = generator.generate(
            [conversations[i] for i in batch], max_new_tokens=max_new_tokens, batch_size=batch_size
        )
        for i, answer in zip(batch, answers, strict=True):
            replies[i] = answer
        if on_batch is not None:
            on_batch(start + len(batch))
    return [reply for reply in replies if reply is not None]


def measure_general_set(
    checkpoint: str | Path,
    max_new_tokens: int,
    device: str = "auto",
    generate_batch_size: int = 64,
    general_set: GeneralSet | None = None,
    on_progress: ProgressFn | None = None,
) -> GeneralCheck:
    """Load the checkpoint once; the good answers' mean NLL and the greedy replies' collapse
    share over the general set (the shipped one unless `general_set` is given).

    `on_progress(done, total)` counts both passes: each item scored, then each item answered
    (total: twice the set's size)."""
    started = time.monotonic()
    general = general_set or load_general_set()
    n_items = len(general.items)

    def report(n_before: int) -> Callable[[int], None] | None:
        if on_progress is None:
            return None
        return lambda n_done: on_progress(n_before + n_done, 2 * n_items)

    generator = LocalGenerator.load(checkpoint, device)
    nlls = answer_nlls(generator.model, generator.tokenizer, general.items, on_batch=report(0))
    replies = greedy_replies(
        generator,
        [item.messages for item in general.items],
        max_new_tokens=max_new_tokens,
        batch_size=generate_batch_size,
        on_batch=report(n_items),
    )
    summary = summarise_general_check(nlls, [reply.text for reply in replies])
    return GeneralCheck(
        n_items=summary.n_items,
        mean_nll=summary.mean_nll,
        collapse_share=summary.collapse_share,
        set_sha256=general.sha256,
        wall_s=time.monotonic() - started,
    )
