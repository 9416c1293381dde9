# The demo terminal's config, written into a state folder (used by `tillbox demo` and tests).
from __future__ import annotations

import socket
from pathlib import Path

DEMO_CONFIG = Path(__file__).parent / "terminal.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, port: int) -> Path:
    """A runnable copy of the demo config whose state lives in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    text = text.replace('state_dir = "/var/lib/tillbox"', f'state_dir = "{folder.resolve()}"')
    text = text.replace("port = 8080", f"port = {port}")
    path = folder / "terminal.toml"
    path.write_text(text, encoding="utf-8")
    return path
