# The README's walk-through is run for real against the daemon, so it cannot go stale.
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import Daemon

README = Path(__file__).parent.parent / "README.md"


def walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## One sale with curl", 1)[1]
    return re.findall(r"```bash\n(.*?)```", section, re.S)[0]


def test_readme_sale_walkthrough_runs(daemon: Daemon) -> None:
    script = walkthrough().replace("127.0.0.1:8080", daemon.url.removeprefix("http://"))
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert '"status": "completed"' in out.stdout
    assert '"receipt_no": "demo-t1-000001"' in out.stdout
    assert '"receipt_no": "demo-t1-000002"' in out.stdout  # the refund
    assert '"over_short"' in out.stdout
    assert "error" not in out.stdout


def test_readme_starts_with_the_two_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks[0].strip() == "./scripts/setup && .venv/bin/tillbox demo"
    assert blocks[1].strip() == "./scripts/test"
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "./scripts/test\n" in ci
