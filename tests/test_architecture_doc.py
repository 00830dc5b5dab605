"""docs/architecture.md is the one-page map of the modules: every package and every module
of src/backdrill is on it, so the map cannot drift from the tree."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "backdrill"


def test_every_package_and_module_is_on_the_architecture_page() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    packages = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())
    assert packages, "no packages found"
    missing = [f"{p}/" for p in packages if f"{p}/" not in page]
    modules = sorted(p.relative_to(SRC) for p in SRC.rglob("*.py") if p.name != "__init__.py")
    missing += [str(m) for m in modules if m.name not in page]
    assert missing == []


def test_the_top_level_holds_packages_only() -> None:
    """`ls src/backdrill` shows the architecture: no flat modules beside the packages."""
    flat = sorted(p.name for p in SRC.glob("*.py") if p.name not in {"__init__.py", "__main__.py"})
    assert flat == []
