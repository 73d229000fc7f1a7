"""The sandbox's tiny model: a byte-level BPE tokenizer with a chat template and a small Llama,
both built from scratch here (nothing is downloaded)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|end|>"  # ends every turn; generation stops on it
PAD_TOKEN = "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, *ROLE_TOKENS)

# Each turn is `<|role|>content<|end|>`. The assistant's content and its end token sit inside
# `{% generation %}` so TRL's assistant-only loss trains the model both to answer and to stop.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>' }}{{ message['content'] }}<|end|>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer(
    texts: Iterable[str], vocab_size: int = 1024, whole_words: Collection[str] | None = None
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts` (well under a second for a few thousand lines).

    Digits are always one per token (arithmetic reads digit by digit). With `whole_words`, those
    words (with their leading space) are the only multi-character pieces BPE may merge; every
    other character is a token of its own, so skills that spell words (reverse, sort, count) see
    letters while the fixed prose around them stays short. Without it, standard byte-level BPE.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    splits: list[Any]
    if whole_words:
        alternatives = "|".join(
            re.escape(w) for w in sorted(set(whole_words), key=len, reverse=True)
        )
        pattern = Regex(rf" ?\b(?:{alternatives})\b|[\s\S]")
        splits = [
            pre_tokenizers.Split(pattern, behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    else:
        splits = [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(splits)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=list(ROLE_TOKENS),
        padding_side="left",
        model_max_length=1024,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_llama(
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
    hidden_size: int = 192,
    n_layers: int = 4,
    n_heads: int = 4,
    intermediate_size: int = 512,
    max_position_embeddings: int = 512,
) -> LlamaForCausalLM:
    """A randomly initialised Llama-style model sized to `tokenizer` (~2M parameters by default)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
