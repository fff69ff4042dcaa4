"""The compare-and-set rule of versioned records, shared by every KeyValueStore.

A store reads the key's current state inside its transaction, asks
:func:`decide`, and writes the record it returns (or nothing). The rule:

* the current version of a missing key is 0; a deleted key keeps its version
  (a tombstone), and ``base_version`` 0 or that version both mean "I believe
  it does not exist";
* any other ``base_version`` that is not the current version is stale: the
  outcome carries the current state, so the client can merge and retry;
* deleting what does not exist is refused;
* an applied change gets the next version: versions only grow, so a key
  deleted and recreated never reuses one.
"""

from __future__ import annotations

from .base import KvChange, KvOutcome, KvRecord

__all__ = ["decide"]


def decide(current: KvRecord | None, change: KvChange, now: float) -> KvOutcome:
    """What ``change`` does to ``current`` (at ``now``, seconds since the epoch).

    ``applied`` outcomes carry the record to write as ``current``.
    """
    version = 0 if current is None else current.version
    absent = current is None or current.deleted
    acceptable = {version} | ({0} if absent else set())
    if change.base_version not in acceptable:
        return KvOutcome(
            applied=False,
            current=current,
            reason=(
                f"base_version {change.base_version} is stale: "
                f"the current version is {version}"
                + (" (deleted)" if current is not None and current.deleted else "")
            ),
        )
    if change.delete and absent:
        return KvOutcome(applied=False, current=current, reason="key does not exist")
    return KvOutcome(
        applied=True,
        current=KvRecord(
            key=change.key,
            value=b"" if change.delete else change.value,
            version=version + 1,
            deleted=change.delete,
            updated_at=now,
        ),
    )
