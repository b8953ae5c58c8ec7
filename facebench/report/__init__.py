"""Reports: JSON evaluation results rendered as Markdown tables and PNG figures."""
