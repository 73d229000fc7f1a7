"""sandbox/tiny_model.py: the tokenizer with its chat template, and the tiny Llama."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer

from flywheel.llm.checkpoints import n_parameters
from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer
from tests.llm.test_checkpoints import CONVERSATION, TEXTS


def test_tokenizer_round_trips_with_its_chat_template(tmp_path: Path) -> None:
    tokenizer = build_tokenizer(TEXTS, vocab_size=300)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)

    rendered = reloaded.apply_chat_template(CONVERSATION, tokenize=False)
    assert rendered == tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert rendered == (
        "<|bos|><|system|>Be brief.<|end|><|user|>What is 3 plus 4?<|end|>"
        "<|assistant|>Answer: 7<|end|>"
    )
    prompt = reloaded.apply_chat_template(
        CONVERSATION[:2], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|user|>What is 3 plus 4?<|end|><|assistant|>")
    ids = reloaded("Reverse the word 'banana'.", add_special_tokens=False)["input_ids"]
    assert reloaded.decode(ids) == "Reverse the word 'banana'."
    assert (reloaded.eos_token, reloaded.pad_token, reloaded.padding_side) == (
        "<|end|>",
        "<|pad|>",
        "left",
    )


def test_assistant_mask_covers_the_answer_and_its_end_token() -> None:
    tokenizer = build_tokenizer(TEXTS, vocab_size=300)
    out = tokenizer.apply_chat_template(
        CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "Answer: 7<|end|>"


def test_whole_words_stay_whole_and_other_letters_are_single_tokens() -> None:
    tokenizer = build_tokenizer(TEXTS, vocab_size=400, whole_words={"Reverse", "the", "word"})
    tokens = tokenizer.tokenize("Reverse the word 'lemon' 123")
    assert tokens[:3] == ["Reverse", "Ġthe", "Ġword"]
    assert tokens[3:] == ["Ġ", "'", "l", "e", "m", "o", "n", "'", "Ġ", "1", "2", "3"]


def test_tiny_llama_is_small_and_sized_to_the_tokenizer() -> None:
    tokenizer = build_tokenizer(TEXTS, vocab_size=300)
    model = build_tiny_llama(tokenizer, seed=0)
    assert 1_000_000 <= n_parameters(model) <= 5_000_000
    assert model.config.vocab_size == len(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    same = build_tiny_llama(tokenizer, seed=0)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters(), strict=True)
    )
