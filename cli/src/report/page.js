// whmtoken report's page: totals, a chart per server, and tables that draw only the rows
// in view. Every text from the servers is set with textContent, never parsed as HTML.
//
// The first screen (totals, chart, servers) is drawn from the small summary before this
// script; the findings follow it in their own element, read when the browser has parsed
// it; each server's accounts follow those, read when the server is opened.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const root = document.documentElement;
  // An element's text, gzipped JSON in base64, read back: a promise of the value.
  const inflate = (element) => {
    const text = atob(element.textContent);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).json();
  };
  const unreadable = typeof DecompressionStream === "undefined" ?
    "this browser cannot read the page's data (it needs DecompressionStream: Chromium 80, Firefox 113, Safari 16.4 or later)" : "";
  const D = JSON.parse($("fleet").textContent);
  const S = D.servers;
  const M = D.missing || [];
  const num = (n) => n.toLocaleString("en");
  // "1 server", "2 servers".
  const count = (n, one, many) => num(n) + " " + (n === 1 ? one : many || one + "s");
  const date = (t) => (t === null || t === undefined) ? "" :
    new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
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
  card(accepting === 1 ? "server accepting access hashes" : "servers accepting access hashes",
    accepting, accepting ? "bad" : "good");
  card(notConverted === 1 ? "account with an access hash not converted" :
    "accounts with an access hash not converted", notConverted, notConverted ? "bad" : "good");
  card("converted", converted, "");
  card("retired", retired, "good");
  D.severities.forEach((sev) => {
    const n = sum(sev);
    card(sev + (n === 1 ? " finding" : " findings"), n, "sev-" + sev);
  });
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

  // The chart: one stacked bar per server, in host order; each bar's tooltip gives its
  // server and accounts, and the servers with the most accounts left are named below it.
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
    title.textContent = r.host + ": " + count(r.accounts, "account") + ": " + num(r.retired) +
      " retired, " + num(r.converted) + " converted, " + num(r.not_converted) + " not converted";
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
    g.addEventListener("click", () => openServer(s));
    svg.append(g);
  });
  $("chart").append(svg);
  for (const [, cls] of parts) {
    $("legend").append(el("span", "key " + cls), cls.replace("-", " "));
  }
  const laggards = S.map((_, i) => i).filter((i) => S[i].not_converted > 0)
    .sort((a, b) => S[b].not_converted - S[a].not_converted || byText(S[a].host, S[b].host))
    .slice(0, 5);
  if (laggards.length) {
    $("laggards").append("Most access hashes not converted: ");
    laggards.forEach((s, k) => {
      const b = el("button", "link", S[s].host + " (" + num(S[s].not_converted) + " of " +
        count(S[s].accounts, "account") + ")");
      b.type = "button";
      b.addEventListener("click", () => openServer(s));
      if (k) $("laggards").append(", ");
      $("laggards").append(b);
    });
  } else if (S.length) {
    $("laggards").textContent = "No access hash is left to convert.";
  }

  // A table that draws only the rows in view (the scroll height is capped; past it the
  // scroll position is scaled to the rows). Header and rows share one grid of columns,
  // and both keep room for the scrollbar, so that they line up at any width; a cell cut
  // short has its whole text as its title.
  const ROW = 24, MAX_HEIGHT = 8e6;
  function table(root, columns, onRow) {
    root.style.setProperty("--columns",
      columns.map((c) => "minmax(0, " + c.flex + "fr)").join(" "));
    const head = el("div", "head"), view = el("div", "view");
    const spacer = el("div", "spacer"), rows = el("div", "rows");
    const empty = el("p", "empty");
    view.append(spacer, rows);
    root.append(head, view, empty);
    const t = { n: 0, cell: () => "", rowClass: () => "", onSort: null };
    const pool = [];
    columns.forEach((c, i) => {
      const b = el("button", "th", c.title);
      b.type = "button";
      b.title = c.title;
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
        columns.forEach(() => r.appendChild(el("div", "td")));
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
      // Titles after every text is set: one layout for all the cells in view.
      for (let k = 0; k < count; k++) {
        for (const c of pool[k].children) {
          c.title = c.scrollWidth > c.clientWidth ? c.textContent : "";
        }
      }
    };
    // keep: the same rows, more of them (a search going on): the scroll stays.
    t.set = (n, cell, rowClass, emptyText, keep) => {
      t.n = n;
      t.cell = cell;
      t.rowClass = rowClass || (() => "");
      spacer.style.height = Math.min(n * ROW, MAX_HEIGHT) + "px";
      view.style.height = Math.min(360, n * ROW) + "px";
      view.hidden = n === 0;
      empty.hidden = n !== 0;
      empty.textContent = emptyText || "Nothing to show.";
      if (!keep) view.scrollTop = 0;
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
    ["Logs since", 2.4, (r) => r.usage_from === null ? "" : r.usage_from],
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
      (S.length ? "; open one for its accounts, tokens and findings." : ".");
    servers.set(serverRows.length, (row, col) => {
      const r = S[serverRows[row]], value = serverColumns[col][2](r);
      return col === 9 ? date(value === "" ? null : value) :
        typeof value === "number" ? num(value) : String(value);
    }, null, S.length ? "No server's name has that text." : "No audit document was read.");
  };
  servers.onSort = (col, desc) => { serverSort = [col, desc]; showServers(); };
  $("server-text").addEventListener("input", showServers);
  showServers();

  // One server opened: its accounts and tokens (parsed then), and its findings.
  const accounts = table($("accounts"), ["Account / token", "Access hash / key", "Created",
    "Expires", "Access", "Last use"].map((title, i) => ({ title, flex: [2, 1.2, 1.3, 1.5, 2, 3][i], sort: false })), () => {});
  const serverFindings = table($("server-findings"), ["User", "Severity", "Code", "Token", "Message"]
    .map((title, i) => ({ title, flex: [1.2, 0.8, 1.6, 1.6, 6][i], sort: false })), () => {});
  let opened = -1;
  function openServer(s) {
    const r = S[s];
    opened = s;
    const element = $("server-" + s);
    $("drill").hidden = false;
    showServerFindings();
    if (!element) {
      $("drill-title").textContent = r.host + ": still loading, open it again in a moment";
      return;
    }
    if (unreadable) {
      $("drill-title").textContent = r.host + ": " + unreadable;
      return;
    }
    $("drill-title").textContent = r.host + ": reading its accounts…";
    inflate(element).then((list) => { if (opened === s) showAccounts(r, list); });
    $("drill").scrollIntoView();
  }
  function showAccounts(r, list) {
    // [user, state, last use, tokens]; a token [name, key prefix, created, expires,
    // expired, full access, ACLs, allow-list, from the access hash, last use].
    const rows = [];
    for (const a of list) {
      rows.push([a, null]);
      for (const t of a[3]) rows.push([a, t]);
    }
    const noLogs = r.usage_from === null;
    const used = (u) => u ? date(u[0]) + " from " + u[1] + (u[2] ? " “" + u[2] + "”" : "") :
      noLogs ? "unknown (no logs read)" : "not used since " + date(r.usage_from);
    $("drill-title").textContent = r.host + ": " + count(list.length, "account");
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
    }, (row) => rows[row][1] ? "token" : "", "The audit found no account on this server.");
  }

  // The findings: read once their element is parsed (the first screen is drawn before).
  let F = null;
  function showServerFindings() {
    if (opened < 0) return;
    if (!F) {
      $("drill-findings").textContent = "Findings: still loading.";
      serverFindings.set(0, () => "", null, "The findings are still loading.");
      return;
    }
    const list = [];
    for (let i = 0; i < F.n; i++) if (F.server[i] === opened) list.push(i);
    $("drill-findings").textContent = "Findings on this server: " + num(list.length) + ".";
    serverFindings.set(list.length, (row, col) => {
      const i = list[row];
      return [F.userOf(i), D.severities[F.sev[i]], F.codes[F.code[i]], F.tokenOf(i), F.messageOf(i)][col];
    }, (row) => D.severities[F.sev[list[row]]], "No findings on this server.");
  }

  $("finding-count").textContent = "Loading the findings…";
  const findingsTable = table($("findings"), ["Server", "User", "Severity", "Code", "Token", "Message"]
    .map((title, i) => ({ title, flex: [1.6, 1.2, 0.8, 1.6, 1.6, 5][i], sort: true })),
    (row) => F && openServer(F.server[shown[row]]));
  let shown = new Uint32Array(0), findingSort = null;

  function loadFindings(element) {
    if (unreadable) {
      $("finding-count").textContent = "The findings: " + unreadable + ".";
      return;
    }
    inflate(element).then(showFindings);
  }
  function showFindings(data) {
    const f = data.findings;
    F = {
      n: f.server.length,
      server: Uint32Array.from(f.server),
      user: Int32Array.from(f.user),
      sev: Uint8Array.from(f.severity),
      code: Uint32Array.from(f.code),
      token: Int32Array.from(f.token),
      msg: Uint32Array.from(f.message),
      users: data.users, tokens: data.tokens, codes: data.codes, messages: data.messages,
    };
    F.userOf = (i) => F.user[i] >= 0 ? F.users[F.user[i]] : "";
    F.tokenOf = (i) => F.token[i] >= 0 ? F.tokens[F.token[i]] : "";
    F.messageOf = (i) => F.messages[F.msg[i]]
      .replace("\u0001", () => F.userOf(i)).replace("\u0002", () => F.tokenOf(i));
    const N = F.n;
    D.severities.forEach((sev, i) => $("severity").append(new Option(sev, String(i))));
    const codeCounts = new Uint32Array(F.codes.length);
    for (let i = 0; i < N; i++) codeCounts[F.code[i]]++;
    F.codes.forEach((code, i) => $("code").append(new Option(code + " (" + num(codeCounts[i]) + ")", String(i))));
    showServerFindings();
    filterFindings();
    root.dataset.findings = String(performance.now());
    low.edges = new Uint32Array(F.messages.length);
    setTimeout(prepareText, 0);
  }

  // Sorting by counting on the ranks the page was written with (the tables are sorted).
  function countingSort(list, col, desc) {
    const keys = [
      [(i) => hostRank[F.server[i]], S.length], [(i) => F.user[i] + 1, F.users.length + 1],
      [(i) => F.sev[i], 3], [(i) => F.code[i], F.codes.length],
      [(i) => F.token[i] + 1, F.tokens.length + 1], [(i) => F.msg[i], F.messages.length],
    ];
    const [key, range] = keys[col];
    const at = new Uint32Array(range + 1);
    const k = (i) => desc ? range - 1 - key(i) : key(i);
    for (let j = 0; j < list.length; j++) at[k(list[j]) + 1]++;
    for (let r = 1; r <= range; r++) at[r] += at[r - 1];
    const out = new Uint32Array(list.length);
    for (let j = 0; j < list.length; j++) out[at[k(list[j])]++] = list[j];
    return out;
  }

  // The text filter, on the text as shown: each table's hits are found as the search
  // meets its strings, so that a search's first rows come in its first slice.
  // Lowercase copies of the string tables, each made when first needed, and ahead while
  // the page is idle: the messages with each name's place as "\0", and for each message
  // the characters next to those places (as an index into the sets of such characters).
  const low = { host: S.map((s) => s.host.toLowerCase()), user: [], token: [], literal: [],
    edges: null, edgeSets: [""], edgeIndex: new Map([["", 0]]) };
  const userLow = (k) => low.user[k] ?? (low.user[k] = F.users[k].toLowerCase());
  const tokenLow = (k) => low.token[k] ?? (low.token[k] = F.tokens[k].toLowerCase());
  function literalLow(k) {
    const known = low.literal[k];
    if (known !== undefined) return known;
    const m = F.messages[k].toLowerCase();
    let edges = "";
    for (let p = m.indexOf("\u0001"), q = m.indexOf("\u0002"); p >= 0 || q >= 0;) {
      const at = p < 0 ? q : q < 0 ? p : Math.min(p, q);
      const before = at > 0 ? m[at - 1] : "", after = at + 1 < m.length ? m[at + 1] : "";
      // Two names side by side: any query may span them.
      edges += (before === "\u0001" || before === "\u0002" ? "\u0000" : before) + after;
      if (at === p) p = m.indexOf("\u0001", p + 1); else q = m.indexOf("\u0002", q + 1);
    }
    edges = Array.from(new Set(edges)).sort().join("");
    let id = low.edgeIndex.get(edges);
    if (id === undefined) {
      id = low.edgeSets.length;
      low.edgeSets.push(edges);
      low.edgeIndex.set(edges, id);
    }
    low.edges[k] = id;
    return (low.literal[k] = m.replace(/[\u0001\u0002]/g, "\u0000"));
  }
  // Makes the copies ahead, in slices of 40 ms while nothing else runs.
  function prepareText() {
    const tables = [[F.messages.length, literalLow], [F.users.length, userLow], [F.tokens.length, tokenLow]];
    let t = 0, k = 0;
    const step = () => {
      const until = performance.now() + 40;
      for (; t < tables.length; t++, k = 0) {
        const [n, make] = tables[t];
        for (; k < n; k++) {
          make(k);
          if ((k & 1023) === 0 && performance.now() > until) return setTimeout(step, 0);
        }
      }
    };
    step();
  }
  // The shown message of finding i, lowercase.
  const shownLower = (i) => literalLow(F.msg[i])
    .replace("\u0000", () => F.user[i] >= 0 ? userLow(F.user[i]) : "")
    .replace("\u0000", () => F.token[i] >= 0 ? tokenLow(F.token[i]) : "");
  // Whether the query q is in each string of a table, found when first asked (-1: not yet).
  const lazyHits = (n, text, q) => {
    const known = new Int8Array(n).fill(-1);
    return (k) => {
      let v = known[k];
      if (v < 0) v = known[k] = text(k).includes(q) ? 1 : 0;
      return v;
    };
  };
  // A message's hit: 1 when its own text has q, 2 when q may span a name put in it (q has
  // a character next to where a name goes: that finding's message is then tested whole),
  // else 0.
  const messageHits = (q) => {
    const known = new Int8Array(F.messages.length).fill(-1);
    const spans = [];
    const span = (id) => spans[id] ??
      (spans[id] = [...low.edgeSets[id]].some((c) => c === "\u0000" || q.includes(c)));
    return (k) => {
      let v = known[k];
      if (v < 0) v = known[k] = literalLow(k).includes(q) ? 1 : span(low.edges[k]) ? 2 : 0;
      return v;
    };
  };

  const drawFindings = (searched, keep) => {
    const N = F.n;
    $("finding-count").textContent = !N ? "" :
      num(shown.length) + " of " + count(N, "finding") +
      (searched < 1 ? " (searching: " + Math.floor(100 * searched) + "%)" : "") + ".";
    findingsTable.set(shown.length, (row, col) => {
      const i = shown[row];
      return [S[F.server[i]].host, F.userOf(i), D.severities[F.sev[i]], F.codes[F.code[i]], F.tokenOf(i), F.messageOf(i)][col];
    }, (row) => D.severities[F.sev[shown[row]]],
    !N ? "No findings: nothing to fix on the servers audited." :
      searched < 1 ? "Searching…" : "No finding matches the filters.", keep);
  };
  // Filters the findings in slices of about 50 ms, drawing the rows found so far after
  // each: a search over millions of messages answers at once and finishes in the background.
  let search = 0;
  function filterFindings() {
    if (!F) return;
    const job = ++search;
    const N = F.n;
    const sev = $("severity").value === "" ? -1 : Number($("severity").value);
    const code = $("code").value === "" ? -1 : Number($("code").value);
    const q = $("text").value.trim().toLowerCase();
    let host, user, token, message;
    if (q) {
      host = Uint8Array.from(low.host, (h) => h.includes(q) ? 1 : 0);
      user = lazyHits(F.users.length, userLow, q);
      token = lazyHits(F.tokens.length, tokenLow, q);
      message = messageHits(q);
    }
    const { server: fServer, user: fUser, sev: fSev, code: fCode, token: fToken, msg: fMsg } = F;
    const out = new Uint32Array(N);
    let m = 0, i = 0, slices = 0;
    root.dataset.searching = "1";
    const step = () => {
      if (job !== search) return;
      const until = performance.now() + 50;
      while (i < N) {
        const end = Math.min(i + 32768, N);
        for (; i < end; i++) {
          if (sev >= 0 && fSev[i] !== sev) continue;
          if (code >= 0 && fCode[i] !== code) continue;
          if (q) {
            const hit = message(fMsg[i]);
            if (!(hit === 1 || host[fServer[i]] || (fUser[i] >= 0 && user(fUser[i])) ||
              (fToken[i] >= 0 && token(fToken[i])) ||
              (hit === 2 && shownLower(i).includes(q)))) continue;
          }
          out[m++] = i;
        }
        if (performance.now() > until) break;
      }
      shown = out.subarray(0, m);
      if (i < N) {
        drawFindings(i / N, slices++ > 0);
        setTimeout(step, 0);
        return;
      }
      // Sorted, the rows found so far are no longer on top: back to the first row.
      if (findingSort) shown = countingSort(shown, findingSort[0], findingSort[1]);
      drawFindings(1, slices > 0 && !findingSort);
      delete root.dataset.searching;
    };
    step();
  }
  findingsTable.onSort = (col, desc) => {
    findingSort = [col, desc];
    if (!F || root.dataset.searching) return;
    shown = countingSort(shown, col, desc);
    drawFindings(1);
  };
  $("severity").addEventListener("change", filterFindings);
  $("code").addEventListener("change", filterFindings);
  let typing = 0;
  $("text").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(filterFindings, 150);
  });

  // When the first screen was ready, and when it was next drawn (read by cargo xtask bench).
  root.dataset.ready = String(performance.now());
  requestAnimationFrame(() => { root.dataset.painted = String(performance.now()); });
  // The findings' element is whole once the parser is past it (the next element began).
  const whenParsed = () => {
    const element = $("findings-data");
    if (element && (element.nextElementSibling || document.readyState !== "loading")) {
      loadFindings(element);
    } else {
      setTimeout(whenParsed, 10);
    }
  };
  whenParsed();
})();
