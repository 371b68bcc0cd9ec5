// darkwatch dashboard: time-axis ticks. Pure functions (no DOM), loaded
// before app.js and tested on their own in headless Chromium.
//
// The tick step is the smallest "round" duration that keeps the ticks at
// most `maxTicks` and no finer than a round; the label format follows the
// step and the span so that no two ticks read the same: seconds when the
// step is under a minute, a date with the time when the span reaches a day,
// the date alone when the step is a day or more. Times are UTC.
"use strict";

const AXIS_STEPS_S = [
  1, 2, 5, 10, 15, 30,
  60, 120, 300, 600, 900, 1800,
  3600, 7200, 10800, 21600, 43200,
  86400, 172800, 604800, 1209600, 2592000, 7776000, 31536000,
];
const DAY_MS = 86400000;

// Step between ticks, in ms, for a span and a round length.
function tickStep(spanMs, intervalMs, maxTicks) {
  const min = Math.max(spanMs / Math.max(1, maxTicks), Math.min(intervalMs || 0, DAY_MS), 1);
  for (const s of AXIS_STEPS_S) {
    if (s * 1000 >= min) return s * 1000;
  }
  // Longer than the table: whole multiples of a year.
  const year = AXIS_STEPS_S[AXIS_STEPS_S.length - 1] * 1000;
  return Math.ceil(min / year) * year;
}

function pad2(n) {
  return String(n).padStart(2, "0");
}

// Label format for a step and a span: "hms", "hm", "dhm" or "d".
function tickFormat(stepMs, spanMs) {
  if (stepMs >= DAY_MS) return spanMs >= 300 * DAY_MS ? "ymd" : "d";
  if (stepMs < 60000) return spanMs >= DAY_MS ? "dhms" : "hms";
  return spanMs >= DAY_MS ? "dhm" : "hm";
}

function tickLabel(ms, format) {
  const d = new Date(ms);
  const hm = pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes());
  const md = pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate());
  switch (format) {
    case "hms": return hm + ":" + pad2(d.getUTCSeconds());
    case "dhms": return md + " " + hm + ":" + pad2(d.getUTCSeconds());
    case "hm": return hm;
    case "dhm": return md + " " + hm;
    case "ymd": return d.getUTCFullYear() + "-" + md;
    default: return md;
  }
}

// Ticks of the time axis [x0, x1] (ms): [{ms, label}], in order, with
// distinct labels, at whole multiples of the step (UTC).
function timeTicks(x0, x1, intervalMs, maxTicks) {
  maxTicks = maxTicks || 8;
  if (!(Number.isFinite(x0) && Number.isFinite(x1)) || x1 <= x0) return [];
  const span = x1 - x0;
  const step = tickStep(span, intervalMs, maxTicks);
  const format = tickFormat(step, span);
  const ticks = [];
  for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) {
    ticks.push({ ms: t, label: tickLabel(t, format) });
  }
  return ticks;
}

// What the labels leave out: the time zone, and the date(s) when the
// labels show times only.
function axisCaption(x0, x1, ticks) {
  const day = (ms) => new Date(ms).toISOString().slice(0, 10);
  if (ticks.length && ticks[0].label.includes("-")) return "UTC";
  const a = day(x0), b = day(x1);
  return "UTC, " + (a === b ? a : a + " → " + b);
}
