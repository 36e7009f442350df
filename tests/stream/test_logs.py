"""The repeat limiter keeps a retrying client library from flooding the log."""

import logging

from fraudstream.stream.logs import RepeatLimiter


def test_a_repeated_message_passes_once_per_interval_and_says_how_many_were_held():
    now = [0.0]
    limiter = RepeatLimiter(every_s=10.0, clock=lambda: now[0])
    logger = logging.getLogger("aiokafka.test-limiter")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    logger.addFilter(limiter)
    logger.addHandler(Keep())
    logger.propagate = False
    for i in range(3000):  # a tight retry loop: 3,000 lines in 5 s
        now[0] = i / 600
        logger.error("Unable connect to node with id %s: %s", 1, "refused")
    logger.error("something else")
    now[0] = 12.0
    logger.error("Unable connect to node with id %s: %s", 1, "refused")
    assert seen == ["Unable connect to node with id 1: refused", "something else",
                    "Unable connect to node with id 1: refused (and 2999 more like it in the "
                    "last 10 s)"]
