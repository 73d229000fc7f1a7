"""Whether the warehouse file can be read whole: checked on the first open of a file in each
process (`check_whole`), and in full by `flywheel warehouse check` (`check_warehouse`).

DuckDB opens a damaged file without complaint and fails only when it reads a damaged block:
`count(*)` answers from metadata on a file cut in half, and a step fails later with a raw
`IOException`. So on open every block the database uses is read once and its checksum
compared, as DuckDB does when it reads a block: a block past the end of the file means the
file was cut short, a checksum that does not match a block zeroed or overwritten. The blocks in
use are the metadata blocks (`pragma_metadata_info`) and every table's data blocks with the
blocks their long strings overflow into (`pragma_storage_info`); free blocks are never read by
DuckDB and are skipped. The checksums are computed with numpy, a chunk of blocks at a time
(30-100 ms for the demo's 15 MB file on a loaded 2-core machine, about 1.3 s for 613 MB).
A file found whole gets a stamp, `<file>.checked` (inode, size, modification and change
times): while the file is unchanged the next command skips the read. Where the file's layout is
not the one this module knows (no block in use verifies, e.g. an encrypted database), the check
falls back to reading every table through.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from flywheel.errors import InputError

FILE_HEADER_BYTES = 3 * 4096  # DuckDB's main header and its two database headers
CHECKSUM_SEED = 5381  # DuckDB's Checksum(): seed XOR (each 8-byte word * multiplier)
CHECKSUM_MULTIPLIER = np.uint64(0xBF58476D1CE4E5B9)
CHUNK_BLOCKS = 64  # blocks read and checksummed at a time (16 MiB at DuckDB's 256 KiB)
_DAMAGE_PATTERN = re.compile(
    r"Could not read enough bytes|Corrupt database file|does not match stored checksum|"
    r"not a valid DuckDB database file",
    re.IGNORECASE,
)
_FILE_PATTERN = re.compile(r'from file "([^"]+)"')
_SHORT_READ_PATTERN = re.compile(r"Could not read enough bytes.*from location (\d+)")


class WarehouseDamagedError(InputError):
    """The warehouse file cannot be read whole (cut short, a block zeroed or overwritten)."""


def damaged(path: str | Path, what: str) -> WarehouseDamagedError:
    """The one-line error naming the file, the damage and what to do."""
    return WarehouseDamagedError(
        f"warehouse {path} is damaged: {what}. Fix: bring back a backup with `flywheel "
        "warehouse restore DIR` (the damaged file is kept aside), or point warehouse.path at "
        "another file."
    )


def is_damage_error(error: BaseException) -> bool:
    """Whether DuckDB's error says a database file could not be read (short read, checksum)."""
    return isinstance(error, duckdb.Error) and bool(_DAMAGE_PATTERN.search(str(error)))


def damaged_from(error: BaseException, path: str | Path) -> WarehouseDamagedError:
    """The one-line error for DuckDB's read error, naming the file the error names (else
    `path`)."""
    named = _FILE_PATTERN.search(str(error))
    file = named.group(1) if named else str(path)
    return damaged(file, describe_read_error(error, file))


def describe_read_error(error: BaseException, path: str | Path) -> str:
    """DuckDB's read error in a few words: where a cut-short file ends, else its first line
    (without the `IO Error: ` prefix)."""
    short_read = _SHORT_READ_PATTERN.search(str(error))
    if short_read and Path(path).is_file():
        return (
            f"the file ends at byte {Path(path).stat().st_size}, but a block it uses starts at "
            f"byte {short_read.group(1)}; it was cut short"
        )
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return line.removeprefix("IO Error: ").rstrip(".!")


@dataclass(frozen=True)
class BlockScan:
    """What reading the blocks in use found: blocks verified, cut off, failing their checksum."""

    n_blocks: int
    verified: int
    missing: list[int]
    corrupt: list[int]

    @property
    def layout_known(self) -> bool:
        """False when no block in use verified although blocks were read: not our layout."""
        return self.verified > 0 or not self.corrupt


def _table_names(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    rows = con.execute(
        "select schema_name, table_name from duckdb_tables() "
        "where database_name = current_database() and not temporary order by all"
    ).fetchall()
    return [(schema, table) for schema, table in rows]


def _quoted(schema: str, table: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))


def used_blocks(con: duckdb.DuckDBPyConnection) -> set[int]:
    """Ids of the blocks the open database uses: metadata blocks and every table's data
    (a segment's block and the blocks its long strings overflow into)."""
    rows = con.execute("select block_id from pragma_metadata_info()").fetchall()
    blocks = {block for (block,) in rows}
    for schema, table in _table_names(con):
        name = _quoted(schema, table).replace("'", "''")
        segments = con.execute(
            f"select block_id, additional_block_ids from pragma_storage_info('{name}') "
            "where persistent"
        ).fetchall()
        for block, overflow in segments:
            blocks.update(b for b in [block, *(overflow or [])] if b is not None and b >= 0)
    return blocks


def blocks_to_check(con: duckdb.DuckDBPyConnection, path: str | Path, n_bytes: int) -> set[int]:
    """The blocks in use; where DuckDB counts more in use than `used_blocks` finds (a kind of
    block this module does not know), every block the file holds as well."""
    blocks = used_blocks(con)
    n_used = con.execute("select used_blocks from pragma_database_size()").fetchone()[0]
    if len(blocks) < n_used:
        blocks.update(range(_blocks_in_file(path, n_bytes)))
    return blocks


def _blocks_in_file(path: str | Path, n_bytes: int) -> int:
    return max(0, (Path(path).stat().st_size - FILE_HEADER_BYTES) // n_bytes)


def block_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The database's block size (256 KiB unless it was created with another)."""
    return con.execute("select block_size from pragma_database_size()").fetchone()[0]


def _checksums(chunk: bytes, n_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(stored, computed) checksum of each whole block in `chunk`."""
    words = np.frombuffer(chunk, dtype="<u8").reshape(-1, n_bytes // 8)
    with np.errstate(over="ignore"):
        mixed = np.bitwise_xor.reduce(words[:, 1:] * CHECKSUM_MULTIPLIER, axis=1)
    return words[:, 0], mixed ^ np.uint64(CHECKSUM_SEED)


def scan_blocks(path: str | Path, blocks: Iterable[int], n_bytes: int) -> BlockScan:
    """Read the file once, a chunk at a time, and check the checksum of every block listed."""
    wanted = set(blocks)
    n_present = _blocks_in_file(path, n_bytes)
    missing = sorted(block for block in wanted if block >= n_present)
    corrupt: list[int] = []
    verified = 0
    with open(path, "rb") as file:
        for first in range(0, n_present, CHUNK_BLOCKS):
            ids = [b for b in range(first, min(first + CHUNK_BLOCKS, n_present)) if b in wanted]
            if not ids:
                continue
            file.seek(FILE_HEADER_BYTES + first * n_bytes)
            chunk = file.read((ids[-1] - first + 1) * n_bytes)
            stored, computed = _checksums(chunk, n_bytes)
            for block in ids:
                ok = stored[block - first] == computed[block - first]
                verified += int(ok)
                if not ok:
                    corrupt.append(block)
    return BlockScan(len(wanted), verified, missing, corrupt)


def _describe(scan: BlockScan, path: str | Path, n_bytes: int) -> str | None:
    if scan.missing:
        size = Path(path).stat().st_size
        return (
            f"the file ends at byte {size}, before {len(scan.missing)} of the {scan.n_blocks} "
            f"blocks it uses (first: block {scan.missing[0]} at byte "
            f"{FILE_HEADER_BYTES + scan.missing[0] * n_bytes}); it was cut short"
        )
    if scan.corrupt:
        return (
            f"{len(scan.corrupt)} of the {scan.n_blocks} blocks it uses fail their checksum "
            f"(first: block {scan.corrupt[0]} at byte "
            f"{FILE_HEADER_BYTES + scan.corrupt[0] * n_bytes}); zeroed or overwritten"
        )
    return None


def read_every_table(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Read every column of every table through (hashing each value); rows per table."""
    rows: dict[str, int] = {}
    for schema, table in _table_names(con):
        name = _quoted(schema, table)
        query = f"select count(*), bit_xor(hash(columns(*))) from {name}"
        rows[table if schema == "main" else f"{schema}.{table}"] = con.execute(query).fetchone()[0]
    return rows


def find_damage(con: duckdb.DuckDBPyConnection, path: str | Path) -> str | None:
    """What is damaged in the file `con` has open (None when every block in use reads)."""
    try:
        n_bytes = block_bytes(con)
        scan = scan_blocks(path, blocks_to_check(con, path, n_bytes), n_bytes)
        if scan.layout_known:
            return _describe(scan, path, n_bytes)
        read_every_table(con)
    except duckdb.Error as e:
        if not is_damage_error(e):
            raise
        return describe_read_error(e, path)
    return None


def checked_stamp(path: str | Path) -> Path:
    """`<warehouse>.checked`: the file's identity when it was last found whole."""
    return Path(f"{path}.checked")


def _identity(path: str | Path) -> str:
    """Inode, size, modification and change times: any write, truncation or replacement
    of the file changes it (the change time cannot be set back by a program)."""
    stat = Path(path).stat()
    return f"{stat.st_ino} {stat.st_size} {stat.st_mtime_ns} {stat.st_ctime_ns}"


def check_whole(con: duckdb.DuckDBPyConnection, path: str | Path) -> None:
    """Raise WarehouseDamagedError (one line, exit 2) when the file cannot be read whole.

    A file unchanged since it was last found whole (its `.checked` stamp matches) is not read
    again: a big warehouse costs one read after each run, not one per command."""
    stamp = checked_stamp(path)
    identity = _identity(path)
    with contextlib.suppress(OSError):
        if stamp.read_text(encoding="utf-8") == identity:
            return
    problem = find_damage(con, path)
    if problem is not None:
        raise damaged(path, problem)
    with contextlib.suppress(OSError):  # a read-only location: checked again next time
        stamp.write_text(identity, encoding="utf-8")


@dataclass(frozen=True)
class CheckReport:
    """`flywheel warehouse check`: what was read and how long it took."""

    location: str
    rows: dict[str, int]
    blocks: int
    seconds: float

    def summary(self) -> str:
        blocks = f"{self.blocks} blocks' checksums verified, " if self.blocks else ""
        return (
            f"warehouse {self.location} reads whole: {blocks}{len(self.rows)} tables, "
            f"{sum(self.rows.values())} rows read through in {self.seconds:.2f} s"
        )


def check_warehouse(con: duckdb.DuckDBPyConnection, location: str, path: str | None) -> CheckReport:
    """Check the file's every block in use (when `path` names a DuckDB file), then read every
    table through; raise WarehouseDamagedError naming the first damage found. On a DuckLake
    (`path` None) any error reading a table is damage (a data file cut short or missing)."""
    started = time.monotonic()
    n_blocks = 0
    try:
        if path is not None:
            n_bytes = block_bytes(con)
            scan = scan_blocks(path, blocks_to_check(con, path, n_bytes), n_bytes)
            problem = _describe(scan, path, n_bytes) if scan.layout_known else None
            if problem is not None:
                raise damaged(path, problem)
            n_blocks = scan.verified
        rows = read_every_table(con)
    except duckdb.Error as e:
        if path is None:
            raise WarehouseDamagedError(
                f"warehouse {location} is damaged: {describe_read_error(e, location)}. Fix: "
                "bring that file back from the storage's versions or backups (a DuckLake is "
                "backed up with its catalog's and storage's own tools)."
            ) from e
        if not is_damage_error(e):
            raise
        raise damaged_from(e, path) from e
    return CheckReport(location, rows, n_blocks, time.monotonic() - started)
