"""llm/chat_template.py on small hand-made tokenizers: which templates can train with the loss
on the answer, why the others cannot, and the prompt/completion rows TRL trains on."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from flywheel.llm.chat_template import (
    completion_rows,
    end_of_turn_token,
    has_generation_markers,
    template_problem,
)
from flywheel.sandbox.tiny_model import build_tokenizer

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen3-like: the generation prompt opens an empty thinking block the history never shows.
THINKING_PROMPT = CHATML.replace(
    "<|im_start|>assistant\n{% endif %}", "<|im_start|>assistant\n<think></think>\n{% endif %}"
)
# The newest message first: an answer goes before the question it answers.
REVERSED = CHATML.replace("messages %}", "messages | reverse %}")
PLAIN_TEXT = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 3 plus 4?"},
    {"role": "assistant", "content": "Answer: 7"},
]


def chatml_tokenizer(template: str | None = CHATML) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ChatML's special tokens, trained here in well under 1 s."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(["What is 3 plus 4? Answer: 7 user assistant system"], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = template
    return tokenizer


def sandbox_tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer(["What is 3 plus 4? Answer: 7"], vocab_size=300)


def test_the_sandbox_template_has_generation_markers_and_chatml_has_none() -> None:
    assert has_generation_markers(sandbox_tokenizer())
    assert not has_generation_markers(chatml_tokenizer())


def test_templates_that_can_train_have_no_problem() -> None:
    assert template_problem(sandbox_tokenizer()) is None
    assert template_problem(chatml_tokenizer()) is None


def test_a_tokenizer_without_a_template_is_refused_naming_the_fix() -> None:
    problem = template_problem(chatml_tokenizer(template=None))
    assert problem is not None
    assert problem.startswith("its tokenizer has no chat template")
    assert "Fix: use a chat-tuned checkpoint" in problem


@pytest.mark.parametrize("template", [THINKING_PROMPT, REVERSED])
def test_a_template_that_is_not_prefix_preserving_is_refused(template: str) -> None:
    problem = template_problem(chatml_tokenizer(template))
    assert problem is not None
    assert problem.startswith("its chat template is not prefix-preserving")
    assert "Fix:" in problem


def test_a_template_without_an_end_of_turn_token_is_refused() -> None:
    tokenizer = chatml_tokenizer(PLAIN_TEXT)
    assert end_of_turn_token(tokenizer) is None
    problem = template_problem(tokenizer)
    assert problem is not None and "writes no special end-of-turn token" in problem
    assert "Fix: end each assistant turn with a special token" in problem


def test_a_template_that_cannot_render_a_question_and_answer_is_refused() -> None:
    tokenizer = chatml_tokenizer("{{ raise_exception('system message required') }}")
    problem = template_problem(tokenizer)
    assert problem is not None
    assert "cannot render a user question and an answer (system message required)" in problem


def test_end_of_turn_token_of_chatml_and_the_sandbox() -> None:
    assert end_of_turn_token(chatml_tokenizer()) == "<|im_end|>"
    assert end_of_turn_token(sandbox_tokenizer()) == "<|end|>"


def test_completion_rows_split_at_the_last_assistant_turn_and_keep_other_columns() -> None:
    follow_up = [
        *CONVERSATION,
        {"role": "user", "content": "And 5 plus 5?"},
        {"role": "assistant", "content": "Answer: 10"},
    ]
    rows = [{"messages": CONVERSATION, "prompt_id": "p1"}, {"messages": follow_up}]
    assert completion_rows(rows) == [
        {"prompt_id": "p1", "prompt": CONVERSATION[:2], "completion": [CONVERSATION[2]]},
        {"prompt": follow_up[:4], "completion": [follow_up[4]]},
    ]


def test_completion_rows_refuse_a_row_without_a_prompt_or_an_answer() -> None:
    with pytest.raises(ValueError, match="needs a prompt and an assistant turn"):
        completion_rows([{"messages": CONVERSATION[:2]}])
    with pytest.raises(ValueError, match="needs a prompt and an assistant turn"):
        completion_rows([{"messages": CONVERSATION[2:]}])


def sft_labels(
    model: str | Path | object, tokenizer: object, rows: list[dict], out: Path
) -> list[list[int]]:
    """The labels TRL's SFTTrainer trains on for `rows` (prompt/completion, completion-only)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(out), use_cpu=True, bf16=False, report_to="none", max_length=256
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    return [[t for t in row.tolist() if t != -100] for row in batch["labels"]]


def test_sft_on_completion_rows_trains_the_answer_and_its_end_of_turn_only(
    tmp_path: Path,
) -> None:
    from flywheel.sandbox.tiny_model import build_tiny_llama

    tokenizer = chatml_tokenizer()
    tokenizer.bos_token = "<|im_start|>"  # build_tiny_llama reads bos and pad
    model = build_tiny_llama(tokenizer, seed=0, hidden_size=32, n_layers=1, n_heads=2)
    rows = completion_rows([{"messages": CONVERSATION}, {"messages": CONVERSATION[1:]}])
    for labels in sft_labels(model, tokenizer, rows, tmp_path):
        # the answer, the turn's end, and the newline the template writes after every turn
        assert tokenizer.decode(labels) == "Answer: 7<|im_end|>\n"


@pytest.mark.slow
def test_the_real_template_trains_the_answer_and_its_end_of_turn_only(
    real_checkpoint: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(real_checkpoint)
    assert not has_generation_markers(tokenizer)
    assert template_problem(tokenizer) is None
    assert end_of_turn_token(tokenizer) == "<|im_end|>"
    rows = completion_rows([{"messages": CONVERSATION}, {"messages": CONVERSATION[1:]}])
    for labels in sft_labels(str(real_checkpoint), tokenizer, rows, tmp_path):
        answer = tokenizer("Answer: 7<|im_end|>\n", add_special_tokens=False)["input_ids"]
        assert labels == answer


def test_rows_with_earlier_answers_train_on_their_last_answer_even_with_generation_markers(
    tmp_path: Path,
) -> None:
    from flywheel.llm.stages.sft import loss_on_answers
    from flywheel.sandbox.tiny_model import build_tiny_llama

    tokenizer = sandbox_tokenizer()  # {% generation %} markers, and prefix-preserving
    corrected = [
        {"role": "user", "content": "What is 3 plus 4?"},
        {"role": "assistant", "content": "Answer: 8"},  # context: the answer the user corrected
        {"role": "user", "content": "What is 3 plus 4?"},
        {"role": "assistant", "content": "Answer: 7"},
    ]
    assert loss_on_answers(tokenizer, [CONVERSATION[1:]]).loss_on.startswith("assistant turns")

    loss = loss_on_answers(tokenizer, [CONVERSATION[1:], corrected])

    assert loss.loss_on == "completion (prompt/completion rows)"
    model = build_tiny_llama(tokenizer, seed=0, hidden_size=32, n_layers=1, n_heads=2)
    labels = sft_labels(model, tokenizer, loss.rows, tmp_path)
    assert labels[0] == labels[1]  # the last answer alone, in both rows
    assert "Answer: 7" in tokenizer.decode(labels[1]) and "8" not in tokenizer.decode(labels[1])
