#!/usr/bin/env python3
"""Scrape xennetd's metrics endpoint and parse it with the Python
Prometheus client's own parsers, for tests/metrics.rs.

usage: prom_scrape.py URL openmetrics|prometheus

`openmetrics` asks for the OpenMetrics 1.0 text format (as Prometheus
does) and parses it with `prometheus_client.openmetrics.parser`, which is
strict (`# EOF`, counters' `_total`, family order); `prometheus` asks for
the text format 0.0.4 and parses it with `prometheus_client.parser`.
Prints one JSON object: {"content_type": ..., "families": [{"name",
"type", "help", "samples": [{"name", "labels", "value"}]}]}. Any failure
(HTTP error, wrong content type, parse error) exits non-zero with the
reason on stderr.
"""
import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import (
    text_string_to_metric_families as parse_prometheus,
)

ACCEPT = {
    "openmetrics": "application/openmetrics-text;version=1.0.0,"
    "text/plain;version=0.0.4;q=0.5",
    "prometheus": "text/plain;version=0.0.4",
}
WANT_TYPE = {
    "openmetrics": "application/openmetrics-text",
    "prometheus": "text/plain",
}


def main():
    url, fmt = sys.argv[1], sys.argv[2]
    req = urllib.request.Request(url, headers={"Accept": ACCEPT[fmt]})
    with urllib.request.urlopen(req, timeout=10) as r:
        ctype = r.headers.get("Content-Type", "")
        text = r.read().decode("utf-8")
    if not ctype.startswith(WANT_TYPE[fmt]):
        sys.exit(f"asked for {fmt}, got Content-Type {ctype!r}")
    parse = parse_openmetrics if fmt == "openmetrics" else parse_prometheus
    families = []
    for fam in parse(text):
        families.append(
            {
                "name": fam.name,
                "type": fam.type,
                "help": fam.documentation,
                "samples": [
                    {"name": s.name, "labels": s.labels, "value": s.value}
                    for s in fam.samples
                ],
            }
        )
    json.dump({"content_type": ctype, "families": families}, sys.stdout)


if __name__ == "__main__":
    main()
