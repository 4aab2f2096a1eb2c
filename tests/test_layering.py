"""The serving core stays light: importing the app pulls in no training or eval stack."""

import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = ("sklearn", "skl2onnx", "mlflow", "pandas", "torch", "sentence_transformers", "eval")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["router.http.app", "tierwise.cli", "tierwise.serve"])
def test_serving_imports_nothing_heavy(module: str) -> None:
    code = (
        f"import sys, {module}; "
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules or "
        "any(k.startswith(m + '.') for k in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"


def test_router_sources_do_not_import_training_or_eval() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "router").rglob("*.py")
        for line in p.read_text().splitlines()
        if line.lstrip().startswith(("import ", "from "))
        and any(
            w in line.split() for w in ("training", "eval", "training.data.logs", "eval.quality")
        )
    ]
    assert offenders == []
