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

Nobody has to wait for it: the demo's student ships with flywheel (`shipped_student.py`) and
is copied in seconds wherever the recipe (`student_recipe.py`, hashed by content) is the
default one. Any other recipe is built once and kept in the user's cache directory
(`student_cache.py`); a later build with the same recipe copies it in seconds.

The student's tasks use their own seed range (`STUDENT_TRAIN_SEED_OFFSET` and
`STUDENT_HELDOUT_SEED_OFFSET` + `config.student.seed`), apart from the sandbox prompt pool's.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from flywheel.config import Config
from flywheel.evaluators.skills import check_answer
from flywheel.llm.checkpoints import (
    generate_answers,
    is_checkpoint,
    load_checkpoint,
    n_parameters,
    publish_checkpoint,
    save_checkpoint,
)
from flywheel.llm.train_progress import TrainingProgress, reporting_training_progress
from flywheel.sandbox.shipped_student import difference_from_shipped, shipped_student
from flywheel.sandbox.skills import SkillTask
from flywheel.sandbox.student_cache import (
    CachedStudent,
    copy_cached_student,
    find_cached_student,
    recipe_hash,
    recipe_key,
    store_student,
)
from flywheel.sandbox.student_recipe import (
    StudentRecipe,
    prose_words,
    student_recipe_fields,
    student_tasks,
    tokenizer_corpus,
    training_config,
    training_rows,
)
from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer


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
    shipped: bool = False  # the copied entry is the student shipped with flywheel
    # a fresh build that differs from the shipped student of the same recipe: how (else None)
    differs_from_shipped: str | None = None


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


def student_cache_key(config: Config, recipe: StudentRecipe | None = None) -> str:
    return recipe_key(student_recipe_fields(config, recipe or StudentRecipe()))


def cached_student(config: Config, recipe: StudentRecipe | None = None) -> CachedStudent | None:
    """A complete earlier build of this config's student: the shipped one where the recipe is
    the same, else the cache's (None when neither exists or the cache is off)."""
    fields = student_recipe_fields(config, recipe or StudentRecipe())
    shipped = shipped_student(recipe_hash(fields))
    if shipped is not None or not config.student.cache:
        return shipped
    return find_cached_student(recipe_key(fields), config.student.cache_dir)


def build_student(
    config: Config,
    force: bool = False,
    recipe: StudentRecipe | None = None,
    on_progress: TrainingProgress | None = None,
) -> StudentReport:
    """Build (or reuse) the round-0 student at `config.student.path` and measure it.

    An existing checkpoint is reused unless `force`; else the shipped student or a complete
    build of the same recipe in the student cache is copied in (unless `force`), else it is
    trained (`on_progress` gets its steps) and kept in the cache; a build of the shipped
    recipe says how it differs from the shipped student, if it does. A forced rebuild replaces
    the checkpoint only once the new one is complete. Deterministic under `config.student.seed`.
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
    if reuse:
        return report
    shipped_hash = recipe_hash(student_recipe_fields(config, recipe))
    difference = difference_from_shipped(shipped_hash, path, report.heldout_accuracy)
    report = replace(report, differs_from_shipped=difference)
    return _store_in_cache(config, recipe, report) if config.student.cache else report


def _copy_from_cache(
    config: Config, recipe: StudentRecipe, path: Path, started: float
) -> StudentReport | None:
    """The shipped or cached build copied to `path` and loaded, or None (no entry, or it does
    not load)."""
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
        shipped=entry.shipped,
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
    return replace(report, cache_path=entry)


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
    rows = training_rows(train, recipe, seed)
    cfg = training_config(recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.build-{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory(prefix="flywheel-student-init-") as init_dir:
            init_path = save_checkpoint(model, tokenizer, Path(init_dir) / "init")
            train_sft(init_path, rows, staging, cfg, seed, warmup_ratio=recipe.warmup_ratio)
        publish_checkpoint(staging, path, overwrite=force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
