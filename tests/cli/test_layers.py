"""Imports go down the layers (DESIGN.md): only the CLI itself, the GUI above it and
`python -m explorer` may import `explorer.cli`; the library below must not reach up to it.

The check reads every module's syntax tree, so it also sees imports inside functions; a string
run in a child process (the sweep's `CHILD`) is not an import and is not flagged.
"""

from __future__ import annotations

import ast
from pathlib import Path

import explorer

PACKAGE = Path(explorer.__file__).parent
ALLOWED = ("cli/", "gui/", "__main__.py")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the tree, relative ones resolved."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # `from explorer import cli` names the CLI module in the alias, not in `module`.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def upward_imports() -> list[str]:
    """`explorer/<path>:<line>` of each import of `explorer.cli` outside the allowed places."""
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(ALLOWED):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        module = _module_name(path)
        lines = {
            line
            for line, name in _imported(tree, module, path.name == "__init__.py")
            if name == "explorer.cli" or name.startswith("explorer.cli.")
        }
        offences += [f"explorer/{relative}:{line} imports explorer.cli" for line in sorted(lines)]
    return offences


def test_no_module_below_the_cli_imports_it() -> None:
    assert upward_imports() == []


def test_the_check_sees_every_form_of_import() -> None:
    forms = {
        "import explorer.cli": "explorer.cli",
        "from explorer.cli import main": "explorer.cli",
        "from explorer import cli": "explorer.cli",
        "from explorer.cli.registry import command": "explorer.cli.registry",
        "def late():\n    from ..cli import build_parser": "explorer.cli",
    }
    for source, expected in forms.items():
        names = [
            name for _line, name in _imported(ast.parse(source), "explorer.training.sweep", False)
        ]
        assert expected in names, source
    child = 'CHILD = "import sys; from explorer.cli import main"'
    assert _imported(ast.parse(child), "explorer.training.sweep", False) == []
