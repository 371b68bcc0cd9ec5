// darkwatch dashboard: reads the collector's read-only JSON API and draws
// SVG. Two views of one page:
//   /            one plot per campaign over a chosen time range: the share of
//                blocks up of the country (or campaign), of each AS and
//                prefix toggled on, and per vantage point; verdicts as bands;
//                the verdict list and the agents;
//   /verdict/ID  one verdict's evidence: its timeline, each VP's view, where
//                the traceroutes ended before and during it, the blocks and
//                prefixes affected, its alerts.
// The view state lives in the URL query (range=1h|6h|24h|7d, from=, until=,
// show=scope:target,..., vps=all|none|vp,...) so that a view can be shared
// and reloaded. Lines come from /v1/signals and /v1/scopes; where the
// collector does not serve them (404), the plot falls back to /v1/timeline.
// Plain JavaScript, no libraries; the time axis is in axis.js. Every value
// from the API is inserted as text (textContent / attributes), never as HTML.
"use strict";

const REFRESH_MS = 5000;
const SVG_NS = "http://www.w3.org/2000/svg";
const TOP_SCOPES = ["country", "campaign"];
const VP_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
const SCOPE_COLORS = ["#00897b", "#c2185b", "#6d4c41", "#3949ab", "#7cb342", "#f4511e", "#5e35b1", "#00acc1"];
const PRESETS = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3 };
const PRESET_NAMES = { "1h": "last 1 h", "6h": "last 6 h", "24h": "last 24 h", "7d": "last 7 d" };
// "Latest rounds" (no range chosen): as many rounds as the correlation
// window, the plot fitted to the data.
const AUTO_ROUNDS = 288;
// Most rounds asked of /v1/signals at once (it answers at most a week of
// 1-minute rounds): a longer range shows its last rounds.
const MAX_SIGNAL_ROUNDS = 10000;
const W = 960, H = 262;
const M = { left: 48, right: 16, top: 10, bottom: 56 };
const STRIP = 10; // height of the lower-scope verdict strip
const MAX_POINTS = 1500; // more rounds than this: lines without dots

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// A target as text: `AS131279 (Star Joint Venture)`, or the key alone when
// the API gives no name (see docs/api.md, `name`).
function targetText(v) {
  return v.name ? v.target + " (" + v.name + ")" : v.target;
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

// An ISO time to the minute, as the from/until fields take it.
function isoMinute(ms) {
  return new Date(ms).toISOString().slice(0, 16) + "Z";
}

function fmtDuration(secs) {
  if (!Number.isFinite(secs) || secs < 0) return "-";
  secs = Math.floor(secs);
  if (secs < 60) return secs + "s";
  if (secs < 3600) return Math.floor(secs / 60) + "m" + String(secs % 60).padStart(2, "0") + "s";
  if (secs < 86400 * 2) return Math.floor(secs / 3600) + "h" + String(Math.floor((secs % 3600) / 60)).padStart(2, "0") + "m";
  return Math.floor(secs / 86400) + "d" + String(Math.floor((secs % 86400) / 3600)).padStart(2, "0") + "h";
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
    const e = new Error(path + ": " + msg);
    e.status = r.status;
    throw e;
  }
  return r.json();
}

// ---------- view state (the URL) ----------

// A time from the URL or the from/until fields: ISO 8601 (UTC unless it
// says otherwise), Unix seconds, or Unix milliseconds.
function parseTime(s) {
  if (s === null || s === undefined || s.trim() === "") return NaN;
  s = s.trim();
  // The collector's syntax (1419264000s, 1419264000000ms); a bare number
  // in a shared link is read by its size, as links made before were.
  const unit = /^(\d+)(ms|s)$/.exec(s);
  if (unit) return Number(unit[1]) * (unit[2] === "s" ? 1000 : 1);
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    return n < 1e11 ? n * 1000 : n;
  }
  const zoned = /(Z|[+-]\d\d:?\d\d)$/i.test(s) || !/T|\s\d/.test(s) ? s : s + "Z";
  return Date.parse(zoned.replace(" ", "T"));
}

function scopeKey(s) {
  return s.scope + ":" + s.target;
}

function topScope(c) {
  return c.country ? { scope: "country", target: c.country } : { scope: "campaign", target: c.name };
}

function viewState() {
  const q = new URLSearchParams(location.search);
  const st = {
    range: q.get("range") || "auto",
    from: NaN,
    until: NaN,
    show: q.has("show") ? q.get("show").split(",").filter(Boolean) : null,
    vps: q.get("vps") || "all",
    error: "",
  };
  if (q.has("from")) {
    st.from = parseTime(q.get("from"));
    st.until = q.has("until") ? parseTime(q.get("until")) : NaN;
    if (!Number.isFinite(st.from)) st.error = "from=" + q.get("from") + " is not a time";
    else if (q.has("until") && !Number.isFinite(st.until)) st.error = "until=" + q.get("until") + " is not a time";
    else if (st.until <= st.from) st.error = "until must come after from";
    st.range = st.error ? "auto" : "custom";
  } else if (st.range !== "auto" && !(st.range in PRESETS)) {
    st.error = "unknown range " + st.range + " (1h, 6h, 24h or 7d)";
    st.range = "auto";
  }
  return st;
}

// [from, until] of a campaign's plot; `fit`: the x axis follows the data.
function timeWindow(st, now, intervalMs) {
  if (st.range === "custom") return { from: st.from, until: Number.isFinite(st.until) ? st.until : now, fit: false };
  if (st.range in PRESETS) return { from: now - PRESETS[st.range], until: now, fit: false };
  return { from: now - AUTO_ROUNDS * intervalMs, until: now, fit: true };
}

// The query string of `params`, readable: ':' ',' '/' left as they are.
function queryString(params) {
  const parts = [];
  for (const [k, v] of params) {
    parts.push(k + "=" + encodeURIComponent(v).replace(/%3A/g, ":").replace(/%2C/g, ",").replace(/%2F/g, "/"));
  }
  return parts.length ? "?" + parts.join("&") : "";
}

// The current query with `updates` applied (null deletes a key).
function withParams(updates) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(updates)) {
    if (v === null || v === undefined) q.delete(k);
    else q.set(k, v);
  }
  return queryString(q);
}

function navigate(updates) {
  history.pushState(null, "", location.pathname + withParams(updates));
  refreshNow();
}

// ---------- plot ----------

// One SVG time plot. `series`: [{key, name, cls, color, dash, rows:[{ms, v}]}]
// (a round's value is drawn at its middle; null breaks the line);
// `points`: dots of the main series; `bands`: verdicts.
function drawPlot(o) {
  const { x0, x1, interval, now } = o;
  const pw = W - M.left - M.right, ph = H - M.top - M.bottom - STRIP - 4;
  const X = (ms) => M.left + ((Math.min(Math.max(ms, x0), x1) - x0) / (x1 - x0)) * pw;
  const Y = (v) => M.top + (1 - v) * ph;
  const XR = (ms) => X(ms + interval / 2);
  const inside = (ms) => ms + interval > x0 && ms < x1;

  const s = svg("svg", {
    class: "timeline", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
    "aria-label": o.label, "data-campaign": o.campaign, "data-x0": x0, "data-x1": x1,
  });
  const bands = svg("g", { class: "bands" });
  for (const v of o.bands) {
    const start = Date.parse(v.start);
    const end = v.end ? Date.parse(v.end) : Math.max(now, x1);
    if (!Number.isFinite(start) || end < x0 || start > x1) continue;
    const top = TOP_SCOPES.includes(v.scope) || o.allTop;
    const a = X(start), b = X(end);
    const label = `${v.kind} of ${v.scope} ${targetText(v)}: ${fmtTime(start)} → ${v.end ? fmtTime(end) : "ongoing"}`
      + `, ${v.blocks_affected}/${v.blocks_total} blocks`;
    bands.appendChild(svg("rect", {
      class: `band band-${v.kind}` + (top ? "" : " band-sub"),
      x: a.toFixed(1), width: Math.max(b - a, 2).toFixed(1),
      y: top ? M.top : M.top + ph + 4, height: top ? ph : STRIP,
      "data-kind": v.kind, "data-scope": v.scope, "data-target": v.target, "data-id": v.id,
      "data-ongoing": v.end ? "false" : "true",
    }, label));
  }
  s.appendChild(bands);
  const axes = svg("g", { class: "axes" });
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    axes.appendChild(svg("line", { class: "grid", x1: M.left, x2: M.left + pw, y1: Y(v), y2: Y(v) }));
    const lab = svg("text", { class: "tick y-tick", x: M.left - 6, y: Y(v) + 4, "text-anchor": "end" });
    lab.textContent = Math.round(v * 100) + "%";
    axes.appendChild(lab);
  }
  const ticks = timeTicks(x0, x1, interval, 8);
  const ly = M.top + ph + 4 + STRIP + 16;
  for (const t of ticks) {
    const xx = X(t.ms);
    axes.appendChild(svg("line", { class: "grid", x1: xx, x2: xx, y1: M.top, y2: M.top + ph }));
    const lab = svg("text", { class: "tick x-tick", x: xx, y: ly, "text-anchor": "middle", "data-ms": t.ms });
    lab.textContent = t.label;
    axes.appendChild(lab);
  }
  const cap = svg("text", { class: "tick axis-caption", x: M.left + pw, y: ly + 16, "text-anchor": "end" });
  cap.textContent = axisCaption(x0, x1, ticks);
  axes.appendChild(cap);
  s.appendChild(axes);
  for (const se of o.series) {
    let d = "", pen = false;
    const values = [];
    for (const r of se.rows) {
      if (!inside(r.ms)) continue;
      const v = r.v;
      values.push(v === null || v === undefined ? "-" : String(v));
      if (v === null || v === undefined) { pen = false; continue; }
      d += (pen ? "L" : "M") + XR(r.ms).toFixed(1) + " " + Y(v).toFixed(1);
      pen = true;
    }
    const attrs = { class: se.cls, d: d || "M0 0", "data-series": se.key, "data-values": values.join(",") };
    if (se.color) attrs.stroke = se.color;
    if (se.dash) attrs["stroke-dasharray"] = se.dash;
    s.appendChild(svg("path", attrs, se.name));
  }
  // Dots (with a tooltip each) only where they can be told apart.
  const points = svg("g", { class: "points" });
  for (const p of o.points.length <= MAX_POINTS ? o.points : []) {
    if (p.v === null || p.v === undefined || !inside(p.ms)) continue;
    points.appendChild(svg("circle", {
      class: "point", cx: XR(p.ms).toFixed(1), cy: Y(p.v).toFixed(1), r: 2.5,
      "data-round": p.round, "data-value": p.v,
    }, p.title));
  }
  s.appendChild(points);
  return s;
}

// ---------- overview: one plot per campaign ----------

// What to draw for one campaign, from /v1/signals (or /v1/timeline).
async function campaignData(c, st, now, timelineOnce) {
  const interval = (c.interval_secs || 600) * 1000;
  const w = timeWindow(st, now, interval);
  const top = topScope(c);
  const fallback = async () => {
    const t = (await timelineOnce()).find((x) => x.campaign === c.name);
    return { c, w, interval, top, mode: "timeline", timeline: t };
  };
  let scopes;
  try {
    scopes = await getJson("/v1/scopes?campaign=" + encodeURIComponent(c.name));
  } catch (e) {
    if (e.status === 404) return fallback();
    throw e;
  }
  if (!scopes.some((s) => scopeKey(s) === scopeKey(top))) scopes.unshift({ campaign: c.name, ...top });
  const wanted = st.show ? new Set(st.show) : new Set([scopeKey(top)]);
  const shown = scopes.filter((s) => wanted.has(scopeKey(s)));
  // The VPs' lines are those of the top scope, fetched even if its own line is off.
  const fetchList = shown.some((s) => scopeKey(s) === scopeKey(top)) ? shown : [top].concat(shown);
  const from = Math.max(w.from, w.until - (MAX_SIGNAL_ROUNDS - 1) * interval);
  let signals;
  try {
    signals = await Promise.all(fetchList.map((s) => getJson(
      "/v1/signals" + queryString([["scope", s.scope], ["target", s.target],
        ["from", Math.floor(from) + "ms"], ["until", Math.ceil(w.until) + "ms"]]))));
  } catch (e) {
    if (e.status === 404) return fallback();
    throw e;
  }
  const byKey = new Map(fetchList.map((s, i) => [scopeKey(s), signals[i]]));
  return { c, w, interval, top, mode: "signals", scopes, shown, byKey, clippedFrom: from > w.from ? from : null };
}

function vpEnabled(st, vp) {
  if (st.vps === "all") return true;
  if (st.vps === "none") return false;
  return st.vps.split(",").includes(vp);
}

// A scope's colour, by its place among the campaign's scopes (stable as
// lines are toggled).
function scopeColor(d, s) {
  const i = d.scopes.findIndex((x) => scopeKey(x) === scopeKey(s));
  return SCOPE_COLORS[Math.max(0, i - 1) % SCOPE_COLORS.length];
}

function scopeName(s) {
  if (s.scope === "unrouted") return "unrouted";
  return s.scope === "asn" || s.scope === "prefix" ? s.target : s.scope + " " + s.target;
}

// Lines of a campaign's plot and the names of its VPs.
function campaignSeries(d, st) {
  const series = [], points = [];
  let vps = [];
  const topKey = scopeKey(d.top);
  if (d.mode === "signals") {
    const base = d.byKey.get(topKey);
    vps = [...new Set(base.rounds.flatMap((r) => (r.per_vp || []).map((p) => p.vp)))].sort();
    vps.forEach((vp, i) => {
      if (!vpEnabled(st, vp)) return;
      series.push({
        key: vp, name: vp, cls: "series vp", color: VP_COLORS[i % VP_COLORS.length],
        rows: base.rounds.map((r) => ({ ms: r.start_ms, v: ((r.per_vp || []).find((p) => p.vp === vp) || {}).share_up })),
      });
    });
    d.shown.forEach((s) => {
      const sig = d.byKey.get(scopeKey(s));
      const isTop = scopeKey(s) === topKey;
      series.push({
        key: isTop ? "overall" : scopeKey(s), name: scopeName(s),
        cls: isTop ? "series overall" : "series scope",
        color: isTop ? null : scopeColor(d, s), dash: isTop ? null : "6 3",
        rows: sig.rounds.map((r) => ({ ms: r.start_ms, v: r.share_up })),
      });
    });
    if (d.shown.some((s) => scopeKey(s) === topKey)) {
      for (const r of base.rounds) {
        const per = (r.per_vp || []).map((p) => p.vp + " " + pct(p.share_up)).join(", ");
        points.push({
          ms: r.start_ms, v: r.share_up, round: r.round,
          title: `round ${r.round} (${fmtTime(r.start_ms)}): ${r.blocks_up}/${r.blocks_judged} blocks up`
            + ` (${pct(r.share_up)}), ${r.replies}/${r.probes} replies; ${per}`,
        });
      }
    }
  } else if (d.timeline) {
    const t = d.timeline;
    const rows = t.rounds.map((r) => ({ ...r, ms: Date.parse(r.time) })).filter((r) => Number.isFinite(r.ms));
    vps = t.vantage_points.slice();
    vps.forEach((vp, i) => {
      if (!vpEnabled(st, vp)) return;
      series.push({
        key: vp, name: vp, cls: "series vp", color: VP_COLORS[i % VP_COLORS.length],
        rows: rows.map((r) => ({ ms: r.ms, v: r.per_vp[vp] })),
      });
    });
    series.push({ key: "overall", name: scopeName(d.top), cls: "series overall", color: null, rows: rows.map((r) => ({ ms: r.ms, v: r.overall })) });
    for (const r of rows) {
      const per = vps.map((vp) => vp + " " + pct(r.per_vp[vp])).join(", ");
      points.push({ ms: r.ms, v: r.overall, round: r.round, title: `round ${r.round} (${fmtTime(r.ms)}): overall ${pct(r.overall)}; ${per}` });
    }
  }
  return { series, points, vps };
}

// The toggles under a plot: one per scope (signals only) and one per VP.
function toggles(d, st, vps) {
  const box = el("div", { class: "toggles", "data-campaign": d.c.name });
  if (d.mode === "signals") {
    box.appendChild(el("span", { class: "label" }, "lines:"));
    d.scopes.forEach((s) => {
      const key = scopeKey(s);
      const on = d.shown.some((x) => scopeKey(x) === key);
      const isTop = key === scopeKey(d.top);
      const lab = el("label", { class: "toggle scope-toggle" + (on ? " on" : ""), "data-key": key, "data-scope": s.scope });
      const box1 = el("input", { type: "checkbox", "data-key": key });
      if (on) box1.setAttribute("checked", "");
      box1.addEventListener("change", () => toggleScope(key));
      lab.appendChild(box1);
      const sw = el("span", { class: "swatch line" + (isTop ? " overall" : "") });
      if (!isTop) sw.style.background = scopeColor(d, s);
      lab.appendChild(sw);
      lab.appendChild(document.createTextNode(scopeName(s)));
      box.appendChild(lab);
    });
  } else {
    box.appendChild(el("span", { class: "note" }, "per-scope lines need /v1/signals; showing the timeline"));
  }
  box.appendChild(el("span", { class: "label" }, "VPs:"));
  vps.forEach((vp, i) => {
    const on = vpEnabled(st, vp);
    const lab = el("label", { class: "toggle vp-toggle" + (on ? " on" : ""), "data-vp": vp });
    const b = el("input", { type: "checkbox", "data-vp": vp });
    if (on) b.setAttribute("checked", "");
    b.addEventListener("change", () => toggleVp(vp));
    lab.appendChild(b);
    const sw = el("span", { class: "swatch line" });
    sw.style.background = VP_COLORS[i % VP_COLORS.length];
    lab.appendChild(sw);
    lab.appendChild(document.createTextNode(vp));
    box.appendChild(lab);
  });
  return box;
}

// Scope keys and VPs of the last overview drawn, for the toggles.
let lastTopKeys = [], lastVps = [];

function toggleScope(key) {
  const st = viewState();
  const set = new Set((st.show || lastTopKeys).filter((k) => k !== "none"));
  if (set.has(key)) set.delete(key); else set.add(key);
  navigate({ show: [...set].join(",") || "none" });
}

function toggleVp(vp) {
  const st = viewState();
  const on = new Set(lastVps.filter((v) => vpEnabled(st, v)));
  if (on.has(vp)) on.delete(vp); else on.add(vp);
  const list = lastVps.filter((v) => on.has(v));
  navigate({ vps: list.length === lastVps.length ? null : list.length ? list.join(",") : "none" });
}

function campaignBox(d, st, verdicts, now) {
  const box = el("div", { class: "plot", id: "plot-" + d.c.name, "data-campaign": d.c.name, "data-target": d.top.target, "data-source": d.mode });
  const { series, points, vps } = campaignSeries(d, st);
  const allMs = series.flatMap((s) => s.rows.filter((r) => r.v !== null && r.v !== undefined).map((r) => r.ms))
    .filter((ms) => ms + d.interval > d.w.from && ms < d.w.until);
  const head = el("h3", {}, d.c.name + " — " + d.top.target);
  head.appendChild(el("span", { class: "note" },
    " every " + d.c.interval_secs + " s, " + d.c.prefixes.length + " prefixes, "
    + vps.length + " VPs, " + points.filter((p) => p.ms + d.interval > d.w.from && p.ms < d.w.until).length + " rounds"));
  if (d.clippedFrom !== null && d.clippedFrom !== undefined) {
    head.appendChild(el("span", { class: "note clipped" },
      "; lines from " + fmtTime(d.clippedFrom) + " on (at most " + MAX_SIGNAL_ROUNDS + " rounds)"));
  }
  box.appendChild(head);
  if (allMs.length === 0) {
    box.appendChild(el("p", { class: "empty" }, "no rounds with data in the time range"));
    box.appendChild(toggles(d, st, vps));
    return { box, vps };
  }
  let x0 = d.w.from, x1 = d.w.until;
  if (d.w.fit) {
    x0 = Math.min(...allMs);
    x1 = Math.max(Math.max(...allMs) + d.interval, x0 + d.interval);
  }
  box.appendChild(drawPlot({
    label: "share of blocks up for " + d.c.name, campaign: d.c.name,
    x0, x1, interval: d.interval, now, series, points, bands: verdicts,
  }));
  box.appendChild(toggles(d, st, vps));
  return { box, vps };
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
  const link = el("a", { class: "verdict-link", href: "/verdict/" + encodeURIComponent(v.id) + withParams({ show: null, vps: null }) });
  link.appendChild(el("span", { class: "badge kind-" + v.kind }, v.kind));
  kind.appendChild(link);
  tr.appendChild(kind);
  tr.appendChild(el("td", { class: "scope" }, v.scope));
  const target = el("td", { class: "target" }, v.target);
  if (v.name) {
    tr.setAttribute("data-name", v.name);
    target.appendChild(el("span", { class: "name" }, v.name));
  }
  tr.appendChild(target);
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
  if (emptyId) document.getElementById(emptyId).hidden = rows.length > 0;
}

// ---------- overview ----------

function renderRange(st, from, until) {
  const q = new URLSearchParams(location.search);
  for (const a of document.querySelectorAll("#range a.preset")) {
    const r = a.dataset.range;
    a.setAttribute("href", "/" + withParams({ range: r === "auto" ? null : r, from: null, until: null }));
    a.classList.toggle("active", r === st.range);
    if (r === st.range) a.setAttribute("aria-current", "true"); else a.removeAttribute("aria-current");
  }
  const fromIn = document.getElementById("range-from"), untilIn = document.getElementById("range-until");
  if (document.activeElement !== fromIn && document.activeElement !== untilIn) {
    fromIn.value = st.range === "custom" ? q.get("from") : "";
    untilIn.value = st.range === "custom" ? q.get("until") || "" : "";
  }
  const text = document.getElementById("range-text");
  text.dataset.range = st.range;
  text.dataset.from = String(Math.floor(from));
  text.dataset.until = String(Math.ceil(until));
  text.textContent = st.range === "auto" ? "latest rounds of each campaign"
    : (st.range in PRESETS ? PRESET_NAMES[st.range] + ": " : "")
    + fmtTime(from) + " → " + fmtTime(until) + " (" + fmtDuration((until - from) / 1000) + ")";
  const err = document.getElementById("range-error");
  err.hidden = !st.error;
  err.textContent = st.error ? "ignored: " + st.error : "";
}

async function refreshOverview() {
  document.getElementById("overview").hidden = false;
  document.getElementById("verdict-page").hidden = true;
  document.getElementById("range").hidden = false;
  const st = viewState();
  const now = Date.now();
  const status = await getJson("/v1/status");
  let timeline = null;
  const timelineOnce = async () => (timeline = timeline || await getJson("/v1/timeline"));
  const data = await Promise.all(status.campaigns.map((c) => campaignData(c, st, now, timelineOnce)));
  const from = data.length ? Math.min(...data.map((d) => d.w.from)) : now - 3600e3;
  const until = data.length ? Math.max(...data.map((d) => d.w.until)) : now;
  const outages = await getJson("/v1/outages?since=" + Math.floor(from) + "ms");
  renderRange(st, from, until);

  // Verdicts in the range plus every open one (an open verdict may predate it).
  const seen = new Set();
  const verdicts = [];
  for (const v of outages.concat(status.open_verdicts)) {
    if (seen.has(v.id) || Date.parse(v.start) > until) continue;
    seen.add(v.id);
    verdicts.push(v);
  }
  lastTopKeys = status.campaigns.map((c) => scopeKey(topScope(c)));
  const vpsSeen = new Set();
  const plots = data.map((d) => {
    const { box, vps } = campaignBox(d, st, verdicts.filter((v) => v.campaign === d.c.name), now);
    vps.forEach((vp) => vpsSeen.add(vp));
    return box;
  });
  lastVps = [...vpsSeen].sort();
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
  document.getElementById("verdicts-window").textContent = "(in the time range, and every open one; click one for its evidence)";
  fill("agents", "agents-empty", status.agents.map((a) => agentRow(a, now)));
}

// ---------- verdict page ----------

function verdictId() {
  const m = /^\/verdict\/([^/]+)\/?$/.exec(location.pathname);
  return m ? decodeURIComponent(m[1]) : null;
}

function fact(name, value, cls) {
  const tr = el("tr", { class: "fact " + cls });
  tr.appendChild(el("th", {}, name));
  const td = el("td", {});
  if (value instanceof Node) td.appendChild(value); else td.textContent = value;
  tr.appendChild(td);
  return tr;
}

function share(rounds, vp, phase) {
  let up = 0, judged = 0;
  for (const r of rounds) {
    if (r.phase !== phase) continue;
    const p = vp === null ? r : (r.per_vp || []).find((x) => x.vp === vp);
    if (!p) continue;
    up += p.blocks_up;
    judged += p.blocks_judged;
  }
  return judged ? { up, judged, text: pct(up / judged) + " (" + up + "/" + judged + ")" } : { up, judged, text: "-" };
}

// Where a VP's traces of a phase ended: "203.0.113.1 ×6, reached ×1".
function vpEndings(traces, phase) {
  const counts = new Map();
  for (const t of traces) {
    if (t.phase !== phase) continue;
    const k = t.reached ? "reached" : (t.last_responding || "nothing answered");
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => k + " ×" + n).join(", ") || "-";
}

function pathText(t) {
  return t.hops.map((h) => h || "*").join(" → ") || "(no hops)";
}

function renderVerdict(ev, now) {
  const v = ev.verdict;
  const page = document.getElementById("verdict-page");
  for (const [k, x] of Object.entries({ id: v.id, kind: v.kind, scope: v.scope, target: v.target, campaign: v.campaign, ongoing: String(!v.end) })) {
    page.setAttribute("data-" + k, x);
  }
  document.title = "darkwatch: " + v.kind + " of " + v.scope + " " + targetText(v);
  const title = document.getElementById("verdict-title");
  title.replaceChildren(el("span", { class: "badge kind-" + v.kind }, v.kind),
    document.createTextNode(" of " + v.scope + " " + v.target));
  const interval = ev.interval_secs * 1000;
  document.getElementById("verdict-back").setAttribute("href", "/" + location.search);
  // The overview over the same rounds, with the verdict's scope drawn
  // next to its campaign's top scope.
  const show = [scopeKey(ev.top_scope)];
  if (v.scope !== "block" && !show.includes(v.scope + ":" + v.target)) show.push(v.scope + ":" + v.target);
  const minute = 60000;
  document.getElementById("verdict-overview").setAttribute("href", "/" + queryString([
    ["from", isoMinute(Math.floor(ev.first_round * interval / minute) * minute)],
    ["until", isoMinute(Math.ceil((ev.last_round + 1) * interval / minute) * minute)],
    ["show", show.join(",")],
  ]));
  const start = Date.parse(v.start);
  const l = v.localization;
  const facts = [
    ...(v.name ? [fact("name", v.name, "name")] : []),
    fact("campaign", v.campaign, "campaign"),
    fact("start", fmtTime(start) + " (round " + v.start_round + ")", "start"),
    fact("end", v.end ? fmtTime(Date.parse(v.end)) + " (round " + v.end_round + ")" : "ongoing", "end"),
    fact("duration", v.end ? fmtDuration(v.duration_secs) : fmtDuration((now - start) / 1000) + "+", "duration"),
    fact("blocks affected", v.blocks_affected + "/" + v.blocks_total + " (most down at once)", "blocks"),
    fact("vantage points", (v.vantage_points || []).join(", ") || "-", "vps"),
    fact("localization", l && l.last_hop
      ? "paths end at " + l.last_hop + " (" + (l.inside_target ? "inside the scope" : "upstream of the scope") + "): "
        + l.agreeing + " of " + l.traces + " traces agree"
      : "-", "localization"),
    ...(v.change ? [fact("change", v.change, "change")] : []),
  ];
  if ((v.explained_by || []).length) {
    const span = el("span", {});
    v.explained_by.forEach((c, i) => {
      if (i) span.appendChild(document.createTextNode(", "));
      span.appendChild(el("a", { class: "cause-link", href: "/verdict/" + c.id + location.search }, c.kind + " of " + c.scope + " " + targetText(c)));
    });
    facts.push(fact("explained by", span, "explained-by"));
  }
  if (ev.truncated) facts.push(fact("note", "long verdict: only its first rounds are shown", "truncated"));
  fill("verdict-facts", null, facts);

  // Timeline: consensus and per VP, the verdict as a band.
  const x0 = ev.first_round * interval, x1 = (ev.last_round + 1) * interval;
  const series = ev.vantage_points.map((vp, i) => ({
    key: vp, name: vp, cls: "series vp", color: VP_COLORS[i % VP_COLORS.length],
    rows: ev.rounds.map((r) => ({ ms: r.start_ms, v: ((r.per_vp || []).find((p) => p.vp === vp) || {}).share_up })),
  }));
  series.push({ key: "overall", name: "consensus", cls: "series overall", color: null, rows: ev.rounds.map((r) => ({ ms: r.start_ms, v: r.share_up })) });
  const points = ev.rounds.map((r) => ({
    ms: r.start_ms, v: r.share_up, round: r.round,
    title: `round ${r.round} (${fmtTime(r.start_ms)}, ${r.phase}): ${r.blocks_up}/${r.blocks_judged} blocks up; `
      + (r.per_vp || []).map((p) => p.vp + " " + pct(p.share_up)).join(", "),
  }));
  const plotBox = el("div", { class: "plot", "data-campaign": v.campaign });
  plotBox.appendChild(drawPlot({
    label: "share of blocks up around " + v.kind + " of " + v.target, campaign: v.campaign,
    x0, x1, interval, now, series, points, bands: [v], allTop: true,
  }));
  const legend = el("div", { class: "legend" });
  for (const se of series.slice().reverse()) {
    const sw = el("span", { class: "swatch line" + (se.color ? "" : " overall") });
    if (se.color) sw.style.background = se.color;
    legend.appendChild(sw);
    legend.appendChild(document.createTextNode(se.name));
  }
  plotBox.appendChild(legend);
  document.getElementById("verdict-plot").replaceChildren(plotBox);

  // Each VP's view.
  const tracesOf = new Map(ev.traces.map((t) => [t.vp, t.traces]));
  const vps = [...new Set(ev.vantage_points.concat(ev.traces.map((t) => t.vp)))].sort();
  fill("verdict-vps", null, vps.map((vp) => {
    const tr = el("tr", { class: "vp-view", "data-vp": vp });
    tr.appendChild(el("td", { class: "vp" }, vp));
    for (const ph of ["before", "during", "after"]) {
      const s = share(ev.rounds, vp, ph);
      tr.appendChild(el("td", { class: "share-" + ph, "data-up": s.up, "data-judged": s.judged }, s.text));
    }
    const ts = tracesOf.get(vp) || [];
    tr.appendChild(el("td", { class: "traces-before" }, vpEndings(ts, "before")));
    tr.appendChild(el("td", { class: "traces-during" }, vpEndings(ts, "during")));
    return tr;
  }));

  // Where the traces ended, before and during.
  document.getElementById("verdict-agree").textContent = l && l.last_hop
    ? "During the verdict, " + l.agreeing + " of " + l.traces + " failing traces agree that the paths end at "
      + l.last_hop + (l.inside_target ? ", inside the scope." : ", upstream of the scope.")
    : "The traceroutes did not localize this verdict.";
  fill("verdict-endings", "verdict-endings-empty", ev.endings.map((e) => {
    const tr = el("tr", { class: "ending", "data-phase": e.phase, "data-last-hop": e.last_hop || "", "data-reached": String(e.reached), "data-traces": e.traces });
    tr.appendChild(el("td", { class: "phase" }, e.phase));
    tr.appendChild(el("td", { class: "last-hop" }, e.last_hop || "nothing answered"));
    tr.appendChild(el("td", { class: "reached" }, e.reached ? "yes" : "no"));
    tr.appendChild(el("td", { class: "count" }, e.traces + " of " + e.of));
    tr.appendChild(el("td", { class: "vps" }, e.vantage_points.join(", ")));
    return tr;
  }));
  const traceRows = [];
  for (const { vp, traces } of ev.traces) {
    for (const ph of ["before", "during"]) {
      const t = traces.filter((x) => x.phase === ph).pop();
      if (!t) continue;
      const tr = el("tr", { class: "trace", "data-vp": vp, "data-phase": ph, "data-reached": String(t.reached), "data-last-hop": t.last_responding || "" });
      tr.appendChild(el("td", { class: "vp" }, vp));
      tr.appendChild(el("td", { class: "phase" }, ph));
      tr.appendChild(el("td", { class: "round" }, t.round));
      tr.appendChild(el("td", { class: "path" }, pathText(t)));
      tr.appendChild(el("td", { class: "ended" }, t.reached ? "reached " + t.target : (t.last_responding || "nothing answered")));
      traceRows.push(tr);
    }
  }
  fill("verdict-traces", null, traceRows);

  // Blocks and prefixes.
  document.getElementById("verdict-prefixes").textContent = "Prefixes with blocks down: " + ((v.prefixes || []).join(", ") || "-")
    + "; counted over " + ev.scope_nets.join(", ") + ".";
  fill("verdict-blocks", "verdict-blocks-empty", ev.affected_blocks.map((b) => {
    const tr = el("tr", { class: "affected-block", "data-block": b.block, "data-prefix": b.prefix || "" });
    tr.appendChild(el("td", { class: "block" }, b.block));
    tr.appendChild(el("td", { class: "prefix" }, b.prefix || "-"));
    tr.appendChild(el("td", { class: "rounds-down" }, b.rounds_down + " of " + b.rounds_judged));
    return tr;
  }));

  // Alerts.
  fill("verdict-alerts", null, ev.alerts.map((a) => {
    const tr = el("tr", { class: "alert", "data-event": a.event, "data-given": String(a.given) });
    tr.appendChild(el("td", { class: "event" }, a.event));
    tr.appendChild(el("td", { class: "round" }, a.round === null || a.round === undefined ? "-" : a.round));
    tr.appendChild(el("td", { class: "time" }, a.time ? fmtTime(Date.parse(a.time)) : "-"));
    tr.appendChild(el("td", { class: "given" }, a.given ? "given" : a.event === "close" && !v.end ? "not yet (ongoing)" : "not given"));
    return tr;
  }));
}

async function refreshVerdict(id) {
  document.getElementById("overview").hidden = true;
  document.getElementById("verdict-page").hidden = false;
  document.getElementById("range").hidden = true;
  const ev = await getJson("/v1/verdicts/" + encodeURIComponent(id));
  renderVerdict(ev, Date.now());
}

// ---------- refresh ----------

let refreshes = 0; // successful loads, shown as #updated[data-refreshes]
let timer = null, running = false, again = false;

async function refresh() {
  if (running) { again = true; return; }
  running = true;
  clearTimeout(timer);
  const updated = document.getElementById("updated");
  try {
    const id = verdictId();
    if (id !== null) await refreshVerdict(id); else await refreshOverview();
    refreshes += 1;
    updated.dataset.refreshes = String(refreshes);
    updated.dataset.state = "ok";
    updated.textContent = "updated " + fmtTime(Date.now()).slice(11);
  } catch (e) {
    updated.dataset.state = "error";
    updated.textContent = "cannot refresh: " + e.message;
  } finally {
    running = false;
    if (again) { again = false; refresh(); } else timer = setTimeout(refresh, refreshPeriod());
  }
}

// Every 5 s for the latest rounds and short ranges; a long range is
// redrawn less often (one new round moves it by little), at least every
// minute.
function refreshPeriod() {
  if (verdictId() !== null) return REFRESH_MS;
  const st = viewState();
  const span = st.range === "custom" ? (Number.isFinite(st.until) ? st.until : Date.now()) - st.from : PRESETS[st.range];
  if (!Number.isFinite(span)) return REFRESH_MS;
  return Math.min(Math.max(REFRESH_MS, span / 720), 60000);
}

function refreshNow() {
  refresh();
}

document.getElementById("range-apply").addEventListener("click", () => {
  const f = document.getElementById("range-from").value, u = document.getElementById("range-until").value;
  const err = document.getElementById("range-error");
  if (!Number.isFinite(parseTime(f)) || (u.trim() && !Number.isFinite(parseTime(u)))) {
    err.hidden = false;
    err.textContent = "from/until: use 2026-12-02T10:00Z, Unix seconds, or leave until empty for now";
    return;
  }
  navigate({ from: f.trim(), until: u.trim() || null, range: null });
});
window.addEventListener("popstate", refreshNow);

refresh();
