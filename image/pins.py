# purpose: print `name==version` per package of a `pip install --report` (the arm64 fetch).
import json
import sys
from pathlib import Path

report, which = sys.argv[1], sys.argv[2]  # which: "wheels" (all but tillbox, evdev) or "evdev"
for item in json.loads(Path(report).read_text(encoding="utf-8"))["install"]:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    if (which == "evdev") == (name == "evdev") and name != "tillbox":
        print(f"{name}=={version}")
