"""whmtoken report's page in headless Chromium, driven by Selenium (cargo xtask browser
and cargo xtask bench report).

usage: check.py CHROMIUM CHROMEDRIVER PAGE SCREENSHOT

Opens the page, and checks: no console error; the chart and the findings table are drawn
in the first screen (a screenshot of it is saved); filtering by severity and sorting by
server change the rows shown; the server that could not be audited (MISSING) is shown;
text is found as shown (across a user's name and the rest of the message, quotes
included, regardless of case); the token named as markup is shown as text and no script of
it ran. Prints one JSON object: the times measured in the page (milliseconds), or the
first check that failed (exit status 1).
"""

import json
import sys

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

MISSING = "cp9999.example.net"
HOSTILE = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"

# The rows drawn in a table: each row's cells' text.
ROWS = """
return Array.from(document.querySelectorAll(arguments[0] + ' .tr:not([hidden])'),
  (r) => Array.from(r.children, (c) => c.textContent));
"""

# Runs an action in the page and returns how long it took, drawing included (ms).
TIMED = """
const t = performance.now();
%s
return performance.now() - t;
"""



def fail(what, **details):
    print(json.dumps(dict(ok=False, error=what, **details)))
    sys.exit(1)


def main():
    chromium, chromedriver, page, screenshot = sys.argv[1:5]
    options = Options()
    options.binary_location = chromium
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1700"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        check(driver, page, screenshot)
    finally:
        driver.quit()


def check(driver, page, screenshot):
    driver.set_page_load_timeout(300)
    driver.set_script_timeout(120)
    driver.get("file://" + page)
    # The page notes when its script had drawn the first screen, and the next frame.
    ready = driver.execute_script("return Number(document.documentElement.dataset.ready)")
    painted = driver.execute_script("return Number(document.documentElement.dataset.painted)")
    if not ready:
        fail("the page's script did not finish")
    bars = driver.execute_script("return document.querySelectorAll('#chart rect').length")
    in_view = driver.execute_script(
        "return ['#chart svg', '#findings .tr'].every((s) => {"
        " const r = document.querySelector(s).getBoundingClientRect();"
        " return r.height > 0 && r.bottom <= innerHeight; })")
    rows = driver.execute_script(ROWS, "#findings")
    if bars == 0 or not rows or not in_view:
        fail("the chart and the findings table should be drawn in the first screen",
             bars=bars, rows=len(rows), in_view=in_view)
    driver.save_screenshot(screenshot)

    # Filter by severity: only critical rows, and not the same rows.
    filter_ms = driver.execute_script(TIMED % """
const s = document.getElementById('severity');
s.value = '0';
s.dispatchEvent(new Event('change'));""")
    critical = driver.execute_script(ROWS, "#findings")
    if not critical or critical == rows or any(r[2] != "critical" for r in critical):
        fail("filtering by severity should show critical rows only", rows=critical[:5])
    driver.execute_script("""
const s = document.getElementById('severity'); s.value = ''; s.dispatchEvent(new Event('change'));""")

    # Sort by server, ascending then descending: the first row's server changes.
    sort_ms = driver.execute_script(TIMED % "document.querySelector('#findings .th').click();")
    ascending = driver.execute_script(ROWS, "#findings")
    driver.execute_script("document.querySelector('#findings .th').click();")
    descending = driver.execute_script(ROWS, "#findings")
    hosts = driver.execute_script("return JSON.parse(document.getElementById('fleet').textContent)"
                                  ".servers.map((s) => s.host).sort()")
    if ascending[0][0] != hosts[0] or descending[0][0] != hosts[-1]:
        fail("sorting by server should bring the first, then the last server to the top",
             ascending=ascending[0], descending=descending[0], first=hosts[0], last=hosts[-1])

    # The servers that could not be audited: a card and their list, in the first screen.
    missing = driver.execute_script("""
return [document.getElementById('missing').hidden,
  Array.from(document.querySelectorAll('#missing-list li'), (li) => li.textContent),
  Array.from(document.querySelectorAll('#totals .card .label'), (l) => l.textContent)];""")
    if missing[0] or missing[1] != [MISSING] or "server not audited" not in missing[2]:
        fail("the server that could not be audited should be shown", missing=missing)

    # Text is found as shown, across a name and the rest of the message: each answer timed.
    text_ms = []
    for query, column, expected in [("root: access hash", 1, "root"),
                                    ("\u201cbilling-5\u201d", 4, "billing-5"),
                                    ("ROOT: TOKEN \u201cACCESSHASH-", 1, "root")]:
        text_ms.append(driver.execute_script(TIMED % ("""
const box = document.getElementById('text'); box.value = %s;
document.getElementById('severity').dispatchEvent(new Event('change'));""" % json.dumps(query))))
        found = driver.execute_script(ROWS, "#findings")
        if not found or any(r[column] != expected or query.lower() not in r[5].lower()
                            for r in found):
            fail("the text filter should find the text as shown", query=query, rows=found[:3])
    driver.execute_script("""
const t = document.getElementById('text'); t.value = '';
document.getElementById('severity').dispatchEvent(new Event('change'));""")

    # The markup-named token, shown as text, never run.
    driver.execute_script("""
const t = document.getElementById('text'); t.value = 'pwned'; t.dispatchEvent(new Event('input'));""")
    driver.execute_async_script("setTimeout(arguments[arguments.length - 1], 400)")
    hostile = driver.execute_script(ROWS, "#findings")
    if not hostile or any(r[4] != HOSTILE or HOSTILE not in r[5] for r in hostile):
        fail("the token named as markup should be shown as text", rows=hostile[:3])
    driver.execute_script("document.querySelector('#findings .tr').click()")
    tokens = driver.execute_script(ROWS, "#accounts")
    if not any(HOSTILE in cell for row in tokens for cell in row):
        fail("the server's accounts should show the token named as markup as text")
    ran = driver.execute_script("return [window.pwned, document.querySelectorAll('img').length]")
    if ran != [None, 0]:
        fail("a script of the token's name ran, or its markup was parsed", ran=ran)

    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    if errors:
        fail("the console has errors", errors=errors)
    print(json.dumps(dict(ok=True, ready_ms=ready, painted_ms=painted, filter_ms=filter_ms,
                          sort_ms=sort_ms, text_ms=text_ms, findings=len(rows))))


if __name__ == "__main__":
    main()
