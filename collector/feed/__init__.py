"""The provincial 好差评 feed: each rating as a document of the 互联网+政务服务 好差评 rules (docs/feed.md).

``records`` makes the documents (the five-level mapping, channel 窗口评价器);
``push`` queues every rating once in ``feed_ledger`` and delivers it to the
``[feed]`` HTTPS endpoint with retries, the same discipline as the alert
sinks; ``evalbox feed export`` writes a month as JSON Lines.
"""

from collector.feed.push import PushResult, enqueue, export_month, ledger_status, push, run_feed
from collector.feed.records import CHANNEL, FIVE_LEVEL, LEVEL_NAMES, json_lines, rating_doc
from collector.feed.settings import FeedConfig

__all__ = [
    "CHANNEL",
    "FIVE_LEVEL",
    "LEVEL_NAMES",
    "FeedConfig",
    "PushResult",
    "enqueue",
    "export_month",
    "json_lines",
    "ledger_status",
    "push",
    "rating_doc",
    "run_feed",
]
