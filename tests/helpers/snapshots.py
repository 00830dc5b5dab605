"""A files snapshot of no file, made in memory: for the pure decisions over snapshots
and for a root to hang written chunks on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backdrill.files.snapshot import Snapshot


def empty_snapshot(
    schema_version: int, id: str, created: datetime, source_name: str, **layout: Any
) -> Snapshot:
    """A snapshot of ``source_name`` taken at ``created``, every count zero; ``layout``:
    ``entries``/``skipped`` (schema_version 1) or ``chunks``/``skipped_chunks`` (2)."""
    return Snapshot(
        schema_version=schema_version,
        id=id,
        source=f"/{source_name}",
        source_name=source_name,
        created_at=created,
        finished_at=created,
        file_count=0,
        total_bytes=0,
        new_objects=0,
        new_bytes=0,
        uploaded_bytes=0,
        files_read=0,
        bytes_read=0,
        changed_count=0,
        skipped_count=0,
        run_id="r",
        host="h",
        backdrill_version="0",
        **layout,
    )
