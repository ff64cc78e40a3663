"""evalbox collector: ingest, store, report and serve the web page."""

__version__ = "0.1.0"
