"""What one `logs add` did: files read, conversations and feedback stored, records skipped
(each with its file and line), redactions by kind, and the prompts that joined the pool."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from flywheel.pool.logs_privacy import KINDS

MAX_PROBLEMS_KEPT = 1000  # the report keeps the first ones; the counts are always exact


@dataclass(frozen=True)
class LogProblem:
    path: str
    line_no: int
    reason: str


@dataclass
class LogsReport:
    """Counts over every file of one ingest. n_records = records read (an arena record holds
    two conversations; a feedback record none)."""

    source: str
    n_files: int = 0
    n_files_unchanged: int = 0  # files whose complete content was read before
    n_records: int = 0
    n_conversations: int = 0  # new conversations stored
    n_conversations_known: int = 0  # read again: stored before (same log id)
    n_feedback: int = 0  # new explicit feedback rows
    n_malformed: int = 0
    n_partial_lines: int = 0  # files whose last line had no newline yet (left for later)
    redactions: Counter = field(default_factory=Counter)
    problems: list[LogProblem] = field(default_factory=list)
    prompt_summary: str | None = None  # the pool ingest's own summary of the logged prompts
    wall_s: float = 0.0

    def add_problem(self, path: str, line_no: int, reason: str) -> None:
        self.n_malformed += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(LogProblem(path, line_no, reason))

    def summary(self, max_problems: int = 10) -> str:
        redacted = ", ".join(f"{self.redactions.get(k, 0):,} {k}" for k in KINDS)
        lines = [
            f"logs ({self.source!r}): {self.n_files:,} files ({self.n_files_unchanged:,} with "
            f"nothing new), {self.n_records:,} records read; {self.n_conversations:,} "
            f"conversations and {self.n_feedback:,} feedback added, "
            f"{self.n_conversations_known:,} conversations already stored, "
            f"{self.n_malformed:,} records skipped; redacted: {redacted}; {self.wall_s:.1f} s."
        ]
        if self.n_partial_lines:
            lines.append(
                f"{self.n_partial_lines:,} files end in a line still being written: it is read "
                "when complete (add the file again later)."
            )
        if self.prompt_summary:
            lines.append(self.prompt_summary)
        if self.problems:
            shown = self.problems[:max_problems]
            lines.append(f"Skipped records (first {len(shown)} of {self.n_malformed:,}):")
            lines.extend(f"  {p.path} line {p.line_no}: {p.reason}" for p in shown)
        return "\n".join(lines)
