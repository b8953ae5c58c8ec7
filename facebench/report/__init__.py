"""Reports: JSON evaluation results rendered as Markdown tables and PNG figures."""

from facebench.report.render import comparison_table, render_report

__all__ = ["comparison_table", "render_report"]
