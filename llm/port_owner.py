"""Who holds the socket listening on a local TCP port: our server's process group or another.

A server started on a port chosen free can find it taken by another process before it binds;
the health check is then answered by someone else's server. Linux's /proc names the listening
socket (`/proc/net/tcp*`, by inode) and which processes hold it (`/proc/<pid>/fd`), so the
caller can tell its own server from a stranger. A socket held only by processes that cannot
be read (another user's), or by a process outside the group that started after our server (a
container's port forwarder), is "unknown", not "other".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp
PROC = Path("/proc")

Owner = Literal["ours", "other", "unknown"]


def listening_inodes(port: int) -> set[int]:
    """Inodes of the sockets listening on `port` (any local address, IPv4 or IPv6)."""
    inodes: set[int] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            rows = (PROC / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == LISTEN_STATE and local_port == port:
                inodes.add(int(fields[9]))
    return inodes


def process_stat(pid: int) -> tuple[int, int] | None:
    """(process group, start time in clock ticks after boot) of `pid`, or None."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[2]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets `pid` holds open (empty when it cannot be read)."""
    inodes: set[int] = set()
    try:
        fds = list((PROC / str(pid) / "fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def port_owner(port: int, group: int) -> Owner:
    """ "ours" when a process of process group `group` holds the socket listening on `port`,
    "other" when only processes outside it do (or nothing listens), "unknown" when this
    system has no /proc or the holder cannot be read."""
    if not (PROC / "net" / "tcp").exists():
        return "unknown"
    listening = listening_inodes(port)
    if not listening:
        return "other"
    holders = [
        pid
        for pid in (int(p.name) for p in PROC.iterdir() if p.name.isdigit())
        if socket_inodes(pid) & listening
    ]
    stats = [stat for stat in map(process_stat, holders) if stat is not None]
    leader = process_stat(group)
    if any(holder_group == group for holder_group, _ in stats):
        return "ours"
    if leader is not None and any(started < leader[1] for _, started in stats):
        return "other"
    return "unknown"
