#!/usr/bin/env python3
"""Checks the Grafana dashboards offline: valid JSON, unique panel ids/titles, and every
query parses as PromQL (extracted, with Grafana variables replaced by concrete values, and
given to `promtool check rules` as recording rules). Exits non-zero on any problem.
"""
import json
import pathlib
import subprocess
import sys
import tempfile

root = pathlib.Path(__file__).resolve().parent.parent
problems = []
rules = []
for path in sorted((root / "dashboards").glob("*.json")):
    d = json.loads(path.read_text())
    titles = set()
    for p in d.get("panels", []):
        if p.get("type") == "row":
            continue
        t = p.get("title", "")
        if t in titles:
            problems.append(f"{path.name}: duplicate panel title {t!r}")
        titles.add(t)
        for tgt in p.get("targets", []):
            expr = tgt.get("expr", "")
            if not expr:
                problems.append(f"{path.name}: panel {t!r} has a target without expr")
                continue
            concrete = (expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
                        .replace("$namespace", "meshkeeper").replace("${datasource}", "x"))
            if "$" in concrete:
                problems.append(f"{path.name}: panel {t!r}: unknown variable in {expr!r}")
            rules.append({"record": f"dashboard:check:{len(rules)}", "expr": concrete})
    print(f"{path.name}: {len(titles)} panels, {sum(1 for r in rules)} queries so far")

with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    json.dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f)
res = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
if res.returncode != 0:
    problems.append("promtool rejected a query:\n" + res.stdout + res.stderr)
for p in problems:
    print("ERROR:", p)
sys.exit(1 if problems else 0)
