"""Seals: signed records that a LocalStore object file was verified, so it is not hashed again.

A large LocalStore hit is a memory map: without a check it costs microseconds, and hashing its
whole value to verify the signature would be nearly all of it (tens of ms for 100 MB). So the
first process that verifies a mapped file in full records a *seal*: a MAC, under the store's
key, of the entry (key, tag, digest) and the identity of the file it verified: device, inode,
size, mtime_ns, ctime_ns, and the machine's boot id. A later hit, in this or any process, whose
file shows the same identity and whose seal checks, skips the hash.

Why that is sound (see the threat model in docs/stores.md):

* Only files **owned by this user and writable by no one else** are sealed, or mapped at all
  (another's file is read into private memory and verified in full, every time: its owner could
  change a mapped page after the check). So only this user (who holds the key anyway) or root
  can change a sealed file's bytes, and reckon never rewrites a file: it replaces or unlinks.
* Whoever can write the directory can replace a file (a new inode: the identity differs) or
  move another of ours over it (its header names another digest: refused before the seal is
  read), and can write the index, but cannot make a seal: it is a MAC under the key, binding the
  entry's key, tag and digest, so it cannot be moved to another entry either.
* Any change to a file's bytes sets its ctime to the current time, and no unprivileged user can
  set a ctime. A file is sealed only when its ctime is at least ``SETTLE`` seconds old, so a
  later change cannot land on the same clock tick as the sealed ctime (timestamps are coarse).
* A seal names the boot it was made in: after a crash of the machine, a file whose data never
  reached the disk (``fsync=False``) is hashed again before it is trusted.
"""

from __future__ import annotations

import os
import struct
import time
from typing import Final

SETTLE: Final = 2.0  # seconds a file's ctime must lie in the past before it is sealed
_RECORD = struct.Struct("<QQQqq16sHH")  # dev, ino, size, mtime_ns, ctime_ns, boot, lengths
_boot: list[bytes | None] = []

Identity = tuple[int, int, int, int, int]


def boot_id() -> bytes | None:
    """This boot's id (Linux), or None where there is none: then nothing is sealed."""
    if not _boot:
        try:
            with open("/proc/sys/kernel/random/boot_id", "rb") as f:
                text = f.read().strip().replace(b"-", b"")
            _boot.append(bytes.fromhex(text.decode("ascii")) if len(text) == 32 else None)
        except (OSError, ValueError):
            _boot.append(None)
    return _boot[0]


def private(st: os.stat_result) -> bool:
    """Whether only this user (or root) can change the file's bytes: owned by us, no write
    permission for group or others (an ACL granting more shows in the group bits, its mask)."""
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def settled(st: os.stat_result) -> bool:
    """Whether the file last changed long enough ago to be sealed."""
    return st.st_ctime_ns < (time.time() - SETTLE) * 1e9


def record(key: str, tag: bytes, digest: str, ident: Identity, boot: bytes) -> bytes:
    """What a seal signs: the entry, and the file it was verified in."""
    db = digest.encode("ascii")
    return _RECORD.pack(*ident, boot, len(tag), len(db)) + bytes(tag) + db + key.encode("utf-8")
