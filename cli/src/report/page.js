// whmtoken report's page: totals, a chart per server, and tables that draw only the rows
// in view. Every text from the servers is set with textContent, never parsed as HTML.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const D = JSON.parse($("fleet").textContent);
  const S = D.servers;
  const F = D.findings;
  const N = F.server.length;
  const fServer = Uint32Array.from(F.server);
  const fUser = Int32Array.from(F.user);
  const fSev = Uint8Array.from(F.severity);
  const fCode = Uint32Array.from(F.code);
  const fToken = Int32Array.from(F.token);
  const fMsg = Uint32Array.from(F.message);
  D.findings = null;
  const num = (n) => n.toLocaleString("en");
  // "1 server", "2 servers".
  const count = (n, one, many) => num(n) + " " + (n === 1 ? one : many || one + "s");
  const M = D.missing || [];
  const date = (t) => (t === null || t === undefined) ? "" :
    new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  const userOf = (i) => fUser[i] >= 0 ? D.users[fUser[i]] : "";
  const tokenOf = (i) => fToken[i] >= 0 ? D.tokens[fToken[i]] : "";
  const messageOf = (i) => D.messages[fMsg[i]]
    .replace("\u0001", () => userOf(i)).replace("\u0002", () => tokenOf(i));
  const byText = (a, b) => a < b ? -1 : a > b ? 1 : 0;
  const hostOrder = S.map((_, i) => i).sort((a, b) => byText(S[a].host, S[b].host));
  const hostRank = new Uint32Array(S.length);
  hostOrder.forEach((s, rank) => { hostRank[s] = rank; });

  $("generated").textContent = "Generated " + date(D.generated) + " from the audits of " +
    count(S.length, "server") + "." + (M.length ? " " + count(M.length, "server") +
    " could not be audited." : "");

  // Totals and progress.
  const sum = (key) => S.reduce((n, s) => n + s[key], 0);
  const notConverted = sum("not_converted"), converted = sum("converted"), retired = sum("retired");
  const accepting = S.filter((s) => s.accepting).length;
  const card = (label, value, cls) => {
    const c = el("div", "card " + cls);
    c.append(el("div", "value", num(value)), el("div", "label", label));
    $("totals").append(c);
  };
  if (M.length) {
    card(M.length === 1 ? "server not audited" : "servers not audited", M.length, "bad");
    $("missing").hidden = false;
    $("missing-title").textContent = "Not audited: " + count(M.length, "server");
    for (const host of M) $("missing-list").append(el("li", "", host));
  }
  card(S.length === 1 ? "server" : "servers", S.length, "");
  card("servers accepting access hashes", accepting, accepting ? "bad" : "good");
  card("accounts with an access hash not converted", notConverted, notConverted ? "bad" : "good");
  card("converted", converted, "");
  card("retired", retired, "good");
  D.severities.forEach((sev) => card(sev + " findings", sum(sev), "sev-" + sev));
  const all = notConverted + converted + retired;
  const done = all ? (converted + retired) / all : 1;
  const progress = el("div", "progress");
  const bar = progress.appendChild(el("div", "bar"));
  bar.style.width = (100 * done).toFixed(1) + "%";
  const pct = (x) => (100 * x).toFixed(1) + "%";
  $("totals").append(progress, el("p", "progress-label", pct(done) +
    " of access hashes converted or retired (" + pct(all ? retired / all : 0) + " retired); " +
    num(S.length - accepting) + " of " + count(S.length, "server") + " " +
    (S.length - accepting === 1 ? "refuses" : "refuse") + " access hashes."));

  // The chart: one stacked bar per server, in host order.
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  const H = 100;
  svg.setAttribute("viewBox", "0 0 " + Math.max(S.length, 1) + " " + H);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Accounts retired, converted and not converted, per server");
  const parts = [["retired", "retired"], ["converted", "converted"], ["not_converted", "not-converted"]];
  hostOrder.forEach((s, x) => {
    const r = S[s];
    const g = document.createElementNS(NS, "g");
    const title = document.createElementNS(NS, "title");
    title.textContent = r.host + ": " + r.retired + " retired, " + r.converted + " converted, " +
      r.not_converted + " not converted";
    g.append(title);
    const total = r.not_converted + r.converted + r.retired || 1;
    let y = H;
    for (const [key, cls] of parts) {
      const h = H * r[key] / total;
      if (h <= 0) continue;
      const rect = document.createElementNS(NS, "rect");
      rect.setAttribute("x", x + (S.length > 200 ? 0 : 0.1));
      rect.setAttribute("width", S.length > 200 ? 1 : 0.8);
      rect.setAttribute("y", y - h);
      rect.setAttribute("height", h);
      rect.setAttribute("class", cls);
      g.append(rect);
      y -= h;
    }
    svg.append(g);
  });
  $("chart").append(svg);
  for (const [, cls] of parts) {
    $("legend").append(el("span", "key " + cls), cls.replace("-", " "));
  }

  // A table that draws only the rows in view (the scroll height is capped; past it the
  // scroll position is scaled to the rows).
  const ROW = 24, MAX_HEIGHT = 8e6;
  function table(root, columns, onRow) {
    const head = el("div", "head"), view = el("div", "view");
    const spacer = el("div", "spacer"), rows = el("div", "rows");
    view.append(spacer, rows);
    root.append(head, view);
    const t = { n: 0, cell: () => "", rowClass: () => "", onSort: null };
    const pool = [];
    columns.forEach((c, i) => {
      const b = el("button", "th", c.title);
      b.type = "button";
      b.style.flex = c.flex;
      if (c.sort) {
        b.addEventListener("click", () => {
          const desc = b.getAttribute("aria-sort") === "ascending";
          head.querySelectorAll(".th").forEach((x) => x.removeAttribute("aria-sort"));
          b.setAttribute("aria-sort", desc ? "descending" : "ascending");
          t.onSort(i, desc);
        });
      } else {
        b.disabled = true;
      }
      head.append(b);
    });
    t.draw = () => {
      const h = view.clientHeight, full = t.n * ROW, virtual = Math.min(full, MAX_HEIGHT);
      const scale = virtual > h ? (full - h) / (virtual - h) : 1;
      const top = view.scrollTop * scale;
      const first = Math.floor(top / ROW);
      const count = Math.max(Math.min(Math.ceil(h / ROW) + 1, t.n - first), 0);
      rows.style.transform = "translateY(" + (view.scrollTop - (top - first * ROW)) + "px)";
      while (pool.length < count) {
        const r = el("div", "tr");
        columns.forEach((c) => { r.appendChild(el("div", "td")).style.flex = c.flex; });
        r.addEventListener("click", () => onRow(Number(r.dataset.row)));
        rows.append(r);
        pool.push(r);
      }
      pool.forEach((r, k) => {
        r.hidden = k >= count;
        if (r.hidden) return;
        const row = first + k;
        r.dataset.row = row;
        r.className = "tr " + t.rowClass(row);
        columns.forEach((_, j) => { r.children[j].textContent = t.cell(row, j); });
      });
    };
    t.set = (n, cell, rowClass) => {
      t.n = n;
      t.cell = cell;
      t.rowClass = rowClass || (() => "");
      spacer.style.height = Math.min(n * ROW, MAX_HEIGHT) + "px";
      view.style.height = Math.min(360, Math.max(n, 1) * ROW + 2) + "px";
      view.scrollTop = 0;
      t.draw();
    };
    let pending = false;
    view.addEventListener("scroll", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; t.draw(); });
    });
    window.addEventListener("resize", () => t.draw());
    return t;
  }

  // Servers.
  const serverColumns = [
    ["Server", 3, (r) => r.host], ["Accepts access hashes", 1.4, (r) => r.accepting ? "yes" : "no"],
    ["Accounts", 1, (r) => r.accounts], ["Not converted", 1, (r) => r.not_converted],
    ["Converted", 1, (r) => r.converted], ["Retired", 1, (r) => r.retired],
    ["Critical", 1, (r) => r.critical], ["Warning", 1, (r) => r.warning], ["Info", 1, (r) => r.info],
    ["Logs since", 1.6, (r) => r.usage_from === null ? "" : r.usage_from],
  ];
  let serverRows = hostOrder.slice(), serverSort = null;
  const servers = table($("servers"),
    serverColumns.map(([title, flex]) => ({ title, flex, sort: true })),
    (row) => openServer(serverRows[row]));
  const showServers = () => {
    const q = $("server-text").value.trim().toLowerCase();
    serverRows = hostOrder.filter((s) => !q || S[s].host.toLowerCase().includes(q));
    if (serverSort) {
      const [col, desc] = serverSort, key = serverColumns[col][2];
      serverRows.sort((a, b) => (desc ? -1 : 1) * byText(key(S[a]), key(S[b])));
    }
    $("server-count").textContent = num(serverRows.length) + " of " + count(S.length, "server") +
      (S.length ? "; open one for its accounts, tokens and findings." : ": no audit document.");
    servers.set(serverRows.length, (row, col) => {
      const r = S[serverRows[row]], value = serverColumns[col][2](r);
      return col === 9 ? date(value === "" ? null : value) : String(value);
    });
  };
  servers.onSort = (col, desc) => { serverSort = [col, desc]; showServers(); };
  $("server-text").addEventListener("input", showServers);
  showServers();

  // One server's accounts and tokens, parsed when it is opened.
  const accounts = table($("accounts"), ["Account / token", "Access hash / key", "Created",
    "Expires", "Access", "Last use"].map((title, i) => ({ title, flex: [2, 1.2, 1.3, 1.5, 2, 3][i], sort: false })), () => {});
  function openServer(s) {
    const r = S[s];
    const element = $("server-" + s);
    $("drill").hidden = false;
    if (!element) {
      $("drill-title").textContent = r.host + ": still loading, open it again in a moment";
      return;
    }
    // [user, state, last use, tokens]; a token [name, key prefix, created, expires,
    // expired, full access, ACLs, allow-list, from the access hash, last use].
    const list = JSON.parse(element.textContent);
    const rows = [];
    for (const a of list) {
      rows.push([a, null]);
      for (const t of a[3]) rows.push([a, t]);
    }
    const noLogs = r.usage_from === null;
    const used = (u) => u ? date(u[0]) + " from " + u[1] + (u[2] ? " “" + u[2] + "”" : "") :
      noLogs ? "unknown (no logs read)" : "not used since " + date(r.usage_from);
    $("drill-title").textContent = r.host + ": " + num(list.length) + " accounts";
    $("drill-usage").textContent = noLogs ? "The audit read no logs: last uses are unknown." :
      "Last uses from cPanel's logs since " + date(r.usage_from) +
      (r.usage_complete ? " (complete)." : " (incomplete: the logs begin later).");
    accounts.set(rows.length, (row, col) => {
      const [a, t] = rows[row];
      if (!t) {
        return [a[0], a[1].replace("_", " "), "", "", "", a[1] === "none" ? "" : used(a[2])][col];
      }
      const access = t[5] ? "full access" : (t[6] || []).join(", ");
      const from = t[7] ? "; from " + (t[7].join(", ") || "no address") : "";
      return ["   token “" + t[0] + "”", t[1], date(t[2]),
        t[3] === null ? "never" : date(t[3]) + (t[4] ? " (expired)" : ""),
        access + from, used(t[9])][col];
    }, (row) => rows[row][1] ? "token" : "");
    $("drill").scrollIntoView();
  }

  // Findings: filtered by severity, code and text, sorted by counting on the ranks the
  // page was written with (the string tables are sorted).
  D.severities.forEach((sev, i) => $("severity").append(new Option(sev, String(i))));
  const codeCounts = new Uint32Array(D.codes.length);
  for (let i = 0; i < N; i++) codeCounts[fCode[i]]++;
  D.codes.forEach((code, i) => $("code").append(new Option(code + " (" + num(codeCounts[i]) + ")", String(i))));
  const keys = [
    [(i) => hostRank[fServer[i]], S.length], [(i) => fUser[i] + 1, D.users.length + 1],
    [(i) => fSev[i], 3], [(i) => fCode[i], D.codes.length],
    [(i) => fToken[i] + 1, D.tokens.length + 1], [(i) => fMsg[i], D.messages.length],
  ];
  function countingSort(list, col, desc) {
    const [key, range] = keys[col];
    const at = new Uint32Array(range + 1);
    const k = (i) => desc ? range - 1 - key(i) : key(i);
    for (let j = 0; j < list.length; j++) at[k(list[j]) + 1]++;
    for (let r = 1; r <= range; r++) at[r] += at[r - 1];
    const out = new Uint32Array(list.length);
    for (let j = 0; j < list.length; j++) out[at[k(list[j])]++] = list[j];
    return out;
  }
  let shown = new Uint32Array(0), findingSort = null;
  const lower = {};
  const hits = (name, strings, q) => {
    lower[name] = lower[name] || strings.map((s) => s.toLowerCase());
    return Uint8Array.from(lower[name], (s) => s.includes(q) ? 1 : 0);
  };
  const findings = table($("findings"), ["Server", "User", "Severity", "Code", "Token", "Message"]
    .map((title, i) => ({ title, flex: [1.6, 1.2, 0.8, 1.6, 1.6, 5][i], sort: true })),
    (row) => openServer(fServer[shown[row]]));
  const drawFindings = () => {
    $("finding-count").textContent = !N ? "No findings: nothing to fix on the servers audited." :
      num(shown.length) + " of " + count(N, "finding") + (shown.length ? "" : ": none matches the filters.");
    findings.set(shown.length, (row, col) => {
      const i = shown[row];
      return [S[fServer[i]].host, userOf(i), D.severities[fSev[i]], D.codes[fCode[i]], tokenOf(i), messageOf(i)][col];
    }, (row) => D.severities[fSev[shown[row]]]);
  };
  // A message template's hit for the query q, on the text as shown: 1 when its own text
  // has q, 2 when q could span a name put in it (q has a character next to where a name
  // goes), so that each finding's message must be tested whole, 0 otherwise.
  const messageHits = (q) => {
    lower.message = lower.message || D.messages.map((s) => s.toLowerCase());
    return Uint8Array.from(lower.message, (m) => {
      const parts = m.split(/[\u0001\u0002]/);
      if (parts.some((p) => p.includes(q))) return 1;
      if (parts.length === 1) return 0;
      for (let k = 0; k < parts.length; k++) {
        const p = parts[k];
        if ((k > 0 && p && q.includes(p[0])) || (k < parts.length - 1 && p && q.includes(p[p.length - 1]))) return 2;
      }
      // Names next to each other, or a name alone: q spans them only if it has none of
      // the template's text; tested whole.
      return parts.some((p, k) => !p && k > 0 && k < parts.length - 1) ? 2 : 0;
    });
  };
  const shownLower = (i) => lower.message[fMsg[i]]
    .replace("\u0001", () => fUser[i] >= 0 ? lower.user[fUser[i]] : "")
    .replace("\u0002", () => fToken[i] >= 0 ? lower.token[fToken[i]] : "");
  function filterFindings() {
    const sev = $("severity").value === "" ? -1 : Number($("severity").value);
    const code = $("code").value === "" ? -1 : Number($("code").value);
    const q = $("text").value.trim().toLowerCase();
    let host, user, token, message;
    if (q) {
      host = hits("host", S.map((s) => s.host), q);
      user = hits("user", D.users, q);
      token = hits("token", D.tokens, q);
      message = messageHits(q);
    }
    const out = new Uint32Array(N);
    let m = 0;
    for (let i = 0; i < N; i++) {
      if (sev >= 0 && fSev[i] !== sev) continue;
      if (code >= 0 && fCode[i] !== code) continue;
      if (q && !(host[fServer[i]] || message[fMsg[i]] === 1 || (fUser[i] >= 0 && user[fUser[i]]) ||
        (fToken[i] >= 0 && token[fToken[i]]) ||
        (message[fMsg[i]] === 2 && shownLower(i).includes(q)))) continue;
      out[m++] = i;
    }
    shown = out.subarray(0, m);
    if (findingSort) shown = countingSort(shown, findingSort[0], findingSort[1]);
    drawFindings();
  }
  findings.onSort = (col, desc) => {
    findingSort = [col, desc];
    shown = countingSort(shown, col, desc);
    drawFindings();
  };
  $("severity").addEventListener("change", filterFindings);
  $("code").addEventListener("change", filterFindings);
  let typing = 0;
  $("text").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(filterFindings, 150);
  });
  filterFindings();
  // When the first screen was ready, and when it was next drawn (read by cargo xtask bench).
  document.documentElement.dataset.ready = String(performance.now());
  requestAnimationFrame(() => {
    document.documentElement.dataset.painted = String(performance.now());
  });
})();
