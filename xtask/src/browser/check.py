"""whmtoken report's page in headless Chromium, driven by Selenium (cargo xtask browser
and cargo xtask bench report).

usage: check.py CHROMIUM CHROMEDRIVER PAGE SCREENSHOT [EDGE]

Opens the page, and checks: no console error; the chart and the findings table are drawn
in the first screen (a screenshot of it is saved); filtering by severity and sorting by
server change the rows shown; the server that could not be audited (MISSING) is shown;
text is found as shown (across a user's name and the rest of the message, quotes
included, regardless of case); the token named as markup is shown as text and no script of
it ran; each table's header over its columns at two widths, rows 24 px high, cells cut
short titled with their whole text; the opened server's findings; the chart's labels; and
on EDGE (one server, no account, no finding) singular words and empty tables that say
so. Prints one JSON object: the times measured in the page (milliseconds), or the
first check that failed (exit status 1).
"""

import json
import sys
import time

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
window.__start = performance.now();
%s
return performance.now() - window.__start;
"""



def fail(what, **details):
    print(json.dumps(dict(ok=False, error=what, **details)))
    sys.exit(1)


def main():
    chromium, chromedriver, page, screenshot = sys.argv[1:5]
    edge = sys.argv[5] if len(sys.argv) > 5 else None
    options = Options()
    options.binary_location = chromium
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1700"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        if edge:
            check_edge(driver, edge)
        check(driver, page, screenshot)
    finally:
        driver.quit()


def settle(driver, timeout=120):
    """Waits until the page's search is done; returns the ms since window.__start."""
    end = time.time() + timeout
    while driver.execute_script("return document.documentElement.dataset.searching === '1'"):
        if time.time() > end:
            fail("a search did not finish")
        time.sleep(0.02)
    return driver.execute_script("return performance.now() - (window.__start || 0)")


def check(driver, page, screenshot):
    driver.set_page_load_timeout(300)
    driver.set_script_timeout(120)
    driver.get("file://" + page)
    # The page notes when its script had drawn the first screen (totals, chart, servers),
    # the next frame, and when the findings, read after, were drawn.
    ready = driver.execute_script("return Number(document.documentElement.dataset.ready)")
    painted = driver.execute_script("return Number(document.documentElement.dataset.painted)")
    if not ready:
        fail("the page's script did not finish")
    end = time.time() + 120
    while not driver.execute_script("return document.documentElement.dataset.findings"):
        if time.time() > end:
            fail("the findings were never drawn")
        time.sleep(0.02)
    findings_ms = driver.execute_script("return Number(document.documentElement.dataset.findings)")
    settle(driver)
    bars = driver.execute_script("return document.querySelectorAll('#chart rect').length")
    in_view = driver.execute_script(
        "return ['#chart svg', '#servers .tr', '#findings .tr'].every((s) => {"
        " const r = document.querySelector(s).getBoundingClientRect();"
        " return r.height > 0 && r.bottom <= innerHeight; })")
    rows = driver.execute_script(ROWS, "#findings")
    if bars == 0 or not rows or not in_view:
        fail("the chart, the servers and the findings table should be drawn in the first screen",
             bars=bars, rows=len(rows), in_view=in_view)
    driver.save_screenshot(screenshot)
    layout(driver, screenshot)

    # Filter by severity: only critical rows, and not the same rows.
    filter_ms = driver.execute_script(TIMED % """
const s = document.getElementById('severity');
s.value = '0';
s.dispatchEvent(new Event('change'));""")
    filter_done_ms = settle(driver)
    critical = driver.execute_script(ROWS, "#findings")
    if not critical or critical == rows or any(r[2] != "critical" for r in critical):
        fail("filtering by severity should show critical rows only", rows=critical[:5])
    driver.execute_script("""
const s = document.getElementById('severity'); s.value = ''; s.dispatchEvent(new Event('change'));""")
    settle(driver)

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

    # The chart names the servers with the most left to convert, and each bar its counts.
    labels = driver.execute_script("""
return [Array.from(document.querySelectorAll('#laggards button'), (b) => b.textContent),
  document.querySelector('#chart g title').textContent];""")
    if not labels[0] or " account" not in labels[1]:
        fail("the chart's servers should be named, with their accounts", labels=labels)

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
        first = driver.execute_script(TIMED % ("""
const box = document.getElementById('text'); box.value = %s;
document.getElementById('severity').dispatchEvent(new Event('change'));""" % json.dumps(query)))
        text_ms.append([first, settle(driver)])
        found = driver.execute_script(ROWS, "#findings")
        if not found or any(r[column] != expected or query.lower() not in r[5].lower()
                            for r in found):
            fail("the text filter should find the text as shown", query=query, rows=found[:3])
    driver.execute_script("""
const t = document.getElementById('text'); t.value = '';
document.getElementById('severity').dispatchEvent(new Event('change'));""")
    settle(driver)

    # The markup-named token, shown as text, never run.
    driver.execute_script("""
const t = document.getElementById('text'); t.value = 'pwned'; t.dispatchEvent(new Event('input'));""")
    driver.execute_async_script("setTimeout(arguments[arguments.length - 1], 400)")
    hostile = driver.execute_script(ROWS, "#findings")
    if not hostile or any(r[4] != HOSTILE or HOSTILE not in r[5] for r in hostile):
        fail("the token named as markup should be shown as text", rows=hostile[:3])
    driver.execute_script("document.querySelector('#findings .tr').click()")
    end = time.time() + 10
    tokens = []
    while not tokens and time.time() < end:
        time.sleep(0.05)
        tokens = driver.execute_script(ROWS, "#accounts")
    if not any(HOSTILE in cell for row in tokens for cell in row):
        fail("the server's accounts should show the token named as markup as text")
    own = driver.execute_script(ROWS, "#server-findings")
    if not own or not any(HOSTILE in row[3] for row in own):
        fail("the server opened should show its findings", rows=own[:3])
    ran = driver.execute_script("return [window.pwned, document.querySelectorAll('img').length]")
    if ran != [None, 0]:
        fail("a script of the token's name ran, or its markup was parsed", ran=ran)

    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    if errors:
        fail("the console has errors", errors=errors)
    print(json.dumps(dict(ok=True, ready_ms=ready, painted_ms=painted, findings_ms=findings_ms,
                          filter_ms=filter_ms, filter_done_ms=filter_done_ms,
                          sort_ms=sort_ms, text_ms=text_ms, findings=len(rows))))


def layout(driver, screenshot):
    """At a wide and a narrow width: each header cell over its column, rows 24 px high,
    every cell cut short titled with its whole text (and, narrow, some cut)."""
    for width in [1280, 760]:
        driver.set_window_size(width, 1700)
        driver.execute_script("window.dispatchEvent(new Event('resize'))")
        time.sleep(0.3)
        found = driver.execute_script("""
const out = [];
for (const t of ['#servers', '#findings']) {
  const heads = Array.from(document.querySelectorAll(t + ' .th'), (h) => h.getBoundingClientRect());
  const row = document.querySelector(t + ' .tr:not([hidden])');
  const cells = Array.from(row.children, (c) => c.getBoundingClientRect());
  heads.forEach((h, i) => {
    if (Math.abs(h.left - cells[i].left) > 0.5 || Math.abs(h.width - cells[i].width) > 0.5) {
      out.push(['misaligned', t, i, h.left, h.width, cells[i].left, cells[i].width]);
    }
  });
  for (const r of document.querySelectorAll(t + ' .tr:not([hidden])')) {
    if (r.getBoundingClientRect().height !== 24) out.push(['height', t, r.getBoundingClientRect().height]);
  }
}
let cut = 0;
for (const c of document.querySelectorAll('.tr:not([hidden]) .td')) {
  if (c.scrollWidth > c.clientWidth) {
    cut++;
    if (c.title !== c.textContent) out.push(['untitled', c.textContent]);
  }
}
return [out, cut];""")
        if found[0] or (width < 1000 and not found[1]):
            fail("the tables' layout", width=width, problems=found[0][:5], cut=found[1])
        if width < 1000:
            driver.save_screenshot(screenshot.replace(".png", "-narrow.png"))
    driver.set_window_size(1280, 1700)
    driver.execute_script("window.dispatchEvent(new Event('resize'))")


def check_edge(driver, page):
    """A fleet of one server with no account and no finding: singular words, and each
    empty table says why."""
    driver.get("file://" + page)
    end = time.time() + 60
    while not driver.execute_script("return document.documentElement.dataset.findings"):
        if time.time() > end:
            fail("edge page: the findings were never drawn")
        time.sleep(0.02)
    settle(driver)
    driver.execute_script("document.querySelector('#servers .tr').click();")
    wanted = ["1 server.", "No findings", "The audit found no account on this server.",
              "No findings on this server."]
    end = time.time() + 10
    while True:
        # The server's accounts are read (decompressed) after the click.
        texts = driver.execute_script("""
return ['generated', 'server-count', 'finding-count'].map((id) => document.getElementById(id).textContent)
  .concat(Array.from(document.querySelectorAll('.table .empty:not([hidden])'), (e) => e.textContent));""")
        joined = " | ".join(texts)
        if all(w in joined for w in wanted) or time.time() > end:
            break
        time.sleep(0.05)
    if "1 servers" in joined or any(w not in joined for w in wanted):
        fail("edge page: singular words and empty tables that say so", texts=texts)


if __name__ == "__main__":
    main()
