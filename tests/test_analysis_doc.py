"""Every Python block of docs/analysis.md runs against fresh result files (so the documented snippets stay true)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "analysis.md"


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_doc_has_snippets() -> None:
    assert len(code_blocks(DOC.read_text())) >= 4


@pytest.mark.parametrize("scheme", ["dso-led", "tso-led"])
def test_snippets_run(plan_files: dict[str, Path], run_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      scheme: str) -> None:
    shutil.copy(plan_files[scheme], tmp_path / "result.json")
    shutil.copy(run_file, tmp_path / "run.h5")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for k, block in enumerate(code_blocks(DOC.read_text())):  # blocks share state, like a notebook
        exec(compile(block, f"{DOC.name}[block {k}]", "exec"), namespace)
