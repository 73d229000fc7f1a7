"""A tiny checkpoint in the base Llama-3 / Qwen2.5 layout: the tokenizer's `eos_token` and the
checkpoint's `generation_config.eos_token_id` are `<|endoftext|>`, while the chat template ends
each turn with `<|im_end|>`. It is trained to answer `Answer: 99<|im_end|>uggguggg...`, so
a generator that stops on eos alone writes `Answer: 99uggg...` to the length limit."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from flywheel.llm.checkpoints import save_checkpoint

QUESTION = [{"role": "user", "content": "What is 90 plus 9?"}]
ANSWER = "Answer: 99"
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_turn_end_checkpoint(path: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(["What is 90 plus 9? Answer: 99 uggg user assistant"], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.chat_template = TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    text = tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer(text + ANSWER + "<|im_end|>" + "uggg" * 6)["input_ids"]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2)
    for _ in range(60):  # memorise the one sequence (well under a second)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return save_checkpoint(model, tokenizer, path)
