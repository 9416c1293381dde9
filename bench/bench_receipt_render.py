# purpose: time rendering a 40-line receipt to ESC/POS bytes (target: well under 20 ms).
"""Run from the repository root: ``python bench/bench_receipt_render.py``."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.printer.receipt import RenderOptions, render_receipt
from drivers.printer.sample import sample_receipt


def main() -> None:
    """Render the sample with 38 extra items 200 times per paper width and print the timing."""
    model = sample_receipt(extra_lines=38)
    for options in (RenderOptions(paper_mm=80), RenderOptions(paper_mm=58)):
        data = render_receipt(model, options)  # warm the code page tables
        runs = []
        for _ in range(200):
            start = time.perf_counter()
            data = render_receipt(model, options)
            runs.append((time.perf_counter() - start) * 1000)
        print(
            f"{options.paper_mm} mm, {len(model['lines'])} lines, {len(data)} bytes: "
            f"median {statistics.median(runs):.2f} ms, max {max(runs):.2f} ms (target < 20 ms)"
        )


if __name__ == "__main__":
    main()
