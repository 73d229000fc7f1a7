"""The round-0 student's recipe: its settings, its generated corpus, and the hash of both.

The recipe hash names what determines the student's weights by content, not by where code
lives: the build settings and seeds, the task difficulty, the SHA-256 of the generated corpus
itself (the tokenizer texts, the training conversations with their slips, the held-out
prompts) and `RECIPE_VERSION`. Moving or reformatting code changes none of them; a change to
the tasks, their wording or the slips changes the corpus and so the hash. A change to the
training code that changes the weights without changing the corpus or the settings (a new
TRL default, say) must bump `RECIPE_VERSION`; `tests/sandbox/test_shipped_student.py` fails
when the default recipe no longer matches the shipped student, naming the command to run.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from flywheel.config import Config
from flywheel.evaluators.skills import render_answer
from flywheel.llm.stages.settings import StageTrainingConfig
from flywheel.sandbox.skills import WORDS, SkillTask, generate_tasks, systematic_slip

RECIPE_VERSION = 1  # bump when the training code changes the weights of the same corpus

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


def student_tasks(config: Config, recipe: StudentRecipe) -> tuple[list[SkillTask], list[SkillTask]]:
    """The student's training slice and its held-out tasks (two seeds, no shared prompt)."""
    return _tasks(recipe, config.student.seed, config.sandbox.task_difficulty)


def _tasks(
    recipe: StudentRecipe, seed: int, difficulty: int | None
) -> tuple[list[SkillTask], list[SkillTask]]:
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


def training_rows(
    train: Sequence[SkillTask], recipe: StudentRecipe, seed: int
) -> list[dict[str, list[dict[str, str]]]]:
    """The noisy SFT corpus: each task's right answer, or its slip at the skill's rate."""
    rng = random.Random(seed)
    slip_rates = dict(recipe.slip_rates)
    return [
        _chat_row(
            t,
            systematic_slip(t) if rng.random() < slip_rates.get(t.skill, 0.0) else t.answer,
            recipe,
            rng,
        )
        for t in train
    ]


def training_config(recipe: StudentRecipe) -> StageTrainingConfig:
    return StageTrainingConfig(
        learning_rate=recipe.learning_rate,
        max_steps=recipe.max_steps,
        batch_size=recipe.batch_size,
        max_length=recipe.max_length,
    )


def student_recipe_fields(config: Config, recipe: StudentRecipe) -> dict[str, object]:
    """What determines the student's weights (hashed by `student_cache.recipe_hash`)."""
    seed, difficulty = config.student.seed, config.sandbox.task_difficulty
    return {
        "recipe": asdict(recipe),
        "recipe_version": RECIPE_VERSION,
        "seed": seed,
        "task_difficulty": difficulty,
        "training": training_config(recipe).model_dump(mode="json"),
        "corpus_sha256": corpus_sha256(recipe, seed, difficulty),
    }


@functools.lru_cache(maxsize=8)
def corpus_sha256(recipe: StudentRecipe, seed: int, difficulty: int | None) -> str:
    """SHA-256 of the generated corpus (a few seconds; computed once per process and recipe)."""
    train, heldout = _tasks(recipe, seed, difficulty)
    corpus = {
        "tokenizer": tokenizer_corpus(train[: recipe.n_tokenizer_tasks], seed),
        "training": training_rows(train, recipe, seed),
        "heldout": [t.prompt for t in heldout],
    }
    return hashlib.sha256(json.dumps(corpus, sort_keys=True).encode()).hexdigest()


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
