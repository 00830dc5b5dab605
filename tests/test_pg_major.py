"""One parser of a PostgreSQL major version (pg/binaries.major_version), used wherever a
version string picks programs or a sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from backdrill.pg.binaries import Program, major_version


@pytest.mark.parametrize(
    ("version", "major"), [("15.4", 15), ("9.6", 9), ("15", 15), ("17.0.1", 17)]
)
def test_the_major_of_a_version(version: str, major: int) -> None:
    assert major_version(version) == major


@pytest.mark.parametrize("version", ["", "x.1", "15beta1", "²", "1" * 5, "15.", " 15"])
def test_a_string_that_is_not_a_version_is_a_value_error(version: str) -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL version"):
        major_version(version)


def test_a_program_major_is_the_same_parser() -> None:
    assert Program("pg_dump", Path("/usr/bin/pg_dump"), "16.2").major == 16
