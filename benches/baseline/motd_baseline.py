#!/usr/bin/env python3
"""The baseline statusmotd is measured against: what a site writes without it.

Fetches summary.json with requests, matches component groups to clusters by
name, renders one Jinja2 MOTD per cluster, writes it and sets its mtime to the
newest updated_at among what it shows. Deliberately the straightforward
script, not a strawman: one fetch, one pass, no fsync.

usage: motd_baseline.py URL CLUSTERS_JSON OUT_DIR
CLUSTERS_JSON maps a cluster name to the list of its group names.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import requests

TEMPLATE = jinja2.Template(
    """{% if incidents or maintenances or degraded -%}
== {{ cluster }}: {{ status }} ==
{% for i in incidents -%}
[INCIDENT] {{ i.name }} ({{ i.status }})
{% if i.incident_updates %}  {{ i.incident_updates[0].body | replace("<br />", "\\n  ") | truncate(300) }}
{% endif %}  Updated {{ i.updated_at }} - {{ i.shortlink }}
{% endfor -%}
{% for m in maintenances -%}
[MAINTENANCE] {{ m.name }} ({{ m.scheduled_for }} - {{ m.scheduled_until }})
{% endfor -%}
{% if degraded %}Not operational: {{ degraded | join(", ") }}
{% endif -%}
{% endif -%}
"""
)


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def main():
    url, clusters_file, out = sys.argv[1:4]
    with open(clusters_file) as f:
        clusters = json.load(f)
    summary = requests.get(url.rstrip("/") + "/api/v2/summary.json", timeout=10).json()
    groups = {c["name"]: c for c in summary["components"] if c.get("group")}
    for cluster, names in clusters.items():
        ids = set()
        for name in names:
            ids.update(groups[name]["components"])

        def concerns(item):
            affected = {c["id"] for c in item.get("components") or []}
            return not affected or bool(affected & ids)

        incidents = [i for i in summary["incidents"] if concerns(i)]
        maintenances = [m for m in summary["scheduled_maintenances"] if concerns(m)]
        degraded = [
            c["name"]
            for c in summary["components"]
            if c["id"] in ids and c["status"] != "operational"
        ]
        status = "Operational" if not (incidents or degraded) else "Degraded"
        text = TEMPLATE.render(
            cluster=cluster,
            status=status,
            incidents=incidents,
            maintenances=maintenances,
            degraded=degraded,
        )
        path = os.path.join(out, cluster, "motd")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        times = [ts(i["updated_at"]) for i in incidents + maintenances if i.get("updated_at")]
        if times:
            os.utime(path, (max(times), max(times)))


if __name__ == "__main__":
    main()
