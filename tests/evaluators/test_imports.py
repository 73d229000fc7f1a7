"""evaluators/ stays pure: of flywheel's own code it imports only evaluators/ and flywheel.errors."""

import ast
from pathlib import Path

import flywheel.evaluators

ALLOWED_FLYWHEEL = ("flywheel.evaluators", "flywheel.errors")


def _flywheel_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.split(".")[0] == "flywheel"}


def test_evaluators_import_no_other_room_of_flywheel() -> None:
    root = Path(flywheel.evaluators.__file__).parent
    stray = {
        f"{path.relative_to(root)}: {name}"
        for path in root.rglob("*.py")
        for name in _flywheel_imports(path)
        if not name.startswith(ALLOWED_FLYWHEEL)
    }
    assert not stray, sorted(stray)
