"""The online-dpo stage: online iterative DPO (RLHFlow, Xiong et al. 2312.11456). The champion
samples `n_samples` answers per prompt of its round's slice, reward models rank them, and each
prompt's best and worst sample form a preference pair; DPO then trains the candidate on those
pairs with the champion as reference model, so the reference is refreshed every iteration (each
round's champion).

Config `training.online_dpo` (DPO's settings, and how the pairs are made: samples, temperature,
reward models, checker weight, minimum gap); rows `{"prompt", "chosen", "rejected"}` from
`preference_pairs` of kind online-dpo (`v_online_dpo_pairs`, warehouse/views/online_dpo.sql).
The pairs are not mined from battles: the train step makes them in the parent process before
the stage is launched (tasks/online_pairs.py); this module only trains on them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from flywheel.llm.stages import dpo
from flywheel.llm.stages.settings import described
from flywheel.llm.stages.spec import DataKind, Stage, StageRun, TrainResult

SECTION = "online_dpo"
STAGE_NAME = "online-dpo"


class OnlineDpoConfig(dpo.DpoConfig):
    """`training.online_dpo`: DPO's settings for training on the pairs, and how the pairs are
    made from the champion's samples."""

    n_samples: int = described(
        "answers the champion samples per prompt of the round's slice (stored as responses "
        "with sample_idx 1..n; sample 0 stays the round's own answer); the best and the worst "
        "by reward make the prompt's pair",
        default=4,
        ge=2,
        le=64,
    )
    temperature: float = described(
        "sampling temperature of those answers (seeded by student.seed + sample_idx, through "
        "student.backend like the round's answers); higher: more varied samples, wider gaps",
        default=1.0,
        gt=0,
    )
    min_score_gap: float = described(
        "a prompt gives a pair only when its best sample's reward is at least this above its "
        "worst's (rewards are standardised over the round's samples: 1 is one standard "
        "deviation); a tie never gives a pair; 0: every prompt whose samples differ",
        default=0.0,
        ge=0,
    )
    reward_model: str | None = described(
        "the reward model that ranks the samples: a sequence-classifier checkpoint with one "
        "label, or a folder of member-<i> checkpoints (an ensemble, e.g. an rm+rl round's "
        "<candidate>-rm); null: fit training.rm.ensemble_size reward models from the champion "
        "on the DPO pairs mined up to the round (training.rm's settings)",
        default=None,
        min_length=1,
    )
    reward_fit_replay_rows: int | None = described(
        "with reward_model null: at most this many DPO pairs of earlier rounds go into the "
        "reward models' fit beside the round's own (newest round first, then the widest "
        "score gap), so the fit's cost stays flat over many nights; null: every pair mined "
        "up to the round",
        default=None,
        ge=0,
    )
    disagreement_penalty: float = described(
        "reward = the reward models' standardised mean minus this x their spread across models "
        "(a sample the models disagree on ranks lower); needs two or more reward models",
        default=0.0,
        ge=0,
    )
    verifiable_reward_weight: float = described(
        "w in reward = (1 - w) x reward models + w x checker, for samples a skill checker can "
        "check (right +1, wrong -1: one standard deviation of the reward models' scores); "
        "prompts without a checker get the reward models alone; 0: off (real data has no "
        "checker)",
        default=0.0,
        ge=0,
        le=1,
    )


ONLINE_DPO_DATA = DataKind(
    name=STAGE_NAME,
    table="preference_pairs",
    key=("kind", "round_id", "prompt_id"),
    # not run by the mining step (registry.MADE_BEFORE_TRAINING): tasks/online_pairs.py makes
    # the pairs from scored samples; this query reads the round's stored ones
    mining_query="online_pairs_stored",
    view="v_online_dpo_pairs",
    columns=("prompt", "chosen", "rejected"),
    first_gap=lambda mining: 0.0,  # the stage's own min_score_gap applies, not a battle's gap
    later_gap=lambda mining: 0.0,
    every_round=False,
)


def is_reward_checkpoint(path: Path) -> bool:
    """A checkpoint folder whose config names a sequence classifier with one label."""
    config_file = path / "config.json"
    if not (config_file.is_file() and (path / "model.safetensors").is_file()):
        return False
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    architectures = config.get("architectures") or []
    n_labels = config.get("num_labels") or len(config.get("id2label") or {}) or 2
    return any(a.endswith("ForSequenceClassification") for a in architectures) and n_labels == 1


def reward_members(path: Path) -> list[Path]:
    """The reward models at `path`: itself, or its member-0, member-1, ... folders."""
    if is_reward_checkpoint(path):
        return [path]
    members: list[Path] = []
    while is_reward_checkpoint(path / f"member-{len(members)}"):
        members.append(path / f"member-{len(members)}")
    return members


def reward_model_problem(reward_model: str | None) -> str | None:
    """Why `training.online_dpo.reward_model` cannot rank samples (None when it can, or when
    it is null and the reward models are fit from the champion)."""
    if reward_model is None:
        return None
    if reward_members(Path(reward_model)):
        return None
    return (
        f"training.online_dpo.reward_model = {reward_model!r} is not a reward model: neither a "
        "checkpoint whose config.json names a ...ForSequenceClassification with num_labels 1 "
        "nor a folder of such member-<i> checkpoints. Fix: point it at an rm+rl round's "
        "<candidate>-rm folder (kept while that candidate is), or set it to null to fit reward "
        "models from the champion on the mined DPO pairs"
    )


def sampling_problem(config: Any) -> str | None:
    """The embedded sandbox's student endpoint replies from the messages alone (no sampling):
    every sample of a prompt would be the same answer, and no prompt would give a pair."""
    from flywheel.config.checks import SANDBOX_URL

    endpoint = config.student.endpoint
    if config.student.answer_backend != "endpoint" or endpoint is None:
        return None
    if endpoint.base_url != SANDBOX_URL:
        return None
    return (
        "the online-dpo stage samples several answers per prompt, but student.endpoint is the "
        "embedded sandbox's simulated student, whose reply depends on the messages only (all "
        "samples alike, no pair). Fix: answer with a checkpoint (student.backend local, server "
        "or vllm), or leave online-dpo out of schedule.stages"
    )


def online_dpo_problems(config: Any) -> list[str]:
    """One line per reason a config that schedules online-dpo cannot make its pairs (empty
    when it does not schedule it). Checked before a round runs and again by the train step."""
    if STAGE_NAME not in config.schedule.stages:
        return []
    cfg = config.training.online_dpo
    problems = [reward_model_problem(cfg.reward_model), sampling_problem(config)]
    return [p for p in problems if p is not None]


def check_training(training: Any) -> None:
    """A disagreement penalty on reward models fit for the round needs two or more of them (a
    named folder's member count is checked when the round scores its samples)."""
    from flywheel.config.checks import field_problem

    cfg = training.online_dpo
    fits_one = cfg.reward_model is None and training.rm.ensemble_size < 2
    if cfg.disagreement_penalty > 0 and fits_one:
        raise field_problem(
            "needs an ensemble: one reward model never disagrees with itself",
            "set training.rm.ensemble_size to 2 or more, or online_dpo.disagreement_penalty: 0",
            field="online_dpo.disagreement_penalty",
            value=cfg.disagreement_penalty,
        )


def train(run: StageRun) -> TrainResult:
    """The round's online-dpo stage: DPO on the pairs of the champion's samples, the champion
    (the base) as reference."""
    cfg = run.settings[SECTION]
    result = dpo.train_dpo(run.base_path, run.rows, run.out_path, cfg, run.seed, setup=run.setup)
    return dataclasses.replace(result, hyperparams={**result.hyperparams, "stage": STAGE_NAME})


STAGE = Stage(
    name=STAGE_NAME,
    sections={SECTION: OnlineDpoConfig},
    data=ONLINE_DPO_DATA,
    trains_on_prompts=False,
    train=train,
    check_training=check_training,
    absent_sections={SECTION: {"learning_rate": 5e-5}},
)
