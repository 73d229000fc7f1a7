"""pyproject.toml lists packages explicitly (the folders install under the one `flywheel`
namespace), so a new subpackage missing from the list would vanish from a non-editable install."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO_ROOT

ROOMS = ("flows", "tasks", "evaluators", "warehouse", "sandbox", "llm", "pool")


def _packages_on_disk() -> set[str]:
    found = set()
    for init in REPO_ROOT.glob("*/**/__init__.py"):
        parts = init.parent.relative_to(REPO_ROOT).parts
        if parts[0] == "flywheel":
            found.add(".".join(parts))
        elif parts[0] in ROOMS:
            found.add(".".join(("flywheel", *parts)))
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    assert _packages_on_disk() - listed == set()
