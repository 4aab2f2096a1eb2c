"""The layering rules (docs/architecture.md): what each package may import. Checked twice: in the
source (every import statement, nested ones included) and in a fresh interpreter (what importing
a module really pulls in)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("sklearn", "skl2onnx", "mlflow", "pandas", "torch", "sentence_transformers")
WEB = ("fastapi", "starlette")


def imports(package: str) -> dict[str, set[str]]:
    """Source file (relative) -> the modules its import statements name, nested ones included."""
    out: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        out[str(path.relative_to(REPO))] = names
    return out


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{file}: {name}"
        for file, names in imports(package).items()
        for name in sorted(names)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def training_beyond_data(package: str) -> list[str]:
    """Imports of training modules other than the data layer (training.data.*)."""
    return [
        f"{file}: {name}"
        for file, names in imports(package).items()
        for name in sorted(names)
        if (name == "training" or name.startswith("training."))
        and not name.startswith("training.data")
    ]


def loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    """The top-level packages among `prefixes` that importing `modules` in a new interpreter
    loads."""
    code = (
        f"import sys, {', '.join(modules)}; "
        f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(prefixes)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return [m for m in out.stdout.strip().split(",") if m]


def test_router_core_imports_no_web_framework() -> None:
    assert offenders("router/core", WEB) == []
    core = [f"router.core.{p.stem}" for p in (REPO / "router/core").glob("*.py")]
    assert loaded(core, WEB) == []


def test_router_imports_no_training_stack_and_no_other_package() -> None:
    assert offenders("router", HEAVY + ("training", "labeling", "eval", "tierwise")) == []


@pytest.mark.parametrize("module", ["router.http.app", "tierwise.cli", "tierwise.serve"])
def test_serving_imports_nothing_heavy(module: str) -> None:
    assert loaded([module], (*HEAVY, "eval", "labeling", "training")) == []


def test_client_imports_nothing_from_the_server() -> None:
    assert offenders("tierwise/client.py", ("router",)) == []
    assert offenders("tierwise/aclient.py", ("router",)) == []
    heavy = ("router", "fastapi", "numpy", "onnxruntime", "pydantic", "anthropic")
    assert loaded(["tierwise.client", "tierwise.aclient"], heavy) == []


def test_eval_imports_router_training_data_and_itself_only() -> None:
    assert offenders("eval", ("labeling", "tierwise")) == []
    assert training_beyond_data("eval") == []
    assert loaded(["eval.evaluation", "eval.cli"], ("labeling",)) == []


def test_labeling_imports_router_training_data_and_itself_only() -> None:
    assert offenders("labeling", ("eval", "tierwise")) == []
    assert training_beyond_data("labeling") == []


@pytest.mark.parametrize("package", ["router", "training", "labeling", "benchmarks"])
def test_nothing_below_the_cli_imports_eval(package: str) -> None:
    # `import eval` would also shadow the builtin: write `from eval.x import ...` inside eval.
    assert offenders(package, ("eval",)) == []


# The CLI layer's commands that orchestrate training and eval together (train, then compare
# with the peers and write the model card; cv: fit the router's heads and the peers on the same
# folds); nothing else in tierwise/ imports either.
CLI_ORCHESTRATORS = {"tierwise/train.py", "tierwise/cv.py"}


def test_only_the_cli_layer_joins_training_and_eval() -> None:
    joined = {f.split(":")[0] for f in offenders("tierwise", ("eval", "labeling"))}
    assert joined <= CLI_ORCHESTRATORS
    training = {f.split(":")[0] for f in offenders("tierwise", ("training",))}
    assert training <= CLI_ORCHESTRATORS


def test_training_data_imports_no_training_pipeline() -> None:
    assert training_beyond_data("training/data") == []
