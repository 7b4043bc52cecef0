#!/usr/bin/env python3
"""Turns compare.py's JSON into the README's performance table: per case, strata's and
BuildKit's times and their ratio for each phase, then the median ratio per phase."""
import json, statistics, sys, datetime

results = json.load(open(sys.argv[1]))
version = sys.argv[2] if len(sys.argv) > 2 else "?"
phases = ["cold_s", "warm_s", "edit_s", "push_s"]
print(f"Measured {datetime.date.today()} against BuildKit {version} (dockerd 26), same machine, same run.\n")
print("| case | " + " | ".join(f"{p[:-2]} strata / BuildKit" for p in phases) + " | identical |")
print("|---|" + "---|" * (len(phases) + 1))
ratios = {p: [] for p in phases}
for r in results:
    s, b = r["builders"].get("candidate", {}), r["builders"].get("buildkit", {})
    cells = []
    for p in phases:
        if p in s and p in b and b[p] > 0:
            ratios[p].append(s[p] / b[p])
            cells.append(f"{s[p]:.2f}s / {b[p]:.2f}s = **{s[p] / b[p]:.2f}×**")
        else:
            cells.append("–")
    same = "error" if "error" in s else ("yes" if s.get("fs_diff_count") == 0 and s.get("config_diff_count") == 0 else "no")
    print(f"| {r['case']} | " + " | ".join(cells) + f" | {same} |")
print("| **median** | " + " | ".join(f"**{statistics.median(ratios[p]):.2f}×**" if ratios[p] else "–" for p in phases) + " | |")
