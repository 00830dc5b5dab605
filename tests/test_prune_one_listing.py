"""``prune`` lists the repository's objects once, under the scope locks, and builds its
scopes from that one listing (it no longer lists everything again and patches the
scopes it built from a first listing)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backdrill.config.loading import load_config
from backdrill.runtime.timeutil import utcnow
from backdrill.services.context import RunContext
from backdrill.services.prune import run_prune
from backdrill.storage import ObjectInfo, Storage
from helpers.cli import Repo
from helpers.history import fake_db_backup, prune_config, storage_of


class CountingListings:
    """The real repository, counting its full listings."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.full_listings = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        if prefix == "":
            self.full_listings += 1
        return self.storage.list_objects(prefix)


@pytest.mark.parametrize("dry_run", [False, True])
def test_prune_lists_every_object_once_and_still_prunes(
    tmp_path: Path, repo: Repo, dry_run: bool
) -> None:
    now = utcnow()
    with storage_of(repo) as storage:
        old = [fake_db_backup(storage, "odoo", now - timedelta(days=d)) for d in (90, 60)]
        new = fake_db_backup(storage, "odoo", now - timedelta(hours=1))
    cfg = load_config(prune_config(tmp_path / "c.yaml", repo, days=30, min_keep=1))
    counting = CountingListings(storage_of(repo))
    hooked: Any = counting
    report = run_prune(RunContext(config=cfg, storage=hooked, run_id="p"), dry_run=dry_run)
    assert counting.full_listings == 1
    assert sorted(e.id for e in report.entries if e.action == "delete") == sorted(old)
    assert [e.id for e in report.entries if e.action == "keep"] == [new]
