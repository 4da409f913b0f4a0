// mediamon live dashboard. The state is the URL query; the page polls /api/dashboard and redraws
// in place when a sink changed. Untrusted text is only ever set as textContent (never as HTML).
"use strict";
(function () {
  const root = document.documentElement;
  const $ = (sel) => document.querySelector(sel);
  let version = null;
  let timer = null;
  let polls = 0;
  let seen = new Set();
  let drawn = 0;
  let alertsStored = true;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function query() {
    const q = new URLSearchParams(location.search);
    for (const [k, v] of [...q.entries()]) if (v === "") q.delete(k);
    return q;
  }

  function safeUrl(url) {
    try {
      const u = new URL(url);
      return (u.protocol === "http:" || u.protocol === "https:") ? u.href : null;
    } catch (e) { return null; }
  }

  // Text with the evidence's surface forms wrapped in <mark>, inside an auto-direction element.
  function highlighted(tag, cls, text, forms, dir) {
    const node = el(tag, { class: cls, dir: dir });
    text = text || "";
    const list = [...new Set(forms)].filter((f) => f && f.length > 1).sort((a, b) => b.length - a.length);
    if (!list.length) { node.textContent = text; return node; }
    const esc = list.map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    // whole tokens only: a form never lights up inside a longer word
    const re = new RegExp("(?<![\\p{L}\\p{N}\\p{M}])(?:" + esc.join("|") + ")(?![\\p{L}\\p{N}\\p{M}])", "giu");
    let last = 0;
    for (const m of text.matchAll(re)) {
      if (m.index > last) node.append(text.slice(last, m.index));
      node.append(el("mark", { text: m[0] }));
      last = m.index + m[0].length;
    }
    node.append(text.slice(last));
    return node;
  }

  function formsOf(article) {
    const forms = [];
    for (const terms of Object.values(article.evidence || {}))
      for (const seen of Object.values(terms || {})) forms.push(...(seen || []));
    return forms;
  }

  function articleItem(a, names, compact) {
    const url = safeUrl(a.url);
    const title = highlighted("span", "title", a.title || a.id, formsOf(a), null);  // the .head sets dir
    const head = el("div", { class: "head", dir: "auto" },
      url ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, title) : title);
    const topics = (a.topics || []).map((t) => names[t] || t).join(", ");
    const meta = el("div", { class: "meta" },
      el("bdi", { text: a.published || "" }), " · ", el("bdi", { text: a.language || "" }), " · ",
      el("bdi", { text: a.source || "" }), topics ? " · " : "", topics ? el("bdi", { text: topics }) : null,
      a.story_size > 1 ? ` · story of ${a.story_size} articles` : null);
    const li = el("li", { "data-id": a.id, "data-lang": a.language || "" }, head, meta);
    if (a.summary && !compact) li.append(highlighted("p", "summary", a.summary.slice(0, 400), formsOf(a), "auto"));
    if (polls > 0 && !seen.has(a.id)) li.classList.add("fresh");
    return li;
  }

  function fillSelect(name, values, labels) {
    const sel = document.forms.filters.elements[name];
    const current = query().get(name) || "";
    const keep = sel.options[0];
    sel.replaceChildren(keep);
    const all = [...new Set([...values, ...(current ? [current] : [])])];
    for (const v of all) sel.append(el("option", { value: v, text: (labels && labels[v]) ? labels[v] + " (" + v + ")" : v }));
    sel.value = current;
  }

  function syncForm() {
    const q = query();
    for (const name of ["period", "since", "until", "metric"]) {
      const input = document.forms.filters.elements[name];
      input.value = q.get(name) || (name === "period" ? "30d" : name === "metric" ? "articles" : "");
    }
  }

  function layout(title, buckets) {
    return {
      margin: { l: 45, r: 10, t: 10, b: 40 }, hovermode: "x unified", showlegend: true,
      legend: { orientation: "h", y: -0.25 }, font: { family: "system-ui, 'Noto Sans', sans-serif", size: 11 },
      xaxis: { title: { text: (buckets === "window" ? "Window start" : "Per " + buckets) + " (UTC)" }, type: "date" },
      yaxis: { title: { text: title }, rangemode: "tozero" },
    };
  }

  function chart(id, data, names, title) {
    const node = document.getElementById(id);
    const series = (data && data.series) || {};
    const keys = Object.keys(series).sort();
    if (!keys.length) {
      node.replaceChildren(el("p", { class: "empty", text: "No counts for these filters." }));
      node.removeAttribute("data-drawn");
      return Promise.resolve(false);
    }
    if (!node.classList.contains("js-plotly-plot")) node.replaceChildren();
    const traces = keys.map((k) => ({
      x: series[k].x, y: series[k].y, name: (names && names[k]) || k,
      type: "scatter", mode: "lines+markers", line: { shape: "linear" },
    }));
    return Plotly.react(node, traces, layout(title, data.buckets), { displaylogo: false, responsive: true })
      .then(() => { node.setAttribute("data-drawn", String(keys.length)); return true; });
  }

  function renderAlerts(alerts, names) {
    const body = $("#alerts .body");
    if (!alerts.length) {
      body.replaceChildren(el("p", { class: "empty", text: alertsStored
        ? "No alerts for these filters."
        : "This store keeps no alerts: add alert rules and a sink {type: sqlite, what: alerts, path: …} to the config." }));
      return;
    }
    body.replaceChildren(...alerts.map((a) => {
      const list = el("ul", {});
      for (const art of a.articles) {
        if (art.missing) list.append(el("li", {}, el("code", { text: art.id }), " (not in the articles store)"));
        else list.append(articleItem(art, names, true));
      }
      return el("div", { class: "alert", "data-topic": a.topic },
        el("h3", {}, el("bdi", { text: names[a.topic] || a.topic }), " · ", el("bdi", { text: a.window_start + " – " + a.window_end })),
        el("div", { class: "meta", text: `rule ${a.rule}: ${a.count} articles vs baseline ${Number(a.baseline).toFixed(2)} (score ${Number(a.score).toFixed(2)}), raised ${a.at || ""}; ${a.article_count} articles` }),
        list);
    }));
  }

  function renderTable(container, heads, rows, empty) {
    if (!rows.length) { container.replaceChildren(el("p", { class: "empty", text: empty })); return; }
    const table = el("table", {}, el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { text: h })))));
    const tbody = el("tbody", {});
    for (const r of rows) tbody.append(el("tr", {}, ...r.map((c) => c instanceof Node ? el("td", {}, c) : el("td", { dir: "auto", text: c === null || c === undefined ? "" : String(c) }))));
    table.append(tbody);
    container.replaceChildren(table);
  }

  function render(d) {
    root.dataset.version = d.version || "";
    $("#name").textContent = d.name || "mediamon";
    document.title = (d.name || "mediamon") + " · live";
    const empty = $("#empty");
    if (d.status && d.status.empty) {
      empty.hidden = false; empty.textContent = d.status.empty;
      root.dataset.state = "empty";
      return;
    }
    empty.hidden = true;
    const names = d.topic_names || {};
    $("#notices").replaceChildren(...(d.status.notices || []).map((n) => el("p", { class: "notice", text: n })));
    fillSelect("topic", Object.keys(names), names);
    fillSelect("language", d.options.languages);
    fillSelect("source", d.options.sources);
    document.forms.filters.elements.metric.disabled = !d.status.stories;
    syncForm();
    alertsStored = !!d.status.tables.alerts;
    renderAlerts(d.alerts, names);
    const metric = (d.topics && d.topics.metric) || "articles";
    const charts = [
      chart("chart-topics", d.topics, names, metric),
      chart("chart-languages", d.languages, null, metric),
      chart("chart-keywords", d.keyword_trends, null, "articles"),
    ];
    const list = $("#articles .body");
    const rows = d.articles.rows;
    list.replaceChildren(...rows.map((a) => articleItem(a, names)));
    if (!rows.length) list.replaceChildren(el("p", { class: "empty", text: "No articles for these filters." }));
    for (const a of rows) seen.add(a.id);
    const older = $("#older"), newer = $("#newer");
    older.hidden = !d.articles.next; older.dataset.cursor = d.articles.next || "";
    newer.hidden = !query().get("before");
    const st = $("#stories");
    st.hidden = !(d.stories && d.stories.length);
    if (!st.hidden) {
      renderTable($("#stories .body"), ["story", "articles", "outlets", "languages", "first seen", "last seen"],
        d.stories.map((x) => {
          const url = safeUrl(x.url);
          const head = el("span", { class: "title", dir: "auto", text: x.headline || x.story });
          return [url ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, head) : head, x.size,
            el("bdi", { text: (x.outlets || []).join(", ") }), (x.languages || []).join(", "), x.first_seen, x.last_seen];
        }), "");
    }
    const feedBody = $("#feeds .body");
    renderTable(feedBody, ["feed", "status", "HTTP", "last fetch", "last new item", "errors", "next due", "last error"],
      d.feeds.rows.map((f) => [el("bdi", { text: f.name || f.url, title: f.url }),
        el("span", { class: "status-" + (f.retired ? "retired" : f.last_status), text: f.retired ? "retired" : (f.last_status || (/^https?:/i.test(f.url) ? "never fetched" : "local file")) }),
        f.http_status, f.last_fetch, f.last_new_item, f.error_count, f.next_due, f.last_error]), "No feeds configured.");
    if (d.feeds.note) feedBody.prepend(el("p", { class: "note", text: d.feeds.note }));
    const dead = $("#dead .body");
    renderTable(dead, ["stage", "dead letters"], d.dead_letters.stages.map((s) => [s.stage, s.count]), "No dead letters for these filters.");
    if (d.dead_letters.latest.length) {
      const latest = el("div", {});
      renderTable(latest, ["at", "stage", "source", "error", "input"], d.dead_letters.latest.map((x) => [x.at, x.stage, el("bdi", { text: x.source }), x.error, el("span", { class: "raw", dir: "auto", text: x.raw })]), "");
      dead.append(el("h3", { text: "Latest" }), latest);
    }
    return Promise.all(charts).then((ok) => {
      drawn = ok.filter(Boolean).length;
      root.dataset.chartsDrawn = String(drawn);
      root.dataset.state = "ready";
    });
  }

  function schedule(refresh) {
    clearTimeout(timer);
    if (refresh > 0) timer = setTimeout(load, refresh * 1000);
  }

  function load() {
    const q = query();
    const refresh = q.has("refresh") ? Number(q.get("refresh")) : 5;
    if (version) q.set("version", version);
    fetch("/api/dashboard?" + q.toString(), { headers: { Accept: "application/json" } })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        const err = $("#error");
        if (!ok) { err.hidden = false; err.textContent = body.error || "error"; root.dataset.state = "error"; return; }
        err.hidden = true;
        if (!body.unchanged) { version = body.version; return render(body); }
      })
      .catch((e) => { $("#live").textContent = "cannot reach the server (" + e + "); retrying"; })
      .finally(() => {
        polls += 1;
        root.dataset.polls = String(polls);
        $("#live").textContent = refresh > 0
          ? `live: checked ${new Date().toISOString().slice(11, 19)} UTC, every ${refresh}s`
          : "live updates off (refresh=0)";
        schedule(refresh);
      });
  }

  function navigate(q) {
    for (const [k, v] of [...q.entries()]) if (v === "" || (k === "period" && v === "30d") || (k === "metric" && v === "articles")) q.delete(k);
    history.pushState(null, "", q.toString() ? "?" + q.toString() : location.pathname);
    version = null; seen = new Set(); polls = 0;
    load();
  }

  window.addEventListener("DOMContentLoaded", () => {
    syncForm();
    document.forms.filters.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams(new FormData(document.forms.filters));
      const keep = query();
      for (const k of ["limit", "refresh"]) if (keep.get(k)) q.set(k, keep.get(k));
      navigate(q);
    });
    $("#older").addEventListener("click", (ev) => { ev.preventDefault(); const q = query(); q.set("before", ev.target.dataset.cursor); navigate(q); });
    $("#newer").addEventListener("click", (ev) => { ev.preventDefault(); const q = query(); q.delete("before"); navigate(q); });
    window.addEventListener("popstate", () => { version = null; load(); });
    load();
  });
})();
