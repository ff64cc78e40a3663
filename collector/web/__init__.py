"""The supervisors' web page: monthly table, officer drill-down, devices, bad-review cases, alerts, misuse flags.

Public names: ``create_app`` (standalone), ``add_web_routes`` and ``run_watcher`` (mounted in ``evalbox serve``),
``WebSettings``, ``case_counts`` (for the monthly report). The store is a ``collector.store.Database``.
"""

from collector.web.app import add_web_routes, build_sinks, create_app, run_watcher
from collector.web.cases import case_counts
from collector.web.settings import DetectionRules, WebSettings

__all__ = [
    "DetectionRules",
    "WebSettings",
    "add_web_routes",
    "build_sinks",
    "case_counts",
    "create_app",
    "run_watcher",
]
