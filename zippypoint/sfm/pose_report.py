"""Markdown report of a relative pose evaluation (``zippypoint evaluate-pose``)."""

from __future__ import annotations


def pose_table(methods: dict) -> str:
    """Rows: methods; per pair set the AUC@5/10/20 (percent) and failed pairs."""
    from zippypoint.eval.report import _fmt

    sets = list(dict.fromkeys(s for per_set in methods.values() for s in per_set))
    head = ["method"] + [f"{s} AUC@5/10/20 (%)" for s in sets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, per_set in methods.items():
        row = [f"`{name}`"]
        for s in sets:
            m = per_set.get(s)
            if m is None:
                row.append("-")
                continue
            aucs = " / ".join(_fmt(None if m[k] is None else 100 * m[k], 1) for k in ("auc@5", "auc@10", "auc@20"))
            row.append(aucs + (f" ({m['failed']} failed)" if m["failed"] else ""))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def pose_markdown(report: dict) -> str:
    env = report.get("environment", {})
    sizes = ", ".join(f"{k}: {v} pairs" for k, v in report["pairs"].items())
    lines = [
        "# Relative pose",
        "",
        f"Images: `{report['images']}`; pair files: {sizes}. Essential matrix ({report['solver']}, "
        f"{report['threshold_px']} px) on mutual nearest-neighbour matches, at most {report['max_keypoints']} "
        "keypoints. Error = max(rotation error, translation-direction error); AUC of the recall curve up to "
        "5/10/20 degrees (SuperGlue protocol); a failed pair counts as an infinite error.",
        "",
        pose_table(report["methods"]),
        f"Machine: {env.get('cpu')} ({env.get('cpu_count')} cores), zippypoint {env.get('zippypoint')}, "
        f"OpenCV {env.get('opencv')}.",
    ]
    if report.get("skipped"):
        lines += ["", "Skipped:", ""] + [f"- `{n}`: {why}" for n, why in report["skipped"].items()]
    return "\n".join(lines) + "\n"
