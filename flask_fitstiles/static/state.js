// The view in the URL's hash, so that a link reproduces it and back/forward
// move between views. The hash reads like IIP: C=x,y (centre, FITS pixels),
// Z=zoom, then the settings that differ from the image's defaults with the
// IIP names (CHAN, MINMAX, MIX, CMP, INV, BRT, CNT, GAM, QLT).

import { COLORMAPS, defaultSettings, hexToMix, mixToHex } from "./iip.js";

const round2 = (v) => Math.round(v * 100) / 100;
const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

/** Hash text (without "#") of a view: centre [x, y] in FITS pixels, zoom, settings. */
export function encodeView(info, view) {
  const { center, zoom, settings } = view;
  const defaults = defaultSettings(info);
  const params = [
    ["C", `${round2(center[0])},${round2(center[1])}`],
    ["Z", String(zoom)],
  ];
  if (settings.channel !== defaults.channel) params.push(["CHAN", String(settings.channel)]);
  settings.cuts.forEach((cut, i) => {
    if (!same(cut, defaults.cuts[i])) params.push(["MINMAX", `${i + 1}:${cut[0]},${cut[1]}`]);
  });
  settings.colors.forEach((color, i) => {
    if (color !== defaults.colors[i]) params.push(["MIX", `${i + 1}:${hexToMix(color)}`]);
  });
  if (settings.cmp !== defaults.cmp) params.push(["CMP", settings.cmp]);
  if (settings.inv) params.push(["INV", "1"]);
  for (const name of ["brt", "cnt", "gam", "qlt"]) {
    if (settings[name] !== defaults[name]) params.push([name.toUpperCase(), String(settings[name])]);
  }
  return new URLSearchParams(params).toString();
}

const finite = (text) => {
  const v = Number(text);
  return text !== "" && Number.isFinite(v) ? v : null;
};

/**
 * View of a hash text: {center, zoom, settings}; center and zoom are null when
 * absent. Malformed or out-of-range values are ignored (the defaults stay):
 * a hand-edited link must never break the page.
 */
export function decodeView(info, hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const settings = defaultSettings(info);
  const view = { center: null, zoom: null, settings };
  const n = info.channels;
  for (const [rawName, value] of params) {
    const name = rawName.toUpperCase();
    const parts = value.split(/[:,]/).map(finite);
    if (name === "C" && parts.length === 2 && parts.every((v) => v !== null)) {
      view.center = parts;
    } else if (name === "Z" && finite(value) !== null) {
      view.zoom = finite(value);
    } else if (name === "CHAN" && Number.isInteger(parts[0]) && parts[0] >= 0 && parts[0] <= n) {
      // 0 is colour mode, only meaningful with several channels.
      settings.channel = n > 1 ? parts[0] : 1;
    } else if (name === "MINMAX" && parts.length === 3 && parts.every((v) => v !== null)) {
      const c = parts[0];
      if (Number.isInteger(c) && c >= 1 && c <= n) settings.cuts[c - 1] = [parts[1], parts[2]];
    } else if (name === "MIX" && parts.length === 4 && parts.every((v) => v !== null)) {
      const c = parts[0];
      if (Number.isInteger(c) && c >= 1 && c <= n) settings.colors[c - 1] = mixToHex(parts.slice(1));
    } else if (name === "CMP" && COLORMAPS.includes(value.toLowerCase())) {
      settings.cmp = value.toLowerCase();
    } else if (name === "INV") {
      settings.inv = true;
    } else if (name === "BRT" && inRange(value, -100, 100)) {
      settings.brt = Number(value);
    } else if (name === "CNT" && inRange(value, 0, 1000)) {
      settings.cnt = Number(value);
    } else if (name === "GAM" && inRange(value, 0.2, 5)) {
      settings.gam = Number(value);
    } else if (name === "QLT" && inRange(value, 0, 100) && Number.isInteger(Number(value))) {
      settings.qlt = Number(value);
    }
  }
  return view;
}

function inRange(text, low, high) {
  const v = finite(text);
  return v !== null && v >= low && v <= high;
}
