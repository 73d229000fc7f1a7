"""llm/general_check.py on a tiny checkpoint (and, marked slow, on SmolLM2-135M-Instruct)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from flywheel.llm.checkpoints import load_checkpoint, save_checkpoint
from flywheel.llm.general_check import (
    GeneralCheck,
    answer_nlls,
    answer_token_ids,
    measure_general_set,
)
from flywheel.pool.general_set import GeneralSet, load_general_set
from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer

SHIPPED = load_general_set()
SMALL_SET = GeneralSet(items=SHIPPED.items[:6], sha256="literal-sha")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [m["content"] for item in SHIPPED.items for m in item.messages]
    texts += [item.answer for item in SHIPPED.items]
    tokenizer = build_tokenizer(texts, vocab_size=400)
    model = build_tiny_llama(
        tokenizer, seed=0, hidden_size=32, n_layers=2, n_heads=2, intermediate_size=64
    )
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("models") / "tiny")


def test_the_answer_tokens_are_the_answer_and_its_end_of_turn(tiny_checkpoint: Path) -> None:
    _, tokenizer = load_checkpoint(tiny_checkpoint, device="cpu")
    item = SHIPPED.items[0]
    prompt_ids, answer_ids = answer_token_ids(tokenizer, item)
    assert tokenizer.decode(prompt_ids).endswith(
        "What is the capital of France?<|end|><|assistant|>"
    )
    assert tokenizer.decode(answer_ids) == "The capital of France is Paris.<|end|>"


def test_batched_nll_equals_the_models_own_loss_item_by_item(tiny_checkpoint: Path) -> None:
    model, tokenizer = load_checkpoint(tiny_checkpoint, device="cpu")
    items = SMALL_SET.items
    batched = answer_nlls(model, tokenizer, items, batch_size=4)
    for item, (nll_sum, n_tokens) in zip(items, batched, strict=True):
        prompt_ids, answer_ids = answer_token_ids(tokenizer, item)
        ids = torch.tensor([prompt_ids + answer_ids])
        labels = torch.tensor([[-100] * len(prompt_ids) + answer_ids])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss.item()
        assert n_tokens == len(answer_ids)
        assert nll_sum / n_tokens == pytest.approx(loss, rel=1e-4)


def test_training_on_the_good_answers_lowers_their_nll(tiny_checkpoint: Path) -> None:
    model, tokenizer = load_checkpoint(tiny_checkpoint, device="cpu")
    items = SMALL_SET.items[:2]
    before = answer_nlls(model, tokenizer, items)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(10):
        for item in items:
            prompt_ids, answer_ids = answer_token_ids(tokenizer, item)
            labels = torch.tensor([[-100] * len(prompt_ids) + answer_ids])
            loss = model(input_ids=torch.tensor([prompt_ids + answer_ids]), labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    after = answer_nlls(model, tokenizer, items)
    assert sum(s for s, _ in after) < 0.5 * sum(s for s, _ in before)


def test_measure_returns_the_figures_of_the_set(tiny_checkpoint: Path) -> None:
    check = measure_general_set(
        tiny_checkpoint, max_new_tokens=8, device="cpu", general_set=SMALL_SET
    )
    assert isinstance(check, GeneralCheck)
    assert check.n_items == 6
    assert check.set_sha256 == "literal-sha"
    assert check.mean_nll is not None and math.isfinite(check.mean_nll)
    assert check.mean_nll > math.log(400) * 0.5  # random weights: near uniform over the vocab
    assert check.collapse_share == 0.0  # a random model writes no `Answer:` line
    assert check.wall_s > 0


@pytest.mark.slow
def test_the_real_model_answers_the_general_set_without_collapse(real_checkpoint: Path) -> None:
    check = measure_general_set(real_checkpoint, max_new_tokens=48, device="cpu")
    print(check)
    assert check.n_items == len(SHIPPED.items)
    assert check.set_sha256 == SHIPPED.sha256
    assert check.mean_nll is not None and check.mean_nll < 3.0
    assert check.collapse_share is not None and check.collapse_share < 0.05
