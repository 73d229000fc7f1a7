"""The sandbox's round-0 student: a tiny Llama that answers in the right format but is often wrong.

Built locally from nothing downloaded, in ~160 CPU-seconds (about 1.5-3 minutes on two cores):
1. tokenizer: byte-level BPE trained on sandbox text (task prompts and answers rendered in every
   verbosity); the fixed prose stays whole words, while payload words, numbers and answers are
   spelled one character per token, so the skills are learnable by a small model;
2. model: a ~1.8M-parameter, two-layer Llama (`build_tiny_llama`) seeded by `config.student.seed`;
3. training: a short TRL SFT run on a seed slice of generated tasks, answers mostly terse
   (`Answer: X`, some with prose first), stopped early: the format is learned, the skills not;
4. check: checker accuracy on held-out generated tasks (another seed), expected 10-40%.

The student's tasks use their own seed range (`STUDENT_TRAIN_SEED_OFFSET` and
`STUDENT_HELDOUT_SEED_OFFSET` + `config.student.seed`), apart from the sandbox prompt pool's.
"""

from __future__ import annotations

import collections
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluators.skills import check_answer, render_answer
from flywheel.config import Config, StageTrainingConfig
from sandbox.skills import WORDS, SkillTask, generate_tasks
from tasks.models import (
    build_tiny_llama,
    build_tokenizer,
    generate_answers,
    is_checkpoint,
    load_checkpoint,
    n_parameters,
    publish_checkpoint,
    save_checkpoint,
)

STUDENT_TRAIN_SEED_OFFSET = 1_000_000
STUDENT_HELDOUT_SEED_OFFSET = 2_000_000
VERBOSITIES = ("terse", "normal", "verbose")


@dataclass(frozen=True)
class StudentRecipe:
    """How the student is built; the defaults land its held-out accuracy near 17% (10-40% band)."""

    n_train_tasks: int = 4000  # seed slice the student is trained on (terse answers)
    n_heldout_tasks: int = 350  # held-out tasks measuring its accuracy
    n_tokenizer_tasks: int = 3000  # tasks whose prompts and answers train the tokenizer
    vocab_size: int = 1024
    min_whole_word_count: int = 3  # rarer words are spelled character by character
    hidden_size: int = 256  # wide and shallow: learns faster per CPU second than deep and narrow
    n_layers: int = 2
    n_heads: int = 8
    intermediate_size: int = 672
    learning_rate: float = 2e-3
    batch_size: int = 32
    max_steps: int = 400  # stopped early on purpose: format learned, skills barely started
    warmup_ratio: float = 0.1
    max_length: int = 192
    # answer styles of the training slice (terse, normal, verbose): mostly terse, so the student
    # answers `Answer: X`, with some prose so later SFT on prose-style references does not
    # break the answers it already gets right (no verbose: long answers would double the padding)
    verbosity_weights: tuple[float, float, float] = (0.7, 0.3, 0.0)


@dataclass(frozen=True)
class StudentReport:
    """The round-0 student: where it is, its size, its held-out accuracy and build time."""

    path: Path
    n_parameters: int
    heldout_accuracy: float
    wall_s: float
    built: bool  # False when an existing checkpoint was reused


def student_tasks(config: Config, recipe: StudentRecipe) -> tuple[list[SkillTask], list[SkillTask]]:
    """The student's training slice and its held-out tasks (two seeds, no shared prompt)."""
    seed = config.student.seed
    train = generate_tasks(recipe.n_train_tasks, seed=STUDENT_TRAIN_SEED_OFFSET + seed)
    train_prompts = {t.prompt for t in train}
    heldout = [
        t
        for t in generate_tasks(recipe.n_heldout_tasks, seed=STUDENT_HELDOUT_SEED_OFFSET + seed)
        if t.prompt not in train_prompts
    ]
    return train, heldout


def tokenizer_corpus(tasks: Sequence[SkillTask], seed: int) -> list[str]:
    """Prompts and their answers rendered in every verbosity (all the prose phrasings appear)."""
    rng = random.Random(seed)
    texts: list[str] = []
    for task in tasks:
        texts.append(task.prompt)
        texts.extend(render_answer(task.answer, verbosity, rng) for verbosity in VERBOSITIES)
    return texts


def prose_words(texts: Sequence[str], min_count: int) -> set[str]:
    """Frequent words of the fixed prose, excluding skill payloads (sandbox words, reversed, sorted)."""
    payload = {w for word in WORDS for w in (word, word[::-1], "".join(sorted(word)))}
    counts = collections.Counter(w for text in texts for w in re.findall(r"[A-Za-z]+", text))
    return {
        w for w, n in counts.items() if n >= min_count and len(w) > 1 and w.lower() not in payload
    }


def sandbox_accuracy(model_path: str | Path, tasks: Sequence[SkillTask], config: Config) -> float:
    """Share of `tasks` the checkpoint answers right (checker verdict), decoding as `config.student`."""
    if not tasks:
        raise ValueError("sandbox_accuracy needs at least one task")
    student = config.student
    answers = generate_answers(
        model_path,
        [[{"role": "user", "content": t.prompt}] for t in tasks],
        max_new_tokens=student.max_new_tokens,
        batch_size=student.batch_size,
        do_sample=student.do_sample,
        temperature=student.temperature,
        seed=student.seed,
        device=student.device,
    )
    n_right = sum(bool(check_answer(t.prompt, a.text)) for t, a in zip(tasks, answers, strict=True))
    return n_right / len(tasks)


def build_student(
    config: Config, force: bool = False, recipe: StudentRecipe | None = None
) -> StudentReport:
    """Build (or reuse) the round-0 student at `config.student.path` and measure it.

    An existing checkpoint is reused unless `force`; a forced rebuild replaces it only once the
    new one is complete. Deterministic under `config.student.seed`.
    """
    recipe = recipe or StudentRecipe()
    started = time.perf_counter()
    path = Path(config.student.path)
    train, heldout = student_tasks(config, recipe)
    reuse = is_checkpoint(path) and not force
    if path.exists() and not is_checkpoint(path) and not force:
        raise FileExistsError(
            f"student.path {path} exists but holds no checkpoint. Fix: remove it, point "
            "student.path elsewhere, or rebuild with force (`flywheel init --force`)."
        )
    if not reuse:
        _train_student(config, recipe, train, path, force)
    model, _ = load_checkpoint(path, device="cpu")
    return StudentReport(
        path=path,
        n_parameters=n_parameters(model),
        heldout_accuracy=sandbox_accuracy(path, heldout, config),
        wall_s=time.perf_counter() - started,
        built=not reuse,
    )


def _train_student(
    config: Config, recipe: StudentRecipe, train: Sequence[SkillTask], path: Path, force: bool
) -> None:
    """Tokenizer, random tiny Llama, short SFT (mostly terse answers); published to `path` when done."""
    from tasks.train import train_sft

    seed = config.student.seed
    texts = tokenizer_corpus(train[: recipe.n_tokenizer_tasks], seed)
    tokenizer = build_tokenizer(
        texts, recipe.vocab_size, prose_words(texts, recipe.min_whole_word_count)
    )
    model = build_tiny_llama(
        tokenizer,
        seed,
        hidden_size=recipe.hidden_size,
        n_layers=recipe.n_layers,
        n_heads=recipe.n_heads,
        intermediate_size=recipe.intermediate_size,
    )
    rng = random.Random(seed)
    styles = rng.choices(VERBOSITIES, weights=recipe.verbosity_weights, k=len(train))
    rows = [
        {
            "messages": [
                {"role": "user", "content": t.prompt},
                {"role": "assistant", "content": render_answer(t.answer, style, rng)},
            ]
        }
        for t, style in zip(train, styles, strict=True)
    ]
    cfg = StageTrainingConfig(
        learning_rate=recipe.learning_rate,
        max_steps=recipe.max_steps,
        batch_size=recipe.batch_size,
        max_length=recipe.max_length,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.build-{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory(prefix="flywheel-student-init-") as init_dir:
            init_path = save_checkpoint(model, tokenizer, Path(init_dir) / "init")
            train_sft(init_path, rows, staging, cfg, seed, warmup_ratio=recipe.warmup_ratio)
        publish_checkpoint(staging, path, overwrite=force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
