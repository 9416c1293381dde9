# `tillbox demo`: write a demo config into a state folder and run the daemon on a free port.
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


def run_demo(folder: Path, port: int = 0) -> int:
    import uvicorn

    from terminal.api import create_app
    from terminal.config import load

    port = port or free_port()
    config = load(write_config(folder, port), environ={})
    app = create_app(config)
    url = f"http://127.0.0.1:{port}"
    print(f"Tillbox demo: store {config.store_id}, terminal {config.terminal_id}", flush=True)
    print(f"  open {url}/  (the API, browsable; the kiosk UI comes here)", flush=True)
    print("  PINs: cashier 1111, manager 9999", flush=True)
    print(f"  state and journal: {folder.resolve()}", flush=True)
    print("  Ctrl-C stops the demo.", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0
