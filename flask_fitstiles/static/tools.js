// Tools over the map: the profile along a line (PFL) with its plot, and the
// outlines of the CCDs of a mosaic.
//
// `view` is what the viewer hands over: {L, map, info, request(params) -> JSON
// promise, fitsAt(latlng) -> [x, y], latLngOfDisplay(px, py), colors()}.

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

// Plot geometry, in SVG user units: the frame is where the points go.
export const PLOT = { width: 480, height: 220, left: 64, top: 12, right: 12, bottom: 36 };

function svg(tag, attributes = {}, text = "") {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, String(value));
  if (text) el.textContent = text;
  return el;
}

const short = (v) => (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(3) : String(+v.toPrecision(6)));

/**
 * Draw a profile answer ({profile: [{x, y, values}]}) as one line per channel.
 * Point i of n goes to frame x = left + i / (n - 1) * width; a value v to
 * frame y = top + (ymax - v) / (ymax - ymin) * height, with ymin and ymax
 * the extremes of all the values (written on the axis). Blank (null) values
 * break the line.
 */
export function plotProfile(container, answer, colors) {
  const points = answer.profile;
  const nchannels = points.length ? points[0].values.length : 0;
  const values = points.flatMap((p) => p.values).filter((v) => v !== null);
  let ymin = Math.min(...values);
  let ymax = Math.max(...values);
  if (!values.length) [ymin, ymax] = [0, 1];
  if (ymin === ymax) [ymin, ymax] = [ymin - 1, ymax + 1];
  const w = PLOT.width - PLOT.left - PLOT.right;
  const h = PLOT.height - PLOT.top - PLOT.bottom;
  const plot = svg("svg", {
    viewBox: `0 0 ${PLOT.width} ${PLOT.height}`,
    width: PLOT.width,
    height: PLOT.height,
    role: "img",
    "aria-label": `profile of ${points.length} pixels`,
    "data-ymin": ymin,
    "data-ymax": ymax,
  });
  plot.append(svg("rect", { class: "frame", x: PLOT.left, y: PLOT.top, width: w, height: h }));
  const fx = (i) => PLOT.left + (points.length > 1 ? (i / (points.length - 1)) * w : w / 2);
  const fy = (v) => PLOT.top + ((ymax - v) / (ymax - ymin)) * h;
  for (let c = 0; c < nchannels; c++) {
    let d = "";
    let pen = "M";
    points.forEach((p, i) => {
      const v = p.values[c];
      if (v === null) {
        pen = "M";
        return;
      }
      d += `${pen}${fx(i).toFixed(2)},${fy(v).toFixed(2)} `;
      pen = "L";
    });
    plot.append(svg("path", { class: "channel", d: d.trim(), stroke: colors[c], "data-channel": c + 1 }));
  }
  const label = (x, y, text, anchor) => plot.append(svg("text", { x, y, "text-anchor": anchor }, text));
  label(PLOT.left - 4, PLOT.top + 10, short(ymax), "end");
  label(PLOT.left - 4, PLOT.top + h, short(ymin), "end");
  if (points.length) {
    const first = points[0];
    const last = points[points.length - 1];
    label(PLOT.left, PLOT.height - 8, `${first.x},${first.y}`, "start");
    label(PLOT.left + w, PLOT.height - 8, `${last.x},${last.y}`, "end");
    label(PLOT.left + w / 2, PLOT.height - 8, `${points.length} pixels`, "middle");
  }
  container.replaceChildren(plot);
}

/** The profile tool: click the start and the end of a line, see the plot. */
export function profileTool(view) {
  const { L, map, info } = view;
  const button = $("profile-tool");
  let active = false;
  let start = null;
  let line = null;

  function setActive(on) {
    active = on;
    start = null;
    button.setAttribute("aria-pressed", String(on));
    map.getContainer().classList.toggle("profiling", on);
    if (on) map.dragging.disable();
    else map.dragging.enable();
  }
  button.addEventListener("click", () => setActive(!active));
  $("profile-close").addEventListener("click", () => {
    $("profile").hidden = true;
    if (line) line.remove();
    line = null;
  });

  // The line is drawn between pixel centres, clamped to the image.
  const clamp = ([x, y]) => [Math.min(Math.max(x, 1), info.full_size[0]), Math.min(Math.max(y, 1), info.full_size[1])];
  const centre = ([x, y]) => view.latLngOfDisplay(x - 0.5, info.full_size[1] - y + 0.5);

  map.on("click", async (event) => {
    if (!active) return;
    const pixel = clamp(view.fitsAt(event.latlng));
    if (start === null) {
      start = pixel;
      if (line) line.remove();
      line = L.polyline([centre(pixel), centre(pixel)], { className: "profile-line", interactive: false }).addTo(map);
      return;
    }
    const end = pixel;
    line.setLatLngs([centre(start), centre(end)]);
    const spec = `${start[0]},${start[1]}:${end[0]},${end[1]}`;
    setActive(false);
    $("profile").hidden = false;
    $("profile-line").textContent = `from (${spec.replace(":", ") to (")})`;
    try {
      const answer = await view.request([["PFL", spec]]);
      $("profile-plot").dataset.pfl = spec;
      plotProfile($("profile-plot"), answer, view.colors());
    } catch (error) {
      $("profile-plot").textContent = String(error.message);
    }
  });
  map.on("mousemove", (event) => {
    if (active && start !== null) line.setLatLngs([centre(start), event.latlng]);
  });
}

/** Outlines and names of the CCDs of a mosaic, on demand. */
export function ccdOutlines(view) {
  const { L, map, info } = view;
  const button = $("show-ccds");
  if (info.images.length < 2) return;
  button.hidden = false;
  const ny = info.full_size[1];
  const group = L.layerGroup();
  info.images.forEach((image, i) => {
    // detslice: FITS [start, end, step] per axis in frame pixels; a negative
    // step (a flipped CCD) lists the ends the other way round.
    const [xs, ys] = image.detslice;
    const [x1, x2] = [Math.min(xs[0], xs[1]), Math.max(xs[0], xs[1])];
    const [y1, y2] = [Math.min(ys[0], ys[1]), Math.max(ys[0], ys[1])];
    const corners = [view.latLngOfDisplay(x1 - 1, ny - y2), view.latLngOfDisplay(x2, ny - y1 + 1)];
    const name = image.header.EXTNAME ?? image.header.CCDNAME ?? `#${i + 1}`;
    group.addLayer(L.rectangle(L.latLngBounds(corners), { className: "ccd", fill: false, weight: 1, interactive: false }));
    group.addLayer(
      L.tooltip({ permanent: true, direction: "center", className: "ccd-name", interactive: false })
        .setLatLng(L.latLngBounds(corners).getCenter())
        .setContent(String(name)),
    );
  });
  button.addEventListener("click", () => {
    const on = !map.hasLayer(group);
    if (on) group.addTo(map);
    else group.remove();
    button.setAttribute("aria-pressed", String(on));
  });
}
