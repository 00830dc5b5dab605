"""A local repository written by several threads at once (``backup db --parallel``): a
delete drops the directories it leaves empty (``locks/`` once the last lock goes), and
a writer in another thread that had just made that directory makes it again instead
of failing (it failed with FileNotFoundError, an internal error ending the whole run)."""

from __future__ import annotations

import threading
import traceback
from pathlib import Path

import pytest

from backdrill.storage.local import LocalStorage

ROUNDS = 800


def _churn(storage: LocalStorage, key: str, if_absent: bool, errors: list[str]) -> None:
    try:
        for _ in range(ROUNDS):
            if errors:
                return
            storage.put_bytes(key, b"lock", if_absent=if_absent)
            storage.delete(key)
    except Exception:
        errors.append(traceback.format_exc())


@pytest.mark.slow  # seconds of threads racing: not in make test-fast
def test_writers_and_deletes_of_neighbour_keys_in_threads_never_fail(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "repo")
    errors: list[str] = []
    threads = [
        threading.Thread(target=_churn, args=(storage, key, if_absent, errors))
        for key, if_absent in (
            ("locks/db-a", True),  # a lock: conditional create
            ("locks/db-b", True),
            ("locks/deep/db-c", False),  # an object: written, fsynced, renamed
        )
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [], errors[0]
    assert not (tmp_path / "repo" / "locks").exists()  # the last delete still tidies up
