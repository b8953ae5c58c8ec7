"""Reports: JSON evaluation results rendered as Markdown tables and PNG figures."""

from facebench.report.render import render_report

__all__ = ["render_report"]
