"""Calls a fake WHM with pycpanel, as a billing module would: reads the applist.

Usage: client.py URL USER < secret. Prints the applist as JSON and exits 0, or prints
`refused: MESSAGE` and exits 3 when pycpanel reports the server refused it.
"""
import json
import sys

import pycpanel

url, user = sys.argv[1], sys.argv[2]
secret = sys.stdin.read()
# pycpanel's ports are fixed (2086/2087): point its base URL at the chosen port instead.
conn = pycpanel.conn("127.0.0.1", username=user, hash=secret,
                     ssl=url.startswith("https:"), check_conn=False)
conn.hostname = url.rstrip("/") + "/"
try:
    apps = conn.json_list()
except Exception as e:  # pycpanel raises a bare Exception on HTTP 403
    print("refused: %s" % e)
    sys.exit(3)
print(json.dumps(apps))
