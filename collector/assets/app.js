// darkwatch dashboard: reads the collector's read-only JSON API and draws
// one SVG timeline per campaign (share of blocks up, overall and per vantage
// point, verdicts as shaded bands), the verdict list and the agents table.
// Plain JavaScript, no libraries; every value from the API is inserted as
// text (textContent / attributes), never as HTML.
"use strict";

const REFRESH_MS = 5000;
const RECENT = "7d"; // verdicts listed: open, or ended within this age
const SVG_NS = "http://www.w3.org/2000/svg";
const TOP_SCOPES = ["country", "campaign"];
const VP_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
const W = 960, H = 250;
const M = { left: 48, right: 12, top: 10, bottom: 44 };
const STRIP = 10; // height of the lower-scope verdict strip

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function svg(tag, attrs, title) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (title) {
    const t = document.createElementNS(SVG_NS, "title");
    t.textContent = title;
    e.appendChild(t);
  }
  return e;
}

function fmtTime(ms) {
  if (!Number.isFinite(ms)) return "-";
  return new Date(ms).toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, "Z");
}

function fmtDuration(secs) {
  if (!Number.isFinite(secs) || secs < 0) return "-";
  secs = Math.floor(secs);
  if (secs < 60) return secs + "s";
  if (secs < 3600) return Math.floor(secs / 60) + "m" + String(secs % 60).padStart(2, "0") + "s";
  return Math.floor(secs / 3600) + "h" + String(Math.floor((secs % 3600) / 60)).padStart(2, "0") + "m";
}

function fmtAgo(ms, now) {
  if (!Number.isFinite(ms)) return "";
  return fmtDuration(Math.max(0, (now - ms) / 1000)) + " ago";
}

function pct(v) {
  return v === null || v === undefined ? "-" : Math.round(v * 100) + "%";
}

function localizationText(l) {
  if (!l || typeof l !== "object" || !l.last_hop) return "-";
  return l.last_hop + " (" + (l.inside_target ? "inside" : "upstream") + ")";
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try {
      msg = (await r.json()).error || msg;
    } catch (_) { /* not JSON */ }
    throw new Error(path + ": " + msg);
  }
  return r.json();
}

// ---------- plot ----------

function plot(t, campaign, verdicts, now) {
  const interval = ((campaign && campaign.interval_secs) || 600) * 1000;
  const rows = t.rounds.map((r) => ({ ...r, ms: Date.parse(r.time) })).filter((r) => Number.isFinite(r.ms));
  const box = el("div", { class: "plot", id: "plot-" + t.campaign, "data-campaign": t.campaign, "data-target": t.target });
  const head = el("h3", {}, t.campaign + " — " + t.target);
  if (campaign) {
    head.appendChild(el("span", { class: "note" },
      " every " + campaign.interval_secs + " s, " + campaign.prefixes.length + " prefixes, "
      + t.vantage_points.length + " VPs, " + rows.length + " rounds"));
  }
  box.appendChild(head);
  if (rows.length === 0) {
    box.appendChild(el("p", { class: "empty" }, "no rounds with data in the window"));
    return box;
  }
  const x0 = rows[0].ms;
  const x1 = Math.max(rows[rows.length - 1].ms + interval, x0 + interval);
  const pw = W - M.left - M.right, ph = H - M.top - M.bottom - STRIP - 4;
  const X = (ms) => M.left + ((Math.min(Math.max(ms, x0), x1) - x0) / (x1 - x0)) * pw;
  const Y = (v) => M.top + (1 - v) * ph;
  // A round's value is drawn at the middle of the round.
  const XR = (r) => X(r.ms + interval / 2);

  const s = svg("svg", {
    class: "timeline", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
    "aria-label": "share of blocks up for " + t.campaign, "data-campaign": t.campaign,
  });
  // Verdict bands (under the lines).
  const bands = svg("g", { class: "bands" });
  for (const v of verdicts) {
    const start = Date.parse(v.start);
    const end = v.end ? Date.parse(v.end) : Math.max(now, x1);
    if (!Number.isFinite(start) || end < x0 || start > x1) continue;
    const top = TOP_SCOPES.includes(v.scope);
    const a = X(start), b = X(end);
    const label = `${v.kind} of ${v.scope} ${v.target}: ${fmtTime(start)} → ${v.end ? fmtTime(end) : "ongoing"}`
      + `, ${v.blocks_affected}/${v.blocks_total} blocks`;
    bands.appendChild(svg("rect", {
      class: `band band-${v.kind}` + (top ? "" : " band-sub"),
      x: a.toFixed(1), width: Math.max(b - a, 2).toFixed(1),
      y: top ? M.top : M.top + ph + 4, height: top ? ph : STRIP,
      "data-kind": v.kind, "data-scope": v.scope, "data-target": v.target,
      "data-ongoing": v.end ? "false" : "true",
    }, label));
  }
  s.appendChild(bands);
  // Axes and grid.
  const axes = svg("g", { class: "axes" });
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    axes.appendChild(svg("line", { class: "grid", x1: M.left, x2: M.left + pw, y1: Y(v), y2: Y(v) }));
    const lab = svg("text", { class: "tick", x: M.left - 6, y: Y(v) + 4, "text-anchor": "end" });
    lab.textContent = Math.round(v * 100) + "%";
    axes.appendChild(lab);
  }
  const ticks = 6;
  for (let i = 0; i <= ticks; i++) {
    const ms = x0 + ((x1 - x0) * i) / ticks;
    const xx = X(ms);
    axes.appendChild(svg("line", { class: "grid", x1: xx, x2: xx, y1: M.top, y2: M.top + ph }));
    const lab = svg("text", { class: "tick", x: xx, y: H - 12, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" });
    lab.textContent = new Date(ms).toISOString().slice(11, 16) + (i === 0 ? " " + new Date(ms).toISOString().slice(0, 10) : "");
    axes.appendChild(lab);
  }
  s.appendChild(axes);
  // Series: per VP (thin) then overall (thick) on top; a null breaks a line.
  const series = [];
  t.vantage_points.forEach((vp, i) => series.push({
    name: vp, cls: "series vp", color: VP_COLORS[i % VP_COLORS.length], get: (r) => r.per_vp[vp],
  }));
  series.push({ name: "overall", cls: "series overall", color: null, get: (r) => r.overall });
  for (const se of series) {
    let d = "", pen = false;
    for (const r of rows) {
      const v = se.get(r);
      if (v === null || v === undefined) { pen = false; continue; }
      d += (pen ? "L" : "M") + XR(r).toFixed(1) + " " + Y(v).toFixed(1);
      pen = true;
    }
    const attrs = { class: se.cls, d: d || "M0 0", "data-series": se.name };
    if (se.color) attrs.stroke = se.color;
    s.appendChild(svg("path", attrs, se.name));
  }
  const points = svg("g", { class: "points" });
  for (const r of rows) {
    if (r.overall === null || r.overall === undefined) continue;
    const vps = t.vantage_points.map((vp) => vp + " " + pct(r.per_vp[vp])).join(", ");
    points.appendChild(svg("circle", {
      class: "point", cx: XR(r).toFixed(1), cy: Y(r.overall).toFixed(1), r: 2.5,
      "data-round": r.round, "data-value": r.overall,
    }, `round ${r.round} (${fmtTime(r.ms)}): overall ${pct(r.overall)}; ${vps}`));
  }
  s.appendChild(points);
  box.appendChild(s);
  // Series legend.
  const legend = el("div", { class: "legend" });
  for (const se of series.slice().reverse()) {
    const sw = el("span", { class: "swatch line" + (se.color ? "" : " overall") });
    if (se.color) sw.style.background = se.color;
    legend.appendChild(sw);
    legend.appendChild(document.createTextNode(se.name));
  }
  box.appendChild(legend);
  return box;
}

// ---------- tables ----------

// `parent`: the id of the listed verdict that explains this one (shown
// nested under it), or undefined for a headline.
function verdictRow(v, now, parent) {
  const start = Date.parse(v.start);
  const ongoing = !v.end;
  const nested = parent !== undefined;
  const tr = el("tr", {
    class: "verdict" + (ongoing ? " ongoing" : "") + (nested ? " nested" : ""), "data-kind": v.kind, "data-scope": v.scope,
    "data-target": v.target, "data-campaign": v.campaign, "data-ongoing": String(ongoing),
    "data-id": String(v.id),
  });
  if (nested) tr.setAttribute("data-explained-by", String(parent));
  const kind = el("td", {});
  if (nested) kind.appendChild(el("span", { class: "nest" }, "└ "));
  kind.appendChild(el("span", { class: "badge kind-" + v.kind }, v.kind));
  tr.appendChild(kind);
  tr.appendChild(el("td", { class: "scope" }, v.scope));
  tr.appendChild(el("td", { class: "target" }, v.target));
  tr.appendChild(el("td", { class: "campaign" }, v.campaign));
  tr.appendChild(el("td", { class: "start" }, fmtTime(start)));
  tr.appendChild(el("td", { class: "end" }, ongoing ? "ongoing" : fmtTime(Date.parse(v.end))));
  const dur = ongoing ? fmtDuration((now - start) / 1000) + "+" : fmtDuration(v.duration_secs);
  tr.appendChild(el("td", { class: "duration" }, dur));
  tr.appendChild(el("td", { class: "blocks" }, v.blocks_affected + "/" + v.blocks_total));
  tr.appendChild(el("td", { class: "vps" }, (v.vantage_points || []).join(", ") || "-"));
  const l = v.localization || {};
  const loc = el("td", { class: "loc" }, localizationText(l));
  if (l.last_hop) {
    loc.setAttribute("data-last-hop", l.last_hop);
    loc.setAttribute("data-inside", String(!!l.inside_target));
  }
  tr.appendChild(loc);
  return tr;
}

function agentRow(a, now) {
  const tr = el("tr", { class: "agent", "data-agent": a.name, "data-health": a.health });
  tr.appendChild(el("td", { class: "name" }, a.name));
  const h = el("td", {});
  h.appendChild(el("span", { class: "badge health-" + a.health }, a.health));
  tr.appendChild(h);
  const seen = a.last_seen ? Date.parse(a.last_seen) : NaN;
  tr.appendChild(el("td", { class: "last-seen" }, a.last_seen ? fmtTime(seen) + " (" + fmtAgo(seen, now) + ")" : "never"));
  // One line per campaign: blocks tracked, addresses targeted, space skipped and why.
  const cov = el("td", { class: "coverage" });
  for (const c of a.coverage || []) {
    cov.appendChild(el("div", {
      class: "campaign-coverage" + (c.partial ? " partial" : "") + (c.current ? "" : " outdated"),
      "data-campaign": c.campaign,
      "data-partial": String(!!c.partial),
    }, c.summary));
  }
  for (const name of a.coverage_missing || []) {
    cov.appendChild(el("div", { class: "campaign-coverage missing", "data-campaign": name }, name + ": no coverage reported"));
  }
  if (!cov.childNodes.length) cov.textContent = "-";
  tr.setAttribute("data-partial", String((a.coverage || []).some((c) => c.partial)));
  tr.appendChild(cov);
  return tr;
}

function fill(tableId, emptyId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows);
  document.getElementById(emptyId).hidden = rows.length > 0;
}

// ---------- refresh ----------

function render(status, timelines, outages) {
  const now = Date.now();
  const campaigns = new Map(status.campaigns.map((c) => [c.name, c]));
  // Recent verdicts plus every open one (an open verdict may predate RECENT).
  const seen = new Set();
  const verdicts = [];
  for (const v of outages.concat(status.open_verdicts)) {
    const key = [v.campaign, v.scope, v.target, v.kind, v.start_round].join("|");
    if (!seen.has(key)) { seen.add(key); verdicts.push(v); }
  }
  const plots = timelines.map((t) => plot(t, campaigns.get(t.campaign), verdicts.filter((v) => v.campaign === t.campaign), now));
  document.getElementById("plots").replaceChildren(...plots);
  document.getElementById("plots-empty").hidden = plots.length > 0;

  verdicts.sort((a, b) => (!!a.end - !!b.end) || Date.parse(b.start) - Date.parse(a.start)
    || TOP_SCOPES.indexOf(b.scope) - TOP_SCOPES.indexOf(a.scope));
  // One cause, one headline: what a blackout fully explains follows it, nested.
  const ids = new Set(verdicts.map((v) => v.id));
  const parentOf = (v) => ((v.explained_by || []).find((c) => ids.has(c.id)) || {}).id;
  const rows = [];
  for (const head of verdicts.filter((v) => parentOf(v) === undefined)) {
    rows.push(verdictRow(head, now, undefined));
    for (const v of verdicts.filter((x) => parentOf(x) === head.id)) rows.push(verdictRow(v, now, head.id));
  }
  fill("verdicts", "verdicts-empty", rows);
  document.getElementById("verdicts-window").textContent = "(open, or ended in the last " + RECENT + ")";
  fill("agents", "agents-empty", status.agents.map((a) => agentRow(a, now)));
}

let refreshes = 0; // successful loads, shown as #updated[data-refreshes]

async function refresh() {
  const updated = document.getElementById("updated");
  try {
    const [status, timelines, outages] = await Promise.all([
      getJson("/v1/status"),
      getJson("/v1/timeline"),
      getJson("/v1/outages?since=" + RECENT),
    ]);
    render(status, timelines, outages);
    refreshes += 1;
    updated.dataset.refreshes = String(refreshes);
    updated.dataset.state = "ok";
    updated.textContent = "updated " + fmtTime(Date.now()).slice(11);
  } catch (e) {
    updated.dataset.state = "error";
    updated.textContent = "cannot refresh: " + e.message;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
