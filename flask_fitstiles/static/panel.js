// The side panel: image information, the FITS header, and the display controls.

import { defaultCuts } from "./iip.js";

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, text = "") {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
  if (text) el.textContent = text;
  return el;
}

/** A cut as shown in its field: 6 significant digits. */
export const shortNumber = (v) => String(+v.toPrecision(6));

/** Name of channel c (1-based): its FILTERc keyword, else FILTER, else "c". */
export function channelName(info, c) {
  const header = info.header;
  const filter = header[`FILTER${c}`] ?? (info.channels === 1 ? header.FILTER : undefined);
  return filter ? `${c} (${filter})` : String(c);
}

/** Fill the information list: size, channels, OBJECT, FILTER, CCDs. */
export function showInfo(info) {
  const list = $("info");
  const [nx, ny] = info.full_size;
  const filters = [];
  for (let c = 1; c <= info.channels; c++) {
    const f = info.header[`FILTER${c}`] ?? (c === 1 ? info.header.FILTER : undefined);
    if (f !== undefined) filters.push(String(f));
  }
  const rows = [
    ["Size", `${nx} × ${ny} pixels`],
    ["Channels", String(info.channels)],
    ["Object", info.object_name || info.header.OBJECT || "—"],
    ["Filter", filters.join(", ") || "—"],
  ];
  if (info.images.length > 1) rows.push(["CCDs", String(info.images.length)]);
  list.replaceChildren();
  for (const [term, value] of rows) {
    list.append(element("dt", {}, term), element("dd", { "data-field": term.toLowerCase() }, value));
  }
}

/** Format a header as FITS-like cards, "KEY     = value". */
export function headerText(header) {
  const format = (v) => (typeof v === "string" ? `'${v}'` : typeof v === "boolean" ? (v ? "T" : "F") : String(v));
  return Object.entries(header)
    .map(([key, value]) => `${key.padEnd(8)}= ${format(value)}`)
    .join("\n");
}

/**
 * Build the display controls and keep them in step with the settings.
 *
 * `onChange(settings, settled)` is called with a new settings object whenever
 * a control moves: settled is false while a slider is dragged, true once the
 * change is done (the moment the view is written into the history).
 */
export function buildControls(info, initial, onChange) {
  let settings = structuredClone(initial);
  const defaults = defaultCuts(info);
  const mode = $("mode");
  if (info.channels > 1) mode.append(element("option", { value: "0" }, "colour"));
  for (let c = 1; c <= info.channels; c++) {
    mode.append(element("option", { value: String(c) }, `channel ${channelName(info, c)}`));
  }
  const body = $("channels").querySelector("tbody");
  const rows = [];
  for (let c = 1; c <= info.channels; c++) {
    const row = element("tr", { "data-channel": String(c) });
    const color = element("input", { type: "color", class: "color", "aria-label": `colour of channel ${c}` });
    const min = element("input", { type: "number", step: "any", class: "min", "aria-label": `min cut of channel ${c}` });
    const max = element("input", { type: "number", step: "any", class: "max", "aria-label": `max cut of channel ${c}` });
    const reset = element("button", { type: "button", class: "reset", title: "back to the image's default cuts" }, "↺");
    const cell = (child, attributes = {}) => {
      const td = element("td", attributes);
      td.append(child);
      return td;
    };
    row.append(element("td", {}, channelName(info, c)), cell(color, { class: "colour" }), cell(min), cell(max), cell(reset));
    body.append(row);
    rows.push({ row, color, min, max, reset });
    reset.addEventListener("click", () => {
      settings.cuts[c - 1] = [...defaults[c - 1]];
      show(settings);
      onChange(structuredClone(settings), true);
    });
  }

  // Control values -> settings. Empty or unreadable number fields keep the old value.
  function read() {
    const next = structuredClone(settings);
    next.channel = Number(mode.value);
    rows.forEach(({ color, min, max }, i) => {
      next.colors[i] = color.value;
      // A field still showing the rounded cut keeps the exact one.
      const cut = (field, old) => {
        if (field.value === shortNumber(old)) return old;
        return Number.isFinite(field.valueAsNumber) ? field.valueAsNumber : old;
      };
      next.cuts[i] = [cut(min, next.cuts[i][0]), cut(max, next.cuts[i][1])];
    });
    next.cmp = $("cmp").value;
    next.inv = $("inv").checked;
    for (const name of ["brt", "cnt", "gam", "qlt"]) next[name] = $(name).valueAsNumber;
    return next;
  }

  // Settings -> controls (also after a back/forward move).
  function show(next) {
    settings = structuredClone(next);
    mode.value = String(settings.channel);
    rows.forEach(({ row, color, min, max }, i) => {
      color.value = settings.colors[i];
      min.value = shortNumber(settings.cuts[i][0]);
      max.value = shortNumber(settings.cuts[i][1]);
      row.classList.toggle("active", settings.channel === 0 || settings.channel === i + 1);
    });
    $("cmp").value = settings.cmp;
    $("inv").checked = settings.inv;
    for (const name of ["brt", "cnt", "gam", "qlt"]) $(name).value = String(settings[name]);
    showOutputs();
  }

  function showOutputs() {
    for (const name of ["brt", "cnt", "gam", "qlt"]) {
      $("display").querySelector(`output[for=${name}]`).textContent = String(settings[name]);
    }
    $("display").classList.toggle("colour-mode", settings.channel === 0);
  }

  let timer = null;
  const form = $("display");
  form.addEventListener("input", () => {
    // Sliders fire many input events: follow them, but not with every pixel.
    clearTimeout(timer);
    // The fields are not rewritten here: a number being typed stays as typed.
    timer = setTimeout(() => {
      settings = read();
      showOutputs();
      onChange(structuredClone(settings), false);
    }, 100);
  });
  form.addEventListener("change", () => {
    clearTimeout(timer);
    show(read());
    onChange(structuredClone(settings), true);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  show(settings);
  return { show };
}
