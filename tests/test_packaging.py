"""The container image definition (no Docker engine runs here: read, not built)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

import backdrill
from helpers.cli import run_cli

REPO = Path(__file__).resolve().parent.parent


def test_dockerfile_pins_pg_major_runs_non_root_and_checks_health_with_status() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\$\{PYTHON_VERSION\}-slim-", text, re.M)
    assert re.search(r"^ARG PG_MAJOR=15$", text, re.M)
    assert '"postgresql-client-${PG_MAJOR}"' in text
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert re.search(r"^ENTRYPOINT \[\"backdrill\"\]$", text, re.M)
    health = re.search(r"^HEALTHCHECK .*\n\s+CMD (.*)$", text, re.M)
    assert health and "backdrill" in health.group(1) and "status" in health.group(1)
    # Docker reserves exit 2; Nagios CRITICAL (2) must become unhealthy (1)
    assert "[ $? -le 1 ] || exit 1" in health.group(1)


def test_dockerfile_installs_the_wheel_it_builds_without_extras() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2, "a wheel-building stage, then the image"
    assert " AS wheel" in stages[0].splitlines()[0]
    assert "pip wheel --no-deps" in stages[0]
    installs = re.findall(r"pip install (\S+)", stages[1])
    assert installs == ["/tmp/dist/backdrill-*.whl"], installs  # the wheel, no [extras]
    assert "COPY --from=wheel" in stages[1]
    assert "COPY src" not in stages[1]


def test_ci_runs_the_wheel_smoke_test_before_the_suite() -> None:
    steps = [
        ln.strip()
        for ln in (REPO / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.startswith(("#", "set ", "cd "))
    ]
    assert steps == ["make smoke-wheel", "make secret-scan", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^smoke-wheel: .*\n\t.*scripts/smoke-wheel\.sh$", makefile, re.M)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.slow
def test_every_third_party_import_of_the_package_is_a_declared_dependency() -> None:
    """The test extras install more than a user gets (click came only through them);
    an import must name a distribution of [project] dependencies or a non-test extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra, extra_requirements in project["optional-dependencies"].items():
        if extra != "test":
            requirements += extra_requirements
    declared = {_canonical(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in requirements}
    distributions = importlib.metadata.packages_distributions()
    undeclared: dict[str, str] = {}
    for path in sorted((REPO / "src" / "backdrill").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("backdrill", "__future__"):
                    continue
                dists = {_canonical(d) for d in distributions.get(top, [top])}
                if not dists & declared:
                    undeclared[top] = str(path.relative_to(REPO))
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_typer_is_declared_with_a_tested_range() -> None:
    """cli/app.py relies on typer >= 0.29 (vendored click, typer.TyperException)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (typer,) = [r for r in project["dependencies"] if r.startswith("typer")]
    assert re.fullmatch(r"typer>=0\.29(\.\d+)?,<0\.\d+", typer), typer


def test_version_and_usage_errors_go_through_typers_public_exceptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No click import: typer.Exit (--version) and typer.TyperException (usage errors)."""
    version = run_cli(capsys, "--version")
    assert version.code == 0
    assert version.out.strip() == f"backdrill {backdrill.__version__}"
    unknown = run_cli(capsys, "backup", "db", "--no-such-option")
    assert unknown.code == 2
    assert "No such option: --no-such-option" in unknown.err
    assert "Usage: backdrill backup db" in unknown.err
    assert "Traceback" not in unknown.err  # more mistakes: tests/test_bad_input.py
