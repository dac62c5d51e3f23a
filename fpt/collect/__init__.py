"""Sweep results as tables and plots (`python -m fpt.collect`; what it reads and writes: command.py).

The package: read.py (job folders), table.py (configurations, mean ± std), report.py (Markdown and CSV),
search.py (a search's trials; `search_summary`), plot.py (curves.png), command.py (`collect`, the command line).
"""
from __future__ import annotations

from ..extras import require

require("pandas", "python -m fpt.collect")  # every table is a pandas frame: name the extra before anything else

from .command import collect, main  # noqa: E402
from .read import Job, read_sweeps  # noqa: E402
from .search import search_summary  # noqa: E402
from .table import make_table  # noqa: E402

__all__ = ["Job", "collect", "main", "make_table", "read_sweeps", "search_summary"]
