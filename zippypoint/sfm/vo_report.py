"""Markdown report of a visual odometry comparison (``zippypoint vo``)."""

from __future__ import annotations


def _fmt(value, digits: int = 3) -> str:
    from zippypoint.eval.report import _fmt as fmt

    return fmt(value, digits)


def _load(report: dict, when: str) -> str:
    value = report.get("load_average", {}).get(when)
    return "-" if not value else f"{value[0]:.1f}"


def vo_table(methods: dict) -> str:
    """One row per method: accuracy (where ground truth was given), tracking counts and speed."""
    has_gt = any("ate_rmse" in m for m in methods.values())
    head = ["method"]
    if has_gt:
        head += ["ATE RMSE (m)", "RPE trans RMSE (m)", "RPE rot mean (deg)"]
    head += ["failed frames", "keypoints", "matches", "inliers", "extract ms", "match ms", "pose ms", "loop fps"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in methods.items():
        row = [f"`{name}`"]
        if has_gt:
            row += [_fmt(m.get("ate_rmse")), _fmt(m.get("rpe_trans_rmse")), _fmt(m.get("rpe_rot_mean_deg"))]
        row += [str(m["failed_frames"]), f"{m['mean_keypoints']:.0f}", f"{m['mean_matches']:.0f}",
                f"{m['mean_inliers']:.0f}", _fmt(m.get("extract_median_ms"), 1), _fmt(m.get("match_median_ms"), 1),
                _fmt(m.get("pose_median_ms"), 1), _fmt(m.get("fps"), 1)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def vo_markdown(report: dict) -> str:
    env = report.get("environment", {})
    cfg = report.get("config", {})
    lines = [
        "# Visual odometry",
        "",
        f"Frames: `{report['frames_dir']}` ({report['frames']} frames); ground truth: `{report.get('ground_truth')}`.",
        f"Frame-to-frame essential matrix ({cfg.get('solver')}, {cfg.get('threshold_px')} px, "
        f"confidence {cfg.get('confidence')}), at most {report.get('max_keypoints')} keypoints, mutual nearest "
        "neighbour matching (Hamming for binary, L2 for float descriptors). With ground truth each step has its "
        "true length (monocular VO has no scale); ATE after Sim(3) (Umeyama) alignment; RPE over consecutive "
        "frames. Times are medians per frame; loop fps = frames / wall time of the whole loop "
        "(image reading, extraction, matching, pose).",
        "",
        vo_table(report["methods"]),
        f"Timing: median over {report.get('rounds', 1)} round(s) of every method's loop in alternating order; "
        f"load average (1 min) before / after: {_load(report, 'before')} / {_load(report, 'after')}.",
        "",
        f"Machine: {env.get('cpu')} ({env.get('cpu_count')} cores), zippypoint {env.get('zippypoint')}, "
        f"OpenCV {env.get('opencv')}, onnxruntime {env.get('onnxruntime')}.",
    ]
    if report.get("skipped"):
        lines += ["", "Skipped:", ""] + [f"- `{n}`: {why}" for n, why in report["skipped"].items()]
    return "\n".join(lines) + "\n"
