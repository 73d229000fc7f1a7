"""The SFT stage: supervised fine-tuning on the mined SFT examples (TRL's SFTTrainer).

Config `training.sft` (the shared settings only); rows `{"messages": [...]}` from
`sft_examples` (`v_sft_data`), loss on the answer each row was mined for, its last assistant
turn: through a template's `{% generation %}` markers while no row has an earlier assistant turn,
else as prompt/completion rows (`loss_on_answers`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.llm.chat_template import (
    completion_problem,
    completion_rows,
    has_generation_markers,
)
from flywheel.llm.stages import common
from flywheel.llm.stages.outputs import scratch_directory
from flywheel.llm.stages.settings import StageTrainingConfig
from flywheel.llm.stages.spec import DataKind, Stage, StageRun, TrainResult

if TYPE_CHECKING:
    from flywheel.llm.stage_setup import StageSetup

SECTION = "sft"


class SftConfig(StageTrainingConfig):
    """`training.sft`: the settings every stage has, and no more."""


SFT_DATA = DataKind(
    name="sft",
    table="sft_examples",
    key=("round_id", "prompt_id"),
    mining_query="mine_sft",
    view="v_sft_data",
    columns=("messages",),
    first_gap=lambda mining: mining.sft_min_gap_first,
    every_round=True,
    refinable=True,
)


@dataclass(frozen=True)
class AnswerLoss:
    """How SFT keeps the loss on the answers: the rows TRL trains on, its arguments for that,
    and the description stored in the hyperparams (`loss_on`)."""

    rows: list[dict[str, Any]]
    trl_args: dict[str, bool]
    loss_on: str


def loss_on_answers(tokenizer: Any, messages: list[list[dict[str, Any]]]) -> AnswerLoss:
    """The loss on the answer each row was mined for, its last assistant turn. A template with
    `{% generation %}` markers trains `messages` rows on their assistant turns, which is that
    answer alone while no row has an earlier assistant turn; a row that has one (a logged
    conversation's earlier answers, a multi-turn prompt) is context, not a target, so such rows
    train as prompt/completion rows on the last turn wherever the template can
    (`completion_problem`), as every template without markers does (`llm/chat_template.py`;
    preflight refused one that can do neither)."""
    rows = [{"messages": conversation} for conversation in messages]
    earlier_answers = any(
        sum(message["role"] == "assistant" for message in conversation) > 1
        for conversation in messages
    )
    if has_generation_markers(tokenizer) and not (
        earlier_answers and completion_problem(tokenizer) is None
    ):
        return AnswerLoss(
            rows, {"assistant_only_loss": True}, "assistant turns (generation markers)"
        )
    return AnswerLoss(
        completion_rows(rows),
        {"completion_only_loss": True},
        "completion (prompt/completion rows)",
    )


@common.quiet_progress_bars()
def train_sft(
    base_path: str | Path,
    rows: list[dict[str, Any]],
    out_path: str | Path,
    cfg: StageTrainingConfig,
    seed: int,
    warmup_ratio: float = 0.0,
    *,
    setup: StageSetup | None = None,
) -> TrainResult:
    """Supervised fine-tuning on conversational rows `{"messages": [...]}` (loss on the
    answers: `loss_on_answers`).

    `warmup_ratio` is the share of steps with a linear learning-rate warmup (0 for fine-tuning;
    the sandbox student, trained from scratch, uses some).
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from flywheel.llm.stage_setup import StageSetup, common_args, count_truncated, peft_config

    setup = setup or StageSetup()
    common.require_rows(rows, SECTION)
    started = time.perf_counter()
    lora = peft_config(setup, base_path)
    tokenizer = common.load_tokenizer(base_path)
    messages = [row["messages"] for row in rows]
    n_truncated = count_truncated(tokenizer, messages, cfg.max_length)
    common.warn_truncated(SECTION, n_truncated, len(rows), cfg.max_length)
    loss = loss_on_answers(tokenizer, messages)
    dataset = Dataset.from_list(loss.rows)
    with scratch_directory(out_path, SECTION) as scratch:
        args = SFTConfig(
            **common_args(cfg, seed, scratch, base_path, setup),
            max_length=cfg.max_length,
            **loss.trl_args,
            packing=False,
            warmup_steps=warmup_ratio,
        )
        trainer, figures, output = common.fit_and_save(
            SFTTrainer, args, base_path, dataset, tokenizer, lora, out_path
        )
    hyperparams = common.hyperparams(
        cfg,
        seed,
        setup,
        base_path,
        stage="sft",
        assistant_only_loss=loss.trl_args.get("assistant_only_loss", False),
        loss_on=loss.loss_on,
        warmup_ratio=warmup_ratio,
    )
    return common.stage_result(
        trainer, figures, output, len(rows), started, hyperparams, n_truncated=n_truncated
    )


def train(run: StageRun) -> TrainResult:
    """The round's SFT stage."""
    cfg = run.settings[SECTION]
    return train_sft(run.base_path, run.rows, run.out_path, cfg, run.seed, setup=run.setup)


STAGE = Stage(
    name="sft",
    sections={SECTION: SftConfig},
    data=SFT_DATA,
    trains_on_prompts=False,
    train=train,
)
