"""What one ingest did: counts of every record, the first problems with their lines."""

from __future__ import annotations

from dataclasses import dataclass, field

from flywheel.pool.records import RECORD_EXAMPLE, PromptFileError, RecordProblem, Split

MAX_PROBLEMS_KEPT = 1000  # the report keeps the first ones; the counts are always exact


class NoValidRecordError(PromptFileError):
    """A prompt file read to the end without one valid record (empty, or every line bad);
    nothing was stored. `report` holds the counts and the problems."""

    def __init__(self, message: str, report: IngestReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class IngestReport:
    """What one ingest did. Every record read lands in exactly one count:
    n_records = n_added + n_exact_duplicates + n_near_duplicates + n_contaminated
    + n_malformed + n_already_ingested."""

    source: str
    n_records: int = 0
    n_added: int = 0
    n_exact_duplicates: int = 0
    n_near_duplicates: int = 0
    n_contaminated: int = 0
    n_malformed: int = 0
    problems: list[RecordProblem] = field(default_factory=list)  # the first MAX_PROBLEMS_KEPT
    split: Split = "pool"
    path: str | None = None
    n_already_ingested: int = 0  # records of this file (same sha256 and line) stored before
    n_pool_decontaminated: int = 0  # stored pool prompts marked contaminated by new eval prompts
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def add_note(self, note: str) -> None:
        if len(self.notes) < MAX_PROBLEMS_KEPT:
            self.notes.append(note)

    def add_problem(self, line_no: int, reason: str) -> None:
        self.n_malformed += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(RecordProblem(line_no, reason))

    def summary(self, max_problems: int = 10) -> str:
        """A paragraph for people: how many of each, then the first problems with line numbers."""
        where = self.path or "records"
        target = "the held-out eval set" if self.split == "eval" else "the pool"
        lines = [
            f"{where} -> {target} (source {self.source!r}): {self.n_records:,} records read; "
            f"{self.n_added:,} added, {self.n_exact_duplicates:,} exact duplicates, "
            f"{self.n_near_duplicates:,} near-duplicates, {self.n_contaminated:,} contaminated "
            f"(overlap an eval prompt), {self.n_malformed:,} malformed (skipped), "
            f"{self.n_already_ingested:,} already ingested; {self.wall_s:.1f} s."
        ]
        if self.n_records == 0:
            lines.append(
                "The input is empty: no records. Each line should be a JSON object such as "
                '{"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}.'
            )
        elif (
            self.n_already_ingested and self.n_already_ingested + self.n_malformed == self.n_records
        ):
            lines.append("Nothing new: every valid record was added before.")
        if self.n_pool_decontaminated:
            lines.append(
                f"{self.n_pool_decontaminated:,} pool prompts overlap the eval set and were "
                "marked contaminated."
            )
        lines.extend(self.notes)
        if self.problems:
            shown = self.problems[:max_problems]
            lines.append(f"Skipped records (first {len(shown)} of {self.n_malformed:,}):")
            lines.extend(f"  line {p.line_no}: {p.reason}" for p in shown)
            lines.append(
                "Fix them and add the input again: the valid records are kept and none is "
                "added twice."
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------- public API


def require_a_valid_record(report: IngestReport) -> None:
    """Raise NoValidRecordError for a file that was empty or whose every record was bad."""
    if report.n_malformed < report.n_records:
        return
    if report.n_records == 0:
        raise NoValidRecordError(
            f"prompt file {report.path!r} is empty: no records, nothing added. Fix: write one "
            f"record per line, each {RECORD_EXAMPLE}.",
            report,
        )
    first = report.problems[0]
    raise NoValidRecordError(
        f"prompt file {report.path!r} has no valid record: all {report.n_records:,} are "
        f"malformed, nothing added; the first is line {first.line_no}: {first.reason}.\n"
        f"Fix: make each line {RECORD_EXAMPLE}, then add the file again.",
        report,
    )
