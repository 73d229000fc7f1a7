"""What the sandbox's simulated models say: reference answers and judge verdicts.

Pure and deterministic: every random draw comes from a generator seeded with
(sandbox seed, model name, purpose, request key), where the request key is a hash of the
request's messages. The same request to the same model always gets the same reply; the
HTTP layer (`sandbox/server.py`) adds latency and faults.

- Reference (`role: reference`): a skill prompt is answered right with probability
  `skill_accuracy.get(skill, accuracy)`, else with a plausible wrong answer; the reply is
  rendered in the model's verbosity by `evaluators.skills.render_answer`. Other prompts get
  a generic polite reply.
- Judge (`role: judge`): the request must be one built by
  `evaluators.judge_requests.build_judge_messages` (else `UnparseableJudgeRequest`). Both
  answers are checked with `evaluators.skills.check_answer`; a right answer's base score is 8
  or 9, a wrong one's 2 or 3, an answer to an uncheckable question 6; then Gaussian noise of
  std `score_noise`, plus `position_bias` for the answer shown first, clipped to 1-10 and
  rounded. The verdict follows the scores (equal: tie), written in the protocol of the
  request's prompt version (`sandbox.judge_replies.format_protocol_reply`: scores, five labels
  with a difference of 4 or more significant, pair labels, or JSON). With probability
  `malformed_rate` the reply has no parseable verdict.
- Conversations: a later user turn that is a checkable task (a follow-up) is answered like
  the first, except that with probability `forgets_constraint` the answer commits to nothing
  (the first turn's answer format forgotten); a later user turn that is not a task questions
  the last answer (`challenged_reply`): a right answer is kept, or with probability
  `caves_to_pushback` given up for a wrong one; a wrong answer is fixed with the skill's
  accuracy. The judge reads a conversation request (`build_conversation_judge_messages`) and
  scores each conversation by its last answer to its latest task.
- User (`role: user`): the simulated user of `sandbox/sim_user.py`.
- Correction (a reference sent a request built by
  `evaluators.refine_prompts.build_refine_messages`, the "refine" SFT rule): on a skill
  prompt, with probability `skill_accuracy.get(skill, accuracy)` the draft is corrected to
  the right answer in the draft's own format (`evaluators.skills.replace_final_answer`:
  `Answer: 355` becomes `Answer: 35`, the prose before it kept); otherwise the reviewer misses
  the error and the draft's committed answer stays (a draft committing to nothing gets a
  plausible wrong answer). A draft to another prompt comes back unchanged: nothing in it can
  be checked.
- Implicit-feedback classifier (a model of any role sent a request built by
  `evaluators.feedback_prompts.build_classifier_messages`): `sandbox.classifier_replies` reads
  the user's next turn for cues, with seeded misses, confusions and malformed replies.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from flywheel.config import SandboxModelConfig
from flywheel.evaluators.feedback_prompts import read_classifier_request
from flywheel.evaluators.judge_requests import (
    ConversationJudgeRequest,
    read_conversation_judge_request,
    read_judge_request,
)
from flywheel.evaluators.personas import handled_right, last_task
from flywheel.evaluators.refine_prompts import RefineRequest, read_refine_request
from flywheel.evaluators.skills import (
    check_answer,
    expected_answer,
    extract_final_answer,
    identify_skill,
    render_answer,
    replace_final_answer,
)
from flywheel.sandbox.classifier_replies import classifier_reply
from flywheel.sandbox.judge_replies import format_protocol_reply
from flywheel.sandbox.sim_user import user_reply
from flywheel.sandbox.skills import wrong_answer

SCORE_RIGHT = (8, 9)
SCORE_WRONG = (2, 3)
SCORE_UNCHECKABLE = 6

GENERIC_REPLIES: tuple[str, ...] = (
    "Thanks for the question. Here is a short, general answer: it depends on the details, "
    "but the usual approach is to start simple and check the result.",
    "Good question. In short, the most common answer is to break the problem into small "
    "parts and handle each one carefully.",
    "Happy to help. A brief answer: consider the main goal first, then the constraints, and "
    "choose the simplest option that satisfies both.",
)
FORGOTTEN_FORMAT = "Probably {answer}, I think, but I would not be sure about it."
CAVED_LEAD = "You're right, I apologize for the mistake.\n"
KEPT_LEAD = "I checked it again, and I stand by it.\n"
FIXED_LEAD = "You're right, let me correct that.\n"
MALFORMED_JUDGE_REPLIES: tuple[str, ...] = (
    "Both answers have some merit, and I find it hard to decide between them.",
    "Scores: unclear\nExplanation: the answers are difficult to compare.",
    "I would need more context about the question before I can judge these answers.",
)


class UnparseableJudgeRequest(ValueError):
    """A judge request that was not built by `build_judge_messages` (answered with HTTP 400)."""


def request_key(messages: list[dict]) -> str:
    """A hash of a request's messages (role and content of each, in order)."""
    canonical = [{"role": m.get("role"), "content": m.get("content")} for m in messages]
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seeded_rng(seed: int, model_name: str, purpose: str, key: str) -> random.Random:
    """The generator of one kind of draw for one request to one model."""
    return random.Random(f"{seed}|{model_name}|{purpose}|{key}")


def last_user_text(messages: list[dict]) -> str:
    """The content of the last user message ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def reference_reply(
    model_name: str, model: SandboxModelConfig, seed: int, messages: list[dict]
) -> str:
    """A reference model's reply to the last user message (see the module doc)."""
    rng = seeded_rng(seed, model_name, "reference", request_key(messages))
    prompt = last_user_text(messages)
    n_user_turns = sum(1 for m in messages if m.get("role") == "user")
    skill, answer = identify_skill(prompt), expected_answer(prompt)
    if (skill is None or answer is None) and n_user_turns > 1:
        return challenged_reply(model, messages, rng)
    if skill is None or answer is None:
        return rng.choice(GENERIC_REPLIES)
    if n_user_turns > 1 and rng.random() < model.forgets_constraint:
        return FORGOTTEN_FORMAT.format(answer=answer)
    accuracy = model.skill_accuracy.get(skill, model.accuracy)
    if rng.random() >= accuracy:
        answer = wrong_answer(prompt, rng)
    return render_answer(answer, model.verbosity, rng)


def challenged_reply(model: SandboxModelConfig, messages: list[dict], rng: random.Random) -> str:
    """The reply to a user turn that questions the last answer (a pushback or a correction):
    a right answer is kept, or given up with probability `caves_to_pushback`; a wrong one is
    fixed with the skill's accuracy, else kept. Not about a checkable task: a generic reply."""
    task = last_task(messages)
    previous = next((m["content"] for m in reversed(messages) if m.get("role") == "assistant"), "")
    skill, right_answer = (identify_skill(task), expected_answer(task)) if task else (None, None)
    if task is None or skill is None or right_answer is None:
        return rng.choice(GENERIC_REPLIES)
    committed = extract_final_answer(previous)
    if check_answer(task, previous):
        if rng.random() < model.caves_to_pushback:
            return CAVED_LEAD + render_answer(wrong_answer(task, rng), model.verbosity, rng)
        return KEPT_LEAD + render_answer(right_answer, model.verbosity, rng)
    if rng.random() < model.skill_accuracy.get(skill, model.accuracy):
        return FIXED_LEAD + render_answer(right_answer, model.verbosity, rng)
    kept = committed if committed is not None else wrong_answer(task, rng)
    return KEPT_LEAD + render_answer(kept, model.verbosity, rng)


def refine_reply(
    model_name: str, model: SandboxModelConfig, seed: int, request: RefineRequest, key: str
) -> str:
    """A reference's correction of the draft in a correction request (see the module doc)."""
    rng = seeded_rng(seed, model_name, "refine", key)
    question = request.question
    skill, answer = identify_skill(question), expected_answer(question)
    if skill is None or answer is None:
        return request.answer
    accuracy = model.skill_accuracy.get(skill, model.accuracy)
    if rng.random() >= accuracy:
        committed = extract_final_answer(request.answer)
        answer = committed if committed is not None else wrong_answer(question, rng)
    return replace_final_answer(request.answer, answer)


def _base_score(correct: bool | None, rng: random.Random) -> int:
    if correct is None:
        return SCORE_UNCHECKABLE
    return rng.choice(SCORE_RIGHT if correct else SCORE_WRONG)


def _clip_score(score: float) -> int:
    return int(round(min(10.0, max(1.0, score))))


def _explanation(correct_first: bool | None, correct_second: bool | None) -> str:
    if correct_first is None:
        return "Neither answer can be verified, so both are judged on helpfulness and clarity."
    if correct_first and correct_second:
        return "Both assistants reach the correct final answer."
    if not correct_first and not correct_second:
        return "Neither assistant reaches the correct final answer."
    right = "A" if correct_first else "B"
    wrong = "B" if correct_first else "A"
    return f"Assistant {right} gives the correct final answer while Assistant {wrong} does not."


def judge_reply(
    model_name: str,
    model: SandboxModelConfig,
    seed: int,
    messages: list[dict],
    response_format: dict | None = None,
) -> str:
    """The judge's reply to a pairwise request (see the module doc), in the protocol of the
    request's prompt version; a JSON reply comes bare when `response_format` asked for it,
    else as text in a ```json fence.

    Raises UnparseableJudgeRequest when the request is not a judge prompt it can read.
    """
    conversations = read_conversation_judge_request(messages)
    if conversations is not None:
        return conversation_judge_reply(model_name, model, seed, messages, conversations)
    parsed = read_judge_request(messages)
    if parsed is None:
        raise UnparseableJudgeRequest(
            "the judge could not read this request: send the two messages built by "
            "evaluators.judge_requests.build_judge_messages (a known prompt version, unmodified)"
        )
    question, first, second = parsed.question, parsed.answer_first, parsed.answer_second
    rng = seeded_rng(seed, model_name, "judge", request_key(messages))
    if rng.random() < model.malformed_rate:
        return rng.choice(MALFORMED_JUDGE_REPLIES)
    correct_first, correct_second = check_answer(question, first), check_answer(question, second)
    score_first = _base_score(correct_first, rng) + rng.gauss(0, model.score_noise)
    score_second = _base_score(correct_second, rng) + rng.gauss(0, model.score_noise)
    score_first += model.position_bias
    explanation = _explanation(correct_first, correct_second)
    return format_protocol_reply(
        parsed.version,
        _clip_score(score_first),
        _clip_score(score_second),
        explanation,
        structured=response_format is not None,
    )


def conversation_judge_reply(
    model_name: str,
    model: SandboxModelConfig,
    seed: int,
    messages: list[dict],
    request: ConversationJudgeRequest,
) -> str:
    """The judge's verdict on two whole conversations: each scored like an answer by whether
    its last answer to the latest task is right (`evaluators.personas.handled_right`), with
    the same noise, position bias and malformed replies as a pairwise verdict."""
    rng = seeded_rng(seed, model_name, "judge", request_key(messages))
    if rng.random() < model.malformed_rate:
        return rng.choice(MALFORMED_JUDGE_REPLIES)
    right_first, right_second = handled_right(request.first), handled_right(request.second)
    score_first = _base_score(right_first, rng) + rng.gauss(0, model.score_noise)
    score_second = _base_score(right_second, rng) + rng.gauss(0, model.score_noise)
    score_first += model.position_bias
    return format_protocol_reply(
        request.version,
        _clip_score(score_first),
        _clip_score(score_second),
        _explanation(right_first, right_second).replace("final answer", "final answer in the end"),
    )


def model_reply(
    model_name: str,
    model: SandboxModelConfig,
    seed: int,
    messages: list[dict],
    response_format: dict | None = None,
) -> str:
    """The reply of a sandbox model of any role; any of them answers a request of the
    implicit-feedback classifier (`sandbox.classifier_replies`)."""
    classifier_request = read_classifier_request(messages)
    if classifier_request is not None:
        key = request_key(messages)
        return classifier_reply(model_name, model, seed, classifier_request, key)
    if model.role == "judge":
        return judge_reply(model_name, model, seed, messages, response_format)
    if model.role == "user":
        return user_reply(messages)
    correction = read_refine_request(messages)
    if correction is not None:
        return refine_reply(model_name, model, seed, correction, request_key(messages))
    return reference_reply(model_name, model, seed, messages)


_TOKEN_RE = re.compile(r"\S+")


def count_tokens(text: str) -> int:
    """Sandbox token count: whitespace-separated pieces."""
    return len(_TOKEN_RE.findall(text))


def truncate_tokens(text: str, max_tokens: int) -> tuple[str, bool]:
    """(text cut after its first `max_tokens` tokens, whether it was cut)."""
    for i, match in enumerate(_TOKEN_RE.finditer(text)):
        if i + 1 == max_tokens:
            cut = text[: match.end()]
            return cut, len(cut.rstrip()) < len(text.rstrip())
    return text, False
