"""`got-data report`: a self-contained HTML page about an annotate run (see `page.py`)."""

from got_data.report.page import REPORT_FILE, ReportResult, write_report

__all__ = ["REPORT_FILE", "ReportResult", "write_report"]
