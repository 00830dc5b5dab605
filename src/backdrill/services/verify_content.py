"""Does a restored database hold what the backup's manifest says? Row counts always;
with content digests (``backup.content_digests``) the content of every table, large
object and sequence, recomputed in the restored copy and compared one by one. What
cannot be compared (not dumped, changed by the neutralization, materialized views) is
named in a ``skip`` check, never passed over in silence. It runs on the copy as
restored, before a drill or ``restore db --neutralize`` neutralizes it: every table,
the Odoo settings the neutralization changes included, is proven as it was dumped.

The one entry point of the drill and of ``restore db``: :func:`verify_content`.
"""

from __future__ import annotations

from backdrill.odoo.checks import Check
from backdrill.pg.connection import ConnParams
from backdrill.pg.content import compute_content, inventory
from backdrill.pg.introspect import row_count_map
from backdrill.repository.digests import (
    ALGORITHM,
    compare_large_objects,
    compare_row_counts,
    compare_sequences,
    compare_tables,
    listed_check,
)
from backdrill.repository.manifest import DbManifest

NOT_PROVEN = (
    "rows counted, content not proven: the backup holds no content digests "
    "(backup.content_digests: false, or made by an older backdrill)"
)


def verify_content(
    manifest: DbManifest,
    params: ConnParams,
    *,
    workers: int = 2,
) -> list[Check]:
    """The checks of the restored database at ``params`` against ``manifest``: row
    counts, then (if the manifest has digests) ``content``, ``large_objects`` and
    ``sequences``, and ``skip`` checks naming what is not compared and why."""
    not_dumped = {t.key for t in manifest.not_dumped}
    with params.connect() as conn:
        inv = inventory(conn)
        proven = manifest.content is not None and manifest.content.algorithm == ALGORITHM
        counted = {} if proven else row_count_map(conn)
    inv.tables = [t for t in inv.tables if (t[0], t[1]) not in not_dumped]
    checks: list[Check] = []
    if manifest.content is None or not proven:
        actual = {k: n for k, n in counted.items() if k not in not_dumped}
        checks.append(compare_row_counts(manifest.row_counts(), actual))
        why = NOT_PROVEN
        if manifest.content is not None:
            why = (
                f"rows counted, content not proven: the backup's digests are "
                f"{manifest.content.algorithm[:40]!r}, this backdrill computes {ALGORITHM!r}"
            )
        checks.append(Check("content", "skip", why))
    else:
        want = manifest.content
        methods = {t.key: t.method for t in want.tables}
        got = compute_content(params, inv, workers=workers, methods=methods)
        tables = {t.key: t for t in got.tables}
        actual = {k: t.rows for k, t in tables.items()}
        checks.append(compare_row_counts(manifest.row_counts(), actual))
        checks.append(compare_tables(want.tables, tables))
        checks.append(
            compare_large_objects(want.large_objects, {o.oid: o for o in got.large_objects})
        )
        checks.append(compare_sequences(want.sequences, {s.key: s for s in got.sequences}))
    for check in (
        listed_check(
            "not_dumped",
            not_dumped,
            "unlogged tables of a hot standby: their data is not in the dump",
        ),
        listed_check(
            "materialized_views",
            inv.matviews,
            "recomputed from their query by the restore, not copied",
        ),
    ):
        if check is not None:
            checks.append(check)
    return checks
