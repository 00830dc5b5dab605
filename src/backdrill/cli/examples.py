"""One example per command, shown at the end of its ``--help`` (the epilog)."""

from __future__ import annotations

EXAMPLES: dict[str, str] = {
    "config check": "backdrill --config /etc/backdrill/backdrill.yaml config check",
    "backup db": "backdrill backup db --database odoo --wait 15m",
    "backup files": "backdrill backup files --source /var/lib/odoo/filestore",
    "list": "backdrill list files --json",
    "show": "backdrill show 20260301T030000Z  (a unique prefix of an id is enough)",
    "drill run": "backdrill drill run --backup latest --sandbox local --keep-sandbox",
    "drill history": "backdrill drill history --verify --public-key /etc/backdrill/drill.pem.pub",
    "drill keygen": "backdrill drill keygen --out /etc/backdrill/drill.pem",
    "restore db": "backdrill restore db --to 'host=db1 dbname=odoo' --backup latest --neutralize",
    "restore files": "backdrill restore files --to /var/lib/odoo/filestore --snapshot latest",
    "prune": "backdrill prune --dry-run",
    "verify": "backdrill verify latest --read-data",
    "status": "backdrill status --json",
    "serve": "backdrill serve --listen 127.0.0.1:9187",
    "standards check": "backdrill standards check --root .",
    "unlock": "backdrill unlock db-odoo  (--force: a lock that is not stale)",
}


def example(command: str) -> str:
    """The epilog of ``command`` (``"backup db"``)."""
    return f"Example: {EXAMPLES[command]}"
