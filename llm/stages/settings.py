"""The settings every stage's config section has (`training.<key>`): optimizer, batch, length,
the minimum of mined examples. A stage's own config class adds only the fields it reads.

Plain pydantic (unknown keys refused, values frozen, one line of help per field), imported by
flywheel/config/training.py through the registry: nothing here imports the config package.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def described(text: str, **kwargs: Any) -> Any:
    """A field with its one line of help."""
    return Field(description=text, **kwargs)


class StageTrainingConfig(BaseModel):
    """What every stage's section holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = described("optimizer learning rate", default=5e-4, gt=0)
    num_train_epochs: float = described("passes over the mined examples", default=2.0, gt=0)
    max_steps: int = described(
        "stop after this many steps; -1 means use num_train_epochs", default=-1, ge=-1
    )
    batch_size: int = described("examples per device batch", default=16, gt=0)
    max_length: int = described("tokens per training sequence", default=256, gt=0)
    min_examples: int = described("fewer mined examples than this skips the stage", default=8, ge=1)
    gradient_accumulation_steps: int = described(
        "batches whose gradients are summed before each optimizer step", default=1, ge=1
    )
    gradient_checkpointing: bool = described(
        "recompute activations in the backward pass (less memory, ~30% slower)", default=False
    )
