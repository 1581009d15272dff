"""The report's PNG: latency per day (p50, p95), questions per day (covered or not), the pages cited most.

Drawn on a bare matplotlib ``Figure`` (no pyplot): no display needed and safe in server threads.
"""

from __future__ import annotations

import io

from insights.report import CourseReport

PAGE_BARS = 10


def report_png(report: CourseReport) -> bytes:
    """The three panels of ``report`` as PNG bytes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 10), layout="constrained")
    latency, volume, pages = figure.subplots(3, 1)
    days = [point.day for point in report.latency]
    latency.plot(days, [p.p50_s for p in report.latency], marker="o", label="p50")
    latency.plot(days, [p.p95_s for p in report.latency], marker="o", label="p95")
    latency.set(title=f"{report.course}: answer latency per day (UTC)", ylabel="seconds")
    latency.legend()
    covered = [p.questions - p.not_covered for p in report.latency]
    volume.bar(days, covered, label="answered from the course")
    volume.bar(days, [p.not_covered for p in report.latency], bottom=covered, label="not covered")
    volume.set(title="Questions per day", ylabel="questions")
    volume.legend()
    for axes in (latency, volume):
        axes.tick_params(axis="x", labelrotation=30)
    shown = list(reversed(report.pages[:PAGE_BARS]))
    pages.barh([f"{p.source} p.{p.page}" for p in shown], [p.count for p in shown])
    pages.set(title="Pages cited most", xlabel="answers citing the page")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
