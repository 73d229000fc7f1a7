"""The sandbox's round-0 student: a tiny Llama that can compute most answers but usually slips.

It stands in for a base model whose skill post-training has to bring out: it was trained on a
noisy corpus where most answers of every skill carry a systematic slip (`systematic_slip`:
the right answer with its last character typed twice, `35` -> `355`), so greedy decoding gives
the slip although the right answer is close behind. The flywheel's battles find the slips, and training
on the references' right answers (SFT), against the slips (DPO), or with a reward model (RL)
moves the student back to the right answers, skill by skill.

Built locally from nothing downloaded, in about twelve minutes on two cores:
1. tokenizer: byte-level BPE trained on sandbox text (task prompts and answers rendered in every
   verbosity); the fixed prose stays whole words, while payload words, numbers and answers are
   spelled one character per token, so the skills are learnable by a small model;
2. model: a ~1.8M-parameter, two-layer Llama (`build_tiny_llama`) seeded by `config.student.seed`;
3. training: one TRL SFT run on generated tasks (`sandbox.task_difficulty`) whose answers are
   right or slipped at the recipe's per-skill `slip_rates`, in the references' terse style;
4. check: checker accuracy on held-out generated tasks (another seed), expected 5-40%: it slips
   on most of the about two thirds it can compute (it never learns nth_word).

A build is kept in the user's cache directory, keyed by a hash of its recipe
(`sandbox/student_cache.py`); a later build with the same recipe copies it in seconds.

The student's tasks use their own seed range (`STUDENT_TRAIN_SEED_OFFSET` and
`STUDENT_HELDOUT_SEED_OFFSET` + `config.student.seed`), apart from the sandbox prompt pool's.
"""

from __future__ import annotations

import collections
import logging
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from flywheel.config import Config
from flywheel.evaluators.skills import check_answer, render_answer
from flywheel.llm.checkpoints import (
    generate_answers,
    is_checkpoint,
    load_checkpoint,
    n_parameters,
    publish_checkpoint,
    save_checkpoint,
)
from flywheel.llm.stages.settings import StageTrainingConfig
from flywheel.llm.train_progress import TrainingProgress, reporting_training_progress
from flywheel.sandbox.skills import WORDS, SkillTask, generate_tasks, systematic_slip
from flywheel.sandbox.student_cache import (
    CachedStudent,
    copy_cached_student,
    find_cached_student,
    recipe_key,
    store_student,
)
from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer

STUDENT_TRAIN_SEED_OFFSET = 1_000_000
STUDENT_HELDOUT_SEED_OFFSET = 2_000_000
VERBOSITIES = ("terse", "normal", "verbose")


@dataclass(frozen=True)
class StudentRecipe:
    """How the student is built; the defaults land its held-out accuracy in the 5-40% band."""

    n_train_tasks: int = 12000  # generated tasks of the noisy training corpus
    n_heldout_tasks: int = 350  # held-out tasks measuring its accuracy
    n_tokenizer_tasks: int = 3000  # tasks whose prompts and answers train the tokenizer
    vocab_size: int = 1024
    min_whole_word_count: int = 3  # rarer words are spelled character by character
    hidden_size: int = 256  # wide and shallow: learns faster per CPU second than deep and narrow
    n_layers: int = 2
    n_heads: int = 8
    intermediate_size: int = 672
    learning_rate: float = 3e-3
    batch_size: int = 64  # a step costs little more at 64 than at 32 on CPU
    max_steps: int = 1200  # at 600 steps it computed 58% of held-out answers; at 1200 67%
    warmup_ratio: float = 0.05
    max_length: int = 192
    # answer styles (terse, normal, verbose) of the training answers: the terse style of the
    # demo's references, so training on their answers changes what the student says, not how
    verbosity_weights: tuple[float, float, float] = (1.0, 0.0, 0.0)
    # share of each skill's training answers that are the skill's systematic slip (the noisy
    # corpus): above one half the student mostly slips though it can compute the right answer,
    # and the closer to one half the less training on right answers it takes to recover
    slip_rates: tuple[tuple[str, float], ...] = (
        ("unit_conversion", 0.6),
        ("arithmetic", 0.65),
        ("reverse_word", 0.7),
        ("sort_letters", 0.75),
        ("count_char", 0.7),
        ("compare_numbers", 0.65),
        ("nth_word", 0.7),
    )


@dataclass(frozen=True)
class StudentReport:
    """The round-0 student: where it is, its size, its held-out accuracy and build time."""

    path: Path
    n_parameters: int
    heldout_accuracy: float
    wall_s: float
    built: bool  # False when an existing checkpoint was reused or copied from the cache
    from_cache: bool = False  # copied from the student cache (then heldout_accuracy is its build's)
    cache_path: Path | None = None  # the cache entry used or written (None: cache off or failed)


def student_tasks(config: Config, recipe: StudentRecipe) -> tuple[list[SkillTask], list[SkillTask]]:
    """The student's training slice and its held-out tasks (two seeds, no shared prompt)."""
    seed, difficulty = config.student.seed, config.sandbox.task_difficulty
    train = generate_tasks(
        recipe.n_train_tasks, seed=STUDENT_TRAIN_SEED_OFFSET + seed, difficulty=difficulty
    )
    train_prompts = {t.prompt for t in train}
    heldout = [
        t
        for t in generate_tasks(
            recipe.n_heldout_tasks, seed=STUDENT_HELDOUT_SEED_OFFSET + seed, difficulty=difficulty
        )
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


def student_recipe_fields(config: Config, recipe: StudentRecipe) -> dict[str, object]:
    """The build's settings that determine its weights (with the code and library versions,
    `recipe_key` hashes them into the student cache's key)."""
    import torch

    return {
        "recipe": asdict(recipe),
        "seed": config.student.seed,
        "task_difficulty": config.sandbox.task_difficulty,
        "training": _training_config(recipe).model_dump(mode="json"),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def student_cache_key(config: Config, recipe: StudentRecipe | None = None) -> str:
    return recipe_key(student_recipe_fields(config, recipe or StudentRecipe()))


def cached_student(config: Config, recipe: StudentRecipe | None = None) -> CachedStudent | None:
    """The cache's complete build of this config's student, if any (None when the cache is off)."""
    if not config.student.cache:
        return None
    return find_cached_student(student_cache_key(config, recipe), config.student.cache_dir)


def build_student(
    config: Config,
    force: bool = False,
    recipe: StudentRecipe | None = None,
    on_progress: TrainingProgress | None = None,
) -> StudentReport:
    """Build (or reuse) the round-0 student at `config.student.path` and measure it.

    An existing checkpoint is reused unless `force`; else a complete build of the same recipe
    in the student cache is copied in (unless `force`), else it is trained (`on_progress` gets
    its steps) and kept in the cache. A forced rebuild replaces the checkpoint only once the
    new one is complete. Deterministic under `config.student.seed`.
    """
    recipe = recipe or StudentRecipe()
    started = time.perf_counter()
    path = Path(config.student.path)
    reuse = is_checkpoint(path) and not force
    if path.exists() and not is_checkpoint(path) and not force:
        raise FileExistsError(
            f"student.path {path} exists but holds no checkpoint. Fix: remove it, point "
            "student.path elsewhere, or rebuild with force (`flywheel init --force`)."
        )
    if not reuse and not force:
        copied = _copy_from_cache(config, recipe, path, started)
        if copied is not None:
            return copied
    train, heldout = student_tasks(config, recipe)
    if not reuse:
        with reporting_training_progress(on_progress):
            _train_student(config, recipe, train, path, force)
    model, _ = load_checkpoint(path, device="cpu")
    report = StudentReport(
        path=path,
        n_parameters=n_parameters(model),
        heldout_accuracy=sandbox_accuracy(path, heldout, config),
        wall_s=time.perf_counter() - started,
        built=not reuse,
    )
    if reuse or not config.student.cache:
        return report
    return _store_in_cache(config, recipe, report)


def _copy_from_cache(
    config: Config, recipe: StudentRecipe, path: Path, started: float
) -> StudentReport | None:
    """The cached build copied to `path` and loaded, or None (no entry, or it does not load)."""
    entry = cached_student(config, recipe)
    if entry is None:
        return None
    copy_cached_student(entry, path)
    try:
        model, _ = load_checkpoint(path, device="cpu")
    except Exception as e:  # a corrupt entry that passed the checks: rebuild instead
        logging.getLogger(__name__).warning("cached student %s does not load (%s)", entry.path, e)
        shutil.rmtree(path, ignore_errors=True)
        return None
    return StudentReport(
        path=path,
        n_parameters=n_parameters(model),
        heldout_accuracy=entry.heldout_accuracy,
        wall_s=time.perf_counter() - started,
        built=False,
        from_cache=True,
        cache_path=entry.path,
    )


def _store_in_cache(config: Config, recipe: StudentRecipe, report: StudentReport) -> StudentReport:
    """Keep a fresh build in the cache; a cache that cannot be written only costs a warning."""
    fields = student_recipe_fields(config, recipe)
    try:
        entry = store_student(
            report.path,
            recipe_key(fields),
            fields,
            heldout_accuracy=report.heldout_accuracy,
            n_parameters=report.n_parameters,
            build_wall_s=report.wall_s,
            configured=config.student.cache_dir,
        )
    except OSError as e:
        logging.getLogger(__name__).warning("the student cache was not written: %s", e)
        return report
    return StudentReport(**{**report.__dict__, "cache_path": entry})


def _training_config(recipe: StudentRecipe) -> StageTrainingConfig:
    return StageTrainingConfig(
        learning_rate=recipe.learning_rate,
        max_steps=recipe.max_steps,
        batch_size=recipe.batch_size,
        max_length=recipe.max_length,
    )


def _train_student(
    config: Config, recipe: StudentRecipe, train: Sequence[SkillTask], path: Path, force: bool
) -> None:
    """Tokenizer, random tiny Llama, SFT on the noisy corpus; published to `path` when done."""
    from flywheel.llm.stages.sft import train_sft

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
    slip_rates = dict(recipe.slip_rates)
    rows = [
        _chat_row(
            t,
            systematic_slip(t) if rng.random() < slip_rates.get(t.skill, 0.0) else t.answer,
            recipe,
            rng,
        )
        for t in train
    ]
    cfg = _training_config(recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.build-{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory(prefix="flywheel-student-init-") as init_dir:
            init_path = save_checkpoint(model, tokenizer, Path(init_dir) / "init")
            train_sft(init_path, rows, staging, cfg, seed, warmup_ratio=recipe.warmup_ratio)
        publish_checkpoint(staging, path, overwrite=force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _chat_row(
    task: SkillTask, answer: str, recipe: StudentRecipe, rng: random.Random
) -> dict[str, list[dict[str, str]]]:
    """One SFT conversation: the task's prompt and `answer` rendered in a drawn style."""
    (style,) = rng.choices(VERBOSITIES, weights=recipe.verbosity_weights)
    return {
        "messages": [
            {"role": "user", "content": task.prompt},
            {"role": "assistant", "content": render_answer(answer, style, rng)},
        ]
    }
