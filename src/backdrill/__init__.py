"""backdrill: PostgreSQL/Odoo backups with restore drills that prove RPO and RTO."""

__version__ = "0.1.0"
