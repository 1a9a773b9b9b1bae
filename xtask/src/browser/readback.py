"""whmtoken report's CSV and JSON Lines read back with Python's csv and json modules
(cargo xtask browser).

usage: readback.py CSV JSONL FINDINGS ACCOUNTS TOKEN

Checks the header, that there is one CSV row and one JSON Lines object per finding and one
object per account, each with exactly its fields, and that TOKEN (a name that is markup)
came back whole. Exit status 1, with the reason, when not.
"""

import csv
import json
import sys

csv_file, jsonl_file, findings, accounts, token = sys.argv[1:6]
findings, accounts = int(findings), int(accounts)

with open(csv_file, newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
if rows[0] != ["host", "user", "severity", "code", "token", "message"]:
    sys.exit("CSV header: %r" % rows[0])
if len(rows) - 1 != findings or any(len(r) != 6 for r in rows):
    sys.exit("CSV: %d rows for %d findings" % (len(rows) - 1, findings))
if not any(r[4] == token and token in r[5] for r in rows):
    sys.exit("CSV: the token named as markup did not come back whole")

kinds = {"account": ["kind", "host", "user", "accesshash", "tokens", "last_used"],
         "finding": ["kind", "host", "user", "severity", "code", "token", "message"]}
seen = {"account": 0, "finding": 0}
with open(jsonl_file, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
        item = json.loads(line)
        if list(item) != kinds[item["kind"]]:
            sys.exit("JSON Lines line %d: fields %r" % (number, list(item)))
        seen[item["kind"]] += 1
if seen != {"account": accounts, "finding": findings}:
    sys.exit("JSON Lines: %r for %d accounts and %d findings" % (seen, accounts, findings))
print("csv and jsonl read back: %d findings, %d accounts" % (findings, accounts))
