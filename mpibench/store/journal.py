"""Append-only journal of finished tasks: one JSON object a line, fsynced before a task counts as done."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

JOURNAL_FILE = "journal.jsonl"


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._handle = self.path.open("a+b")
        self._drop_torn_tail()

    def _drop_torn_tail(self) -> None:
        """Cut a torn last line (a crash mid-write, already ignored by readers), so appends start a line."""
        size = self._handle.seek(0, os.SEEK_END)
        if size:
            self._handle.seek(max(0, size - (1 << 20)))
            tail = self._handle.read()
            if not tail.endswith(b"\n"):
                self._handle.truncate(size - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else 0)

    def append(self, record: dict) -> None:
        """Write one record and make it durable before returning."""
        self._handle.write((json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def read_journal(path: str | Path) -> list[dict]:
    """All complete records; a torn last line (a crash mid-write) is skipped with a warning."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise ValueError(f"{path}: line {number} is not valid JSON; the journal is damaged") from None
            print(f"mpibench: warning: ignoring a torn last line in {path}", file=sys.stderr)
    return records


def latest_records(records: list[dict]) -> list[dict]:
    """One record a task: the last one journalled (a retried task's new result replaces its failure)."""
    return list({record["task_id"]: record for record in records}.values())
