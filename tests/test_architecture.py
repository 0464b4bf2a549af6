"""The layering rules of docs/architecture.md, checked on the code as it is.

* import contracts (`[tool.importlinter]` in pyproject.toml): api -> engine | registry ->
  models -> core, no package cycles, nothing below the API imports HTTP or wire formats;
* no HTTP status number outside `api/`: errors below it carry a code, the API picks the status;
* `from rerankd import Client` imports no torch, transformers or numpy;
* the command line, and `rerankd eval` short of its in-process scorer, import no torch or transformers.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rerankd

PACKAGE = Path(rerankd.__file__).parent
ROOT = Path(__file__).resolve().parents[1]
BELOW_THE_API = ("core", "engine", "registry", "models")


def test_import_contracts_hold():
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    completed = subprocess.run([command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = completed.stdout + completed.stderr
    print(report[-2000:])
    contracts = (ROOT / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert f"Contracts: {contracts} kept, 0 broken." in report, report[-4000:]
    assert completed.returncode == 0


def _names_status(node: ast.AST) -> bool:
    """`status`, `x.status_code`, `http_status=`...: something that holds an HTTP status."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return name is not None and "status" in name.lower()


def _is_status_number(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and 100 <= node.value <= 599


def http_statuses(source: str) -> list[int]:
    """Lines where an HTTP status number is assigned, passed, compared or mapped."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.keyword)
            and node.arg
            and "status" in node.arg.lower()
            and _is_status_number(node.value)
        ):
            lines.append(node.value.lineno)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_names_status(t) for t in targets) and _is_status_number(node.value):
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_names_status(s) for s in sides) and any(_is_status_number(s) for s in sides):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and sum(_is_status_number(v) for v in node.values) >= 2:  # a status table
            lines.append(node.lineno)
    return lines


def test_the_status_detector_finds_statuses():
    for snippet in (
        "class E:\n    status = 503\n",
        "raise Error('x', status=404)\n",
        "if response.status_code == 429: pass\n",
        "TABLE = {A: 400, B: 503}\n",
    ):
        assert http_statuses(snippet), snippet
    assert not http_statuses("max_length = 512\nlimits = {'a': 512}\n")


def test_no_http_status_numbers_below_the_api():
    found = {
        str(path.relative_to(PACKAGE)): lines
        for package in BELOW_THE_API
        for path in sorted((PACKAGE / package).rglob("*.py"))
        if (lines := http_statuses(path.read_text()))
    }
    assert not found, f"HTTP statuses outside api/ (file: lines): {found}"


@pytest.mark.parametrize("statement", ["from rerankd import Client", "from rerankd import AsyncClient, Item"])
def test_the_sdk_imports_no_model_code(statement):
    probe = f"import sys; {statement}; print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_the_command_line_and_remote_evaluation_import_no_model_code():
    """`rerankd --help` stays fast, and `rerankd eval --url` runs where only the SDK and the eval extra are."""
    statement = (
        "import rerankd.cli; rerankd.cli.build_parser(); "
        "from rerankd.evaluation import loading, markdown, metrics, plot, remote, report, runner, significance"
    )
    probe = f"import sys; {statement}; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"
