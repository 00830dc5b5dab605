"""Odoo-shaped databases of a requested size, from the project's sample generator."""

from __future__ import annotations

from pathlib import Path

from backdrill.pg.connection import ConnParams
from backdrill.sample.odoo import SampleInfo, create_sample

#: pg_database_size grows by about 2.6 MB per unit of scale (measured), plus ~11 MB
MB_PER_SCALE = 2.64


def scale_for(size_mb: float) -> float:
    return max(1.0, (size_mb - 11) / MB_PER_SCALE)


def make_database(params: ConnParams, name: str, size_mb: float, filestore: Path) -> SampleInfo:
    return create_sample(params, name, filestore, scale=scale_for(size_mb))


def database_size_mb(params: ConnParams, name: str) -> float:
    with params.connect() as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
    assert row is not None
    return int(str(row[0])) / 2**20
