"""The size limits of what backdrill reads from a repository, in one place.

Every byte of a repository is hostile (anyone with write access to the bucket can
replace an object): a document is read, and decompressed, only up to its limit; a
stored object only up to the size its manifest or snapshot records (see
:mod:`backdrill.repository.zstdio`). Past a limit the read stops at once with an IntegrityError.
"""

from __future__ import annotations

MiB = 1024 * 1024

#: a filestore snapshot (``*.json.zst``), decompressed: ~200 bytes an entry, so some
#: 300 000 files; its compressed form is bounded by the same number
MAX_SNAPSHOT_BYTES = 64 * MiB
#: one entry chunk of a schema_version 2 snapshot (``files/chunks/``), stored and
#: decompressed: a writer cuts at 4 MiB of JSON (:mod:`backdrill.files.chunks`)
MAX_CHUNK_BYTES = 8 * MiB
#: a filestore pack's index (``files/packs/xx/<id>.index``), stored and decompressed:
#: some 150 bytes of JSON a blob, and a pack of 8 MiB holds at most some 40 000 blobs
MAX_PACK_INDEX_BYTES = 16 * MiB
#: one blob of a pack, as stored: a content of at most 512 KiB (``files.packs``), zstd
#: or age framing added (a few hundred bytes); a packed entry may not say more
MAX_PACKED_BLOB_BYTES = 1 * MiB
#: a database backup's ``manifest.json`` (a directory backup lists one object a table)
MAX_MANIFEST_BYTES = 16 * MiB
#: a drill's ``report.json`` in ``evidence/``
MAX_REPORT_BYTES = 16 * MiB
#: a lock object in ``locks/`` (a few hundred bytes of JSON)
MAX_LOCK_BYTES = 64 * 1024
#: an attempt record in ``status/`` (a few hundred bytes of JSON)
MAX_ATTEMPT_BYTES = 16 * 1024
#: how many attempt records ``status`` and the metrics read
MAX_ATTEMPT_RECORDS = 1000
