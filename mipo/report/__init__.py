"""Reports: a run's report.md and plot.png (run.py), `mipo compare`'s compare.md and compare.png (compare.py)."""
from .format import LABELS, cell, fmt, fmt_ci
from .run import table_header, table_rows, write_report

__all__ = ["LABELS", "cell", "fmt", "fmt_ci", "table_header", "table_rows", "write_report"]
