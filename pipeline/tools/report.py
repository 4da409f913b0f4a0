"""A self-contained HTML report of the stored outputs (`mediamon report`).

One file that works offline: plotly.js is inlined once, every chart is a plotly figure drawn
from data embedded in the page, and a Content-Security-Policy forbids any network access.
Article text is untrusted: it is HTML-escaped everywhere, links are kept only for http(s) URLs,
and text drawn inside charts is escaped too (plotly reads a little HTML in labels). Text that
may be Arabic or another right-to-left script carries `dir="auto"`.

The page records script errors and CSP violations on `<html data-script-errors="N">` and shows
them in a banner, and once loaded sets `data-charts` / `data-charts-drawn` (charts with a drawn
plotly `.main-svg`), so a broken chart is visible to a reader and testable in a headless browser.
"""
from __future__ import annotations

import html
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import plotly.graph_objects as go  # type: ignore[import-untyped]
import plotly.offline  # type: ignore[import-untyped]

from pipeline.store.outputs import StoredOutputs
from transforms.spike_rules import AlertRule

LATEST_PER_TOPIC = 10
TOP_STORIES = 10           # stories listed per window
STORY_WINDOWS = 10         # the latest windows that get a "top stories" list
COUNT_MEASURES = ("articles", "stories")
TOP_SOURCES = 20
MAX_ALERT_ARTICLES = 20
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")

CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:")

ERROR_HOOK = """
window.__reportErrors = [];
(function () {
  function record(message) {
    window.__reportErrors.push(String(message));
    document.documentElement.setAttribute('data-script-errors', String(window.__reportErrors.length));
    var box = document.getElementById('report-errors');
    if (box) { box.hidden = false; box.textContent = 'Some charts may not have rendered: ' + window.__reportErrors.join('; '); }
  }
  window.addEventListener('error', function (e) { record(e.message || 'script error'); });
  window.addEventListener('unhandledrejection', function (e) { record(e.reason); });
  document.addEventListener('securitypolicyviolation', function (e) {
    record('blocked by the page policy: ' + e.violatedDirective + ' ' + e.blockedURI);
  });
})();
"""

DONE_HOOK = """
window.addEventListener('load', function () {
  var charts = document.querySelectorAll('.plotly-graph-div');
  var drawn = Array.prototype.filter.call(charts, function (c) { return c.querySelector('.main-svg'); });
  document.documentElement.setAttribute('data-charts', String(charts.length));
  document.documentElement.setAttribute('data-charts-drawn', String(drawn.length));
  if (window.__reportErrors.length) {
    var box = document.getElementById('report-errors');
    box.hidden = false;
    box.textContent = 'Some charts may not have rendered: ' + window.__reportErrors.join('; ');
  }
});
"""

STYLE = """
body { font-family: system-ui, 'Noto Sans', 'Noto Naskh Arabic', sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } .meta { color: #555; margin-top: 0; }
section { margin: 2rem 0; } table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: start; vertical-align: top; }
th { background: #f4f4f4; } .num { text-align: end; font-variant-numeric: tabular-nums; }
.empty { color: #777; font-style: italic; } #report-errors { background: #fde2e1; color: #8a1c1c;
       padding: .6rem 1rem; border-radius: 4px; } .chart { min-height: 420px; }
details summary { cursor: pointer; }
"""


def write_report(outputs: StoredOutputs, alerts_rules: Sequence[AlertRule], out: Path, title: str,
                 topic_names: Mapping[str, str] | None = None, measure: str = "articles") -> Path:
    """Write the report to `out` (folders created) and return its path.  `measure` is what the
    topic charts count: `articles`, or `stories` (near-duplicate copies counted once)."""
    if measure not in COUNT_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(COUNT_MEASURES)}, got {measure!r}")
    names = dict(topic_names or {})
    charts: list[str] = []
    sections = [
        _section("topics", "Topics over time",
                 _topic_charts(outputs, names, charts, measure),
                 f"{measure.capitalize()} tagged with each topic per window, by language; "
                 "windows that raised an alert are marked."),
        _section("stories", "Top stories", _top_stories(outputs),
                 "Per window, the stories reported by the most outlets (near-duplicate articles grouped)."),
        _section("keywords", "Tracked keywords", _keyword_chart(outputs, charts),
                 "Articles mentioning each tracked keyword per window (all languages)."),
        _section("sources", "Top sources", _sources_chart(outputs, charts), None),
        _section("languages", "Language mix", _language_chart(outputs, charts), None),
        _section("alerts", "Alerts of the period", _alerts_table(outputs, names), None),
        _section("latest", "Latest tagged articles per topic", _latest_articles(outputs, names), None),
        _section("rules", "Alert rules", _rules_list(alerts_rules), None),
    ]
    page = _page(title, outputs, sections)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


# --------------------------------------------------------------------------- charts


def _label(text: Any) -> str:
    """Untrusted text drawn inside a chart: plotly interprets a few HTML tags, so escape it."""
    return html.escape(str(text), quote=False)


def _x(iso: str) -> str:
    """Plotly date axes want `YYYY-MM-DD HH:MM:SS` (UTC is said in the axis title)."""
    return str(iso).replace("T", " ").rstrip("Z")


def _figure_html(fig: go.Figure, charts: list[str], title: str, x_title: str, y_title: str,
                 height: int = 420) -> str:
    fig.update_layout(title={"text": _label(title)}, xaxis_title=x_title, yaxis_title=y_title,
                      height=height, margin={"t": 60, "l": 60, "r": 20, "b": 60},
                      legend={"title": {"text": ""}}, template="plotly_white")
    div_id = f"chart-{len(charts) + 1}"
    charts.append(div_id)
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                           config={"displaylogo": False, "responsive": True}))


def _topic_charts(outputs: StoredOutputs, names: Mapping[str, str], charts: list[str],
                  measure: str = "articles") -> str:
    by_topic: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for row in outputs.topics:
        lang = str(row.get("language") or "und")
        windows = by_topic[str(row["topic"])][lang]
        # a row from before stories were counted has none: each of its articles is a story
        value = row.get(measure) if row.get(measure) is not None else row.get("articles")
        windows[str(row["window_start"])] = windows.get(str(row["window_start"]), 0) + int(value or 0)
    if not by_topic:
        return _empty("No topic counts in this period.")
    alerts_by_topic: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for alert in outputs.alerts:
        alerts_by_topic[str(alert["topic"])].append(alert)
    all_langs = sorted({lang for langs in by_topic.values() for lang in langs})
    colour = {lang: PALETTE[i % len(PALETTE)] for i, lang in enumerate(all_langs)}  # same in every chart
    parts = []
    for topic in sorted(by_topic):
        fig = go.Figure()
        langs = by_topic[topic]
        for lang in sorted(langs, key=lambda lg: -sum(langs[lg].values())):
            points = sorted(langs[lang].items())
            fig.add_bar(x=[_x(s) for s, _ in points], y=[n for _, n in points], name=_label(lang),
                        marker={"color": colour[lang]})
        alerts = alerts_by_topic.get(topic, [])
        if alerts:
            fig.add_scatter(x=[_x(a["window_start"]) for a in alerts], y=[a["count"] for a in alerts],
                            mode="markers", name="alert",
                            marker={"symbol": "triangle-down", "size": 14, "color": "#c0392b"},
                            text=[_label(f"{a['rule']}: score {a['score']}") for a in alerts],
                            hovertemplate="%{text}<extra>alert</extra>")
        fig.update_layout(barmode="stack")
        name = names.get(topic, topic)
        parts.append(_figure_html(fig, charts, f"Topic “{name}”: {measure} per window by language",
                                  "Window start (UTC)", measure.capitalize()))
    return "\n".join(parts)


def _keyword_chart(outputs: StoredOutputs, charts: list[str]) -> str:
    series: dict[str, Counter[str]] = defaultdict(Counter)
    for row in outputs.counts:
        series[str(row["keyword"])][str(row["window_start"])] += int(row["articles"] or 0)
    if not series:
        return _empty("No keyword counts in this period.")
    fig = go.Figure()
    for keyword in sorted(series, key=lambda k: -sum(series[k].values())):
        points = sorted(series[keyword].items())
        fig.add_scatter(x=[_x(s) for s, _ in points], y=[n for _, n in points], name=_label(keyword),
                        mode="lines+markers")
    return _figure_html(fig, charts, "Tracked keywords: articles mentioning each keyword per window",
                        "Window start (UTC)", "Articles")


def _sources_chart(outputs: StoredOutputs, charts: list[str]) -> str:
    sources = Counter(str(a.get("source") or "(unknown)") for a in outputs.articles)
    if not sources:
        return _empty("No articles in this period.")
    top = sources.most_common(TOP_SOURCES)[::-1]     # largest at the top of a horizontal bar chart
    fig = go.Figure(go.Bar(x=[n for _, n in top], y=[_label(s) for s, _ in top], orientation="h",
                           marker={"color": "#2c7fb8"}))
    return _figure_html(fig, charts, f"Top {len(top)} sources by number of articles", "Articles", "Source",
                        height=max(300, 60 + 24 * len(top)))


def _language_chart(outputs: StoredOutputs, charts: list[str]) -> str:
    langs = Counter(str(a.get("language") or "und") for a in outputs.articles)
    if not langs:
        return _empty("No articles in this period.")
    ordered = langs.most_common()
    fig = go.Figure(go.Bar(x=[_label(lang) for lang, _ in ordered], y=[n for _, n in ordered],
                           marker={"color": "#41ab5d"}))
    return _figure_html(fig, charts, "Language mix: articles per detected language",
                        "Language (ISO 639-1; und = undetermined)", "Articles", height=360)


# --------------------------------------------------------------------------- tables


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _link(url: Any, text: Any) -> str:
    label = f'<span dir="auto">{_e(text) or _e(url)}</span>'
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return f'<a href="{_e(url)}" rel="noopener noreferrer" target="_blank">{label}</a>'
    return label


def _alerts_table(outputs: StoredOutputs, names: Mapping[str, str]) -> str:
    if not outputs.alerts:
        return _empty("No alerts in this period.")
    by_id = {str(a["id"]): a for a in outputs.articles}
    rows = []
    for alert in sorted(outputs.alerts, key=lambda a: (str(a["window_start"]), str(a["topic"])), reverse=True):
        ids = [str(i) for i in alert.get("articles") or []]
        items = []
        for article_id in ids[:MAX_ALERT_ARTICLES]:
            article = by_id.get(article_id)
            items.append(f"<li>{_link(article.get('url'), article.get('title'))}</li>" if article
                         else f"<li><code>{_e(article_id)}</code></li>")
        more = f"<li>… and {len(ids) - MAX_ALERT_ARTICLES} more</li>" if len(ids) > MAX_ALERT_ARTICLES else ""
        evidence = (f"<details><summary>{len(ids)} articles</summary><ul>{''.join(items)}{more}</ul></details>"
                    if ids else "")
        topic = str(alert["topic"])
        rows.append(
            f"<tr><td dir=\"auto\">{_e(names.get(topic, topic))}</td>"
            f"<td>{_e(alert['window_start'])} – {_e(alert['window_end'])}</td>"
            f"<td class=\"num\">{_e(alert['count'])}</td><td class=\"num\">{_e(alert['baseline'])}</td>"
            f"<td class=\"num\">{_e(alert['score'])}</td><td>{_e(alert['rule'])}</td><td>{evidence}</td></tr>")
    head = ("<tr><th>Topic</th><th>Window (UTC)</th><th>Count</th><th>Baseline</th><th>Score</th>"
            "<th>Rule</th><th>Evidence</th></tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _latest_articles(outputs: StoredOutputs, names: Mapping[str, str]) -> str:
    by_topic: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for article in outputs.articles:
        for topic in article.get("topics") or []:
            by_topic[str(topic)].append(article)
    if not by_topic:
        return _empty("No tagged articles in this period.")
    parts = []
    for topic in sorted(by_topic):
        latest = sorted(by_topic[topic], key=lambda a: str(a.get("published") or ""), reverse=True)
        rows = "".join(
            f"<tr><td>{_e(a.get('published'))}</td><td>{_link(a.get('url'), a.get('title'))}</td>"
            f"<td dir=\"auto\">{_e(a.get('source'))}</td><td>{_e(a.get('language'))}</td></tr>"
            for a in latest[:LATEST_PER_TOPIC])
        parts.append(
            f"<h3 dir=\"auto\">{_e(names.get(topic, topic))} <small>({len(latest)} articles)</small></h3>"
            "<table><thead><tr><th>Published (UTC)</th><th>Title</th><th>Source</th><th>Language</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")
    return "\n".join(parts)


def _stories_by_window(outputs: StoredOutputs) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Story records per window: from a `stories` sink, else built from the articles' `story`."""
    by_window: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    if outputs.stories:
        for row in outputs.stories:
            by_window[(str(row["window_start"]), str(row["window_end"]))].append(row)
        return by_window
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for article in outputs.articles:
        groups[str(article.get("story") or article.get("id"))].append(article)
    for story, members in groups.items():
        members.sort(key=lambda a: (str(a.get("published") or ""), str(a.get("id"))))
        first = next((a for a in members if a.get("id") == story), members[0])
        day = str(members[0].get("published") or "")[:10]
        by_window[(day, day)].append({
            "story": story, "headline": first.get("title"), "url": first.get("url"),
            "outlets": sorted({str(a.get("source")) for a in members}),
            "languages": sorted({str(a.get("language")) for a in members}), "size": len(members),
            "first_seen": members[0].get("published"), "last_seen": members[-1].get("published")})
    return by_window


def _top_stories(outputs: StoredOutputs) -> str:
    by_window = _stories_by_window(outputs)
    if not by_window:
        return _empty("No stories in this period.")
    parts = []
    for window in sorted(by_window, reverse=True)[:STORY_WINDOWS]:
        stories = sorted(by_window[window], key=lambda r: (-len(r.get("outlets") or []), -int(r.get("size") or 0),
                                                           str(r.get("first_seen") or ""), str(r.get("story"))))
        rows = "".join(
            f"<tr><td>{_link(r.get('url'), r.get('headline'))}</td>"
            f"<td class=\"num\">{len(r.get('outlets') or [])}</td><td class=\"num\">{_e(r.get('size'))}</td>"
            f"<td dir=\"auto\">{_e(', '.join(map(str, r.get('outlets') or [])))}</td>"
            f"<td>{_e(', '.join(map(str, r.get('languages') or [])))}</td>"
            f"<td>{_e(r.get('first_seen'))} – {_e(r.get('last_seen'))}</td></tr>"
            for r in stories[:TOP_STORIES])
        start, end = window
        label = f"{start} – {end}" if start != end else f"{start} (day of first publication)"
        parts.append(f"<h3>{_e(label)} <small>({len(stories)} stories)</small></h3>"
                     "<table class=\"stories\"><thead><tr><th>Headline</th><th>Outlets</th><th>Articles</th>"
                     "<th>Outlet names</th><th>Languages</th><th>First – last seen (UTC)</th></tr></thead>"
                     f"<tbody>{rows}</tbody></table>")
    return "\n".join(parts)


def _rules_list(rules: Iterable[AlertRule]) -> str:
    items = [f"<li>{_e(rule.describe())}</li>" for rule in rules]
    return f"<ul>{''.join(items)}</ul>" if items else _empty("No alert rules configured.")


def _empty(message: str) -> str:
    return f'<p class="empty">{_e(message)}</p>'


def _section(anchor: str, heading: str, body: str, note: str | None) -> str:
    intro = f"<p>{_e(note)}</p>" if note else ""
    return f'<section id="{anchor}"><h2>{_e(heading)}</h2>{intro}{body}</section>'


def _page(title: str, outputs: StoredOutputs, sections: list[str]) -> str:
    times = sorted(str(r["window_start"]) for r in outputs.topics + outputs.counts if r.get("window_start"))
    times += sorted(str(a["published"]) for a in outputs.articles if a.get("published"))
    period_from = outputs.since or (min(times) if times else "–")
    period_to = outputs.until or (max(times) if times else "–")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    totals = (f"{len(outputs.articles)} articles, {len(outputs.alerts)} alerts, "
              f"{len(outputs.dead_letters)} dead letters")
    skipped = "".join(f"<li>{_e(s)}</li>" for s in outputs.skipped)
    skipped_html = f"<details><summary>Sinks not read</summary><ul>{skipped}</ul></details>" if skipped else ""
    return f"""<!DOCTYPE html>
<html lang="en" data-script-errors="0">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{STYLE}</style>
<script>{ERROR_HOOK}</script>
<script>{plotly.offline.get_plotlyjs()}</script>
</head>
<body>
<h1 dir="auto">{_e(title)}</h1>
<p class="meta">Period {_e(period_from)} – {_e(period_to)} (UTC) · {_e(totals)} · generated {_e(generated)}</p>
<div id="report-errors" role="alert" hidden></div>
<nav><a href="#topics">Topics</a> · <a href="#stories">Top stories</a> · <a href="#keywords">Keywords</a> · <a href="#sources">Sources</a> ·
<a href="#languages">Languages</a> · <a href="#alerts">Alerts</a> · <a href="#latest">Latest articles</a> ·
<a href="#rules">Rules</a></nav>
{''.join(sections)}
{skipped_html}
<script>{DONE_HOOK}</script>
</body>
</html>
"""

