"""llm/checkpoints.py on the tiny model of sandbox/tiny_model.py: chat template, saves, generation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from flywheel.llm.chat_template import end_of_turn_token
from flywheel.llm.checkpoints import (
    GeneratedAnswer,
    LocalGenerator,
    checkpoint_stops,
    generate_answers,
    is_checkpoint,
    load_checkpoint,
    pick_device,
    save_checkpoint,
    stop_token_ids,
    weights_sha256,
)
from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer

TEXTS = [f"What is {a} plus {b}? Answer: {a + b}" for a in range(30) for b in range(10)] + [
    "Reverse the word 'banana'. Answer: ananab",
    "Sort the letters of 'lemon' alphabetically. Answer: elmno",
]
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 3 plus 4?"},
    {"role": "assistant", "content": "Answer: 7"},
]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = build_tokenizer(TEXTS, vocab_size=300, whole_words={"What", "is", "plus", "Answer"})
    model = build_tiny_llama(
        tokenizer, seed=0, hidden_size=64, n_layers=2, n_heads=2, intermediate_size=128
    )
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("models") / "tiny")


def test_checkpoint_loads_with_auto_classes(tiny_checkpoint: Path) -> None:
    assert is_checkpoint(tiny_checkpoint)
    assert (tiny_checkpoint / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    assert model.config.vocab_size == len(tokenizer)
    loaded, _ = load_checkpoint(tiny_checkpoint, device="cpu")
    assert not loaded.training


def test_save_checkpoint_crash_leaves_nothing_at_target(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = load_checkpoint(tiny_checkpoint, device="cpu")

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(type(tokenizer), "save_pretrained", crash)
    target = tmp_path / "candidate"
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(model, tokenizer, target)  # the model was written, the tokenizer not
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the staging directory is gone too


def test_save_checkpoint_refuses_or_replaces_existing(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    model, tokenizer = load_checkpoint(tiny_checkpoint, device="cpu")
    target = save_checkpoint(model, tokenizer, tmp_path / "ckpt")
    with pytest.raises(FileExistsError):
        save_checkpoint(model, tokenizer, target)
    (target / "marker").write_text("old")
    save_checkpoint(model, tokenizer, target, overwrite=True)
    assert is_checkpoint(target) and not (target / "marker").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_load_checkpoint_names_a_path_that_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_checkpoint(tmp_path)


def test_generate_answers_left_pads_and_greedy_is_deterministic(tiny_checkpoint: Path) -> None:
    conversations = [
        [{"role": "user", "content": "What is 1 plus 2?"}],
        [
            {
                "role": "user",
                "content": "Reverse the word 'banana' and then sort the letters of 'lemon'.",
            }
        ],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 9 plus 9?"},
        ],
    ]
    first = generate_answers(tiny_checkpoint, conversations, max_new_tokens=8, batch_size=2)
    again = generate_answers(tiny_checkpoint, conversations, max_new_tokens=8, batch_size=3)
    alone = [generate_answers(tiny_checkpoint, [c], max_new_tokens=8)[0] for c in conversations]
    assert first == again == alone  # batching with left padding changes nothing
    assert all(isinstance(a, GeneratedAnswer) for a in first)
    assert all(a.finish_reason in {"stop", "length"} and 0 <= a.n_tokens <= 8 for a in first)


def test_generate_answers_sampling_is_seeded(tiny_checkpoint: Path) -> None:
    conversations = [[{"role": "user", "content": f"What is {i} plus 1?"}] for i in range(4)]

    def sample(seed: int) -> list[GeneratedAnswer]:
        return generate_answers(
            tiny_checkpoint,
            conversations,
            max_new_tokens=6,
            do_sample=True,
            temperature=1.0,
            seed=seed,
        )

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_left_padding_is_used_for_generation(tiny_checkpoint: Path) -> None:
    _, tokenizer = load_checkpoint(tiny_checkpoint, device="cpu")
    batch = tokenizer.pad({"input_ids": [[5, 6, 7], [8]]}, padding=True, return_tensors="pt")
    assert batch["input_ids"][1].tolist() == [tokenizer.pad_token_id] * 2 + [8]


def test_pick_device() -> None:
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def _copy_with_tokenizer_change(source: Path, target: Path, **changes: object) -> Path:
    import json
    import shutil

    shutil.copytree(source, target)
    config_path = target / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config.update(changes)
    config_path.write_text(json.dumps(tokenizer_config))
    if "chat_template" in changes:
        (target / "chat_template.jinja").unlink(missing_ok=True)
    return target


def test_a_checkpoint_without_a_chat_template_is_refused_naming_the_fix(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from flywheel.errors import InputError

    bare = _copy_with_tokenizer_change(tiny_checkpoint, tmp_path / "bare", chat_template=None)
    with pytest.raises(InputError, match="has no chat template.*Fix: use a chat-tuned checkpoint"):
        load_checkpoint(bare)


def test_a_tokenizer_without_a_pad_token_pads_with_its_end_of_sequence_token(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    no_pad = _copy_with_tokenizer_change(tiny_checkpoint, tmp_path / "no-pad", pad_token=None)
    assert AutoTokenizer.from_pretrained(no_pad).pad_token is None
    _model, tokenizer = load_checkpoint(no_pad)
    assert tokenizer.pad_token == tokenizer.eos_token
    answers = generate_answers(no_pad, [[{"role": "user", "content": "hi"}]] * 2, 4)
    assert len(answers) == 2


@pytest.fixture(scope="module")
def turn_end_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.llm.turn_end_checkpoint import build_turn_end_checkpoint

    return build_turn_end_checkpoint(tmp_path_factory.mktemp("turn-end") / "qwen-layout")


def test_generation_stops_at_the_chat_templates_end_of_turn_token_not_only_eos(
    turn_end_checkpoint: Path,
) -> None:
    from tests.llm.turn_end_checkpoint import ANSWER, QUESTION

    generator = LocalGenerator.load(turn_end_checkpoint, device="cpu")
    assert generator.tokenizer.eos_token == "<|endoftext|>"
    assert generator.model.generation_config.eos_token_id == generator.tokenizer.eos_token_id
    assert end_of_turn_token(generator.tokenizer) == "<|im_end|>"
    [answer] = generator.generate([QUESTION], max_new_tokens=16)
    assert answer == GeneratedAnswer(ANSWER, n_tokens=answer.n_tokens, finish_reason="stop")
    assert checkpoint_stops(turn_end_checkpoint)[1] == ["<|endoftext|>", "<|im_end|>"]


def test_a_generation_config_list_of_eos_ids_is_honoured(turn_end_checkpoint: Path) -> None:
    generator = LocalGenerator.load(turn_end_checkpoint, device="cpu")
    answer_ids = generator.tokenizer("Answer", add_special_tokens=False)["input_ids"]
    generator.model.generation_config.eos_token_id = [answer_ids[0], 0]
    ids = stop_token_ids(generator.model.generation_config, generator.tokenizer)
    assert ids[:2] == [answer_ids[0], 0] and len(ids) == 3  # eos 0 once, then <|im_end|>


def test_a_tokenizer_without_pad_or_eos_pads_with_its_end_of_turn_token(
    turn_end_checkpoint: Path, tmp_path: Path
) -> None:
    bare = _copy_with_tokenizer_change(
        turn_end_checkpoint, tmp_path / "no-eos", pad_token=None, eos_token=None
    )
    _model, tokenizer = load_checkpoint(bare)
    assert tokenizer.pad_token == "<|im_end|>"


def test_weights_hash_follows_the_weights_not_the_directory(
    tiny_checkpoint: Path, turn_end_checkpoint: Path, tmp_path: Path
) -> None:
    import shutil

    copy = shutil.copytree(tiny_checkpoint, tmp_path / "renamed")
    assert weights_sha256(copy) == weights_sha256(tiny_checkpoint)
    assert weights_sha256(turn_end_checkpoint) != weights_sha256(tiny_checkpoint)
    assert len(weights_sha256(copy)) == 64
