"""Figures are drawn on their own Agg canvas (``zippypoint.viz.agg_figure``): writing one never imports pyplot
nor switches matplotlib's global backend, so a library call cannot disturb a user's interactive session."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_report_figures_leave_pyplot_and_the_backend_alone(tmp_path):
    script = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        import matplotlib
        matplotlib.use("svg")  # a user's choice (set before pyplot is imported, as a script would)
        from zippypoint.train.trainer import plot_curves
        from zippypoint.train.ablation import plot
        out = Path({str(tmp_path)!r})
        rows = [{{"kind": "train", "step": s, "total": 1.0 / s, "location": 1.0, "descriptor": 0.5, "score": 0.1,
                  "consistency": 0.01}} for s in (1, 2, 3)]
        (out / "m.jsonl").write_text("\\n".join(json.dumps(r) for r in rows))
        plot_curves(out / "m.jsonl", out / "curves.png")
        metrics = {{"binary": {{"dev": {{"mma_3": 0.8, "correctness_3_orders": 0.7}}}}}}
        plot([{{"name": "a", "metrics": metrics}}], ["x/dev"], out / "ablation.png")
        assert (out / "curves.png").stat().st_size > 1000 and (out / "ablation.png").stat().st_size > 1000
        assert "matplotlib.pyplot" not in sys.modules, "a figure imported pyplot"
        assert matplotlib.rcParams["backend"] == "svg", matplotlib.rcParams["backend"]
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
