"""Run report: report.json, report.md and plots."""
from edgekd.report.build import ModelResult, RunResults, accuracy_rows, write_report

__all__ = ["ModelResult", "RunResults", "accuracy_rows", "write_report"]
