"""What counting costs on the hot path: ``Metrics``' methods against prometheus_client's own
``Counter``/``Histogram``, under ``eventlet.monkey_patch()`` as in the server.

    python benchmarks/metrics_cost.py [--number 200000]

monkey_patch runs before prometheus_client is imported, as in server.py: the library then
takes eventlet's green locks, which is what it would cost inside the server.
"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: E402

from dashstream.ops.metrics import LAG_BUCKETS, Metrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    number = parser.parse_args().number
    metrics = Metrics(process=False, streams=lambda: [{"name": f"s{n}", "subscribers": 100, "last_seq": n}
                                                      for n in range(20)])
    registry = CollectorRegistry()
    counter = Counter("c", "c", registry=registry)
    labelled = Counter("l", "l", ["code"], registry=registry)
    histogram = Histogram("h_seconds", "h", registry=registry, buckets=LAG_BUCKETS)
    from dashstream.messages import Entry

    entry = Entry("s", 1, time.time(), "e", '{"variable":1}')
    calls = {
        "Metrics.fanout_pass(100, entry)": lambda: metrics.fanout_pass(100, entry),
        "Metrics.sent(5, 500)": lambda: metrics.sent(5, 500),
        "Metrics.delivery_lag(0.012, count=100)": lambda: metrics.delivery_lag(0.012, 100),
        "Metrics.close_sent(1001)": lambda: metrics.close_sent(1001),
        "Metrics.dropped(1)": lambda: metrics.dropped(1),
        "prometheus_client Counter.inc()": lambda: counter.inc(),
        "prometheus_client Counter.labels('1001').inc()": lambda: labelled.labels("1001").inc(),
        "prometheus_client Histogram.observe(0.012)": lambda: histogram.observe(0.012),
    }
    print(f"Python {platform.python_version()}, eventlet {eventlet.__version__}, {number} calls each")
    for label, call in calls.items():
        print(f"{timeit.timeit(call, number=number) / number * 1e9:8.0f} ns  {label}")
    scrapes = 200
    seconds = timeit.timeit(lambda: metrics.render(""), number=scrapes) / scrapes
    print(f"{seconds * 1e3:8.2f} ms  one scrape (render) with 20 streams")


if __name__ == "__main__":
    main()
