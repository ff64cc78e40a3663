"""Reports: monthly satisfaction rates, bands, rankings, the sanctions ledger and exports.

Reads the store's rollups through a small ``Database`` protocol (``db``);
the policy (``policy``) decides what counts; ``render`` turns a report into
table, CSV, JSON, XLSX or HTML.
"""

from collector.report.ledger import Ledger, add_complaint, year_ledger
from collector.report.monthly import Line, MonthlyReport, monthly_report
from collector.report.policy import Policy, load_policy
from collector.report.rates import band, pct_text, wilson
from collector.report.rebuild import rebuild

__all__ = [
    "Ledger",
    "Line",
    "MonthlyReport",
    "Policy",
    "add_complaint",
    "band",
    "load_policy",
    "monthly_report",
    "pct_text",
    "rebuild",
    "wilson",
    "year_ledger",
]
