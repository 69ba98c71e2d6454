"""The README's set-up commands and CI agree, and the README's Python example names the real API."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines()
          if line and not line.startswith(("#", "set ", "cd ", "export "))]
    assert len(ci) == 1
    readme_blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    commands = [line for block in readme_blocks for line in block.splitlines() if line and not line.startswith("#")]
    assert ci[0] in commands
    assert any(c.endswith("hf-w2s demo") for c in commands)


def test_readme_example_imports_exist():
    import hf_w2s

    text = (ROOT / "README.md").read_text()
    for names in re.findall(r"from hf_w2s import ([\w, ]+)", text):
        for name in names.split(","):
            assert hasattr(hf_w2s, name.strip()), name
