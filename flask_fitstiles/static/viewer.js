// The viewer: a Leaflet map of IIP tiles, the readouts, the overview, the
// downloads, and the view kept in the URL. Settings come from the data-
// attributes of <main id="viewer"> (the page allows no inline script).

import {
  displayToFits,
  gridShape,
  iipUrl,
  regionBinning,
  renderParams,
  tileUrl,
  viewRegion,
} from "./iip.js";
import { buildControls, headerText, showInfo } from "./panel.js";
import { decodeView, encodeView } from "./state.js";
import { ccdOutlines, profileTool } from "./tools.js";

const L = window.L;
const $ = (id) => document.getElementById(id);
const root = $("viewer");
const config = {
  iip: root.dataset.iip,
  fif: root.dataset.fif,
  maxRegionTiles: Number(root.dataset.maxRegionTiles),
};

/** GET an IIP request of this image; resolve to its JSON, reject with the server's message. */
async function request(params) {
  const response = await fetch(iipUrl(config.iip, config.fif, params));
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail?.map((d) => d.msg).join("; ") || response.statusText);
  return body;
}

function fail(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

// Tiles are <img> at their natural size inside a tile-sized box: edge tiles
// are cropped by the server and must not be stretched to the full tile size.
const IIPLayer = L.GridLayer.extend({
  initialize(urlOf, grid, options) {
    this._urlOf = urlOf;
    this._grid = grid;
    this._pending = 0;
    L.GridLayer.prototype.initialize.call(this, options);
  },

  createTile(coords, done) {
    const tile = document.createElement("div");
    const { cols, rows } = this._grid(coords.z);
    if (coords.x < 0 || coords.y < 0 || coords.x >= cols || coords.y >= rows) {
      setTimeout(() => done(null, tile));
      return tile;
    }
    const img = document.createElement("img");
    img.alt = "";
    img.draggable = false;
    this._load(img, this._urlOf(coords), () => done(null, tile));
    tile.append(img);
    return tile;
  },

  _load(img, url, then) {
    // A new src cancels the old load without any event: count each img once.
    if (!img.pending) this._count(+1);
    img.pending = true;
    const finish = () => {
      if (img.pending) this._count(-1);
      img.pending = false;
      if (then) then();
    };
    img.onload = finish;
    img.onerror = finish;
    img.src = url;
  },

  // Pending image count on the map element, for anyone waiting for a settled view.
  _count(delta) {
    this._pending += delta;
    if (this._map) this._map.getContainer().dataset.tilesPending = String(this._pending);
    // The first time every tile of the first view is in: what "first screen" means.
    if (this._pending === 0 && !performance.getEntriesByName("fitstiles:first-screen").length) {
      performance.mark("fitstiles:first-screen");
    }
  },

  /** Reload the tiles in place after a settings change (no blank flash). */
  refresh() {
    // _tiles is Leaflet's own record of the tiles on screen (stable in 1.x).
    for (const tile of Object.values(this._tiles)) {
      const img = tile.el.firstChild;
      if (img) this._load(img, this._urlOf(tile.coords));
    }
  },
});

async function main() {
  let info;
  try {
    info = await request([["INFO", ""]]);
    performance.mark("fitstiles:info");
  } catch (error) {
    fail(`Cannot show ${config.fif}: ${error.message}`);
    return;
  }
  const [nx, ny] = info.full_size;
  const zmax = info.tile_levels - 1;
  let view = decodeView(info, location.hash);
  let settings = view.settings;

  const map = L.map("map", {
    crs: L.CRS.Simple,
    minZoom: -2,
    maxZoom: zmax + 4,
    zoomSnap: 1,
    // One notch of a mouse wheel (100-120 px) is one level, i.e. one JTL level.
    wheelPxPerZoomLevel: 120,
    attributionControl: false,
    zoomControl: false,
    fadeAnimation: false,
  });
  // Display pixels (full resolution, top-left origin) <-> map coordinates.
  const latLngOfDisplay = (px, py) => map.unproject([px, py], zmax);
  const displayOf = (latlng) => map.project(latlng, zmax);
  const fitsAt = (latlng) => {
    const p = displayOf(latlng);
    return displayToFits(info, p.x, p.y);
  };
  const imageBounds = L.latLngBounds(latLngOfDisplay(0, ny), latLngOfDisplay(nx, 0));

  const layer = new IIPLayer(
    (coords) => tileUrl(config.iip, config.fif, info, settings, coords.z, coords.x, coords.y),
    (z) => gridShape(info, z),
    {
      tileSize: L.point(info.tile_size[0], info.tile_size[1]),
      // Past full resolution Leaflet enlarges the finest tiles: no new request.
      maxNativeZoom: zmax,
      minNativeZoom: 0,
      bounds: imageBounds,
      className: "iip-tiles",
    },
  );
  layer.addTo(map);
  // Top right: the top left is where the profile and the header open.
  L.control.zoom({ position: "topright" }).addTo(map);

  function setView(v) {
    if (v.center && v.zoom !== null) {
      const [x, y] = v.center;
      map.setView(latLngOfDisplay(x - 0.5, ny - y + 0.5), v.zoom, { animate: false });
    } else {
      map.fitBounds(imageBounds, { animate: false });
    }
  }

  function currentView() {
    const c = displayOf(map.getCenter());
    return { center: [c.x + 0.5, ny - c.y + 0.5], zoom: map.getZoom(), settings };
  }

  // -- history: the view in the hash; settled changes make a new entry --------------
  function commit(replace = false) {
    const hash = "#" + encodeView(info, currentView());
    if (hash === location.hash) return;
    if (replace) history.replaceState(null, "", hash);
    else history.pushState(null, "", hash);
  }
  let moveTimer = null;
  map.on("moveend", () => {
    clearTimeout(moveTimer);
    moveTimer = setTimeout(() => commit(), 300);
  });
  window.addEventListener("popstate", () => {
    view = decodeView(info, location.hash);
    applySettings(view.settings);
    controls.show(settings);
    setView(view);
  });

  // -- settings -> tiles, overview, downloads ---------------------------------------
  function applySettings(next, reload = true) {
    settings = next;
    if (reload) layer.refresh();
    updateOverview();
    updateDownload();
  }
  const controls = buildControls(info, settings, (next, settled) => {
    applySettings(next);
    if (settled) commit();
  });

  // -- readouts: pixel under the cursor; VAL one request at a time, at most one
  // every VAL_INTERVAL ms, always for the latest position --------------------------
  const VAL_INTERVAL = 50;
  let wanted = null;
  let inFlight = false;
  let waiting = null;
  let lastSent = -Infinity;
  const channels = Array.from({ length: info.channels }, (_, i) => ["CHAN", String(i + 1)]);
  async function askValue() {
    if (inFlight || waiting !== null || wanted === null) return;
    const wait = lastSent + VAL_INTERVAL - performance.now();
    if (wait > 0) {
      waiting = setTimeout(() => {
        waiting = null;
        askValue();
      }, wait);
      return;
    }
    const [x, y] = wanted;
    wanted = null;
    inFlight = true;
    lastSent = performance.now();
    try {
      const answer = await request([["VAL", `${x},${y}`], ...channels]);
      showValue(x, y, answer);
    } catch (error) {
      $("readout-values").textContent = "";
    } finally {
      inFlight = false;
      askValue();
    }
  }
  function showValue(x, y, answer) {
    const readout = $("readout");
    readout.dataset.x = x;
    readout.dataset.y = y;
    const text = answer.values.map((v) => (v === null ? "blank" : String(+v.toPrecision(7))));
    $("readout-values").textContent = "= " + text.join(", ");
    // Sky coordinates appear as soon as the server sends them.
    const sky = $("readout-sky");
    if (typeof answer.ra === "number" && typeof answer.dec === "number") {
      sky.textContent = `α ${answer.ra.toFixed(6)}° δ ${answer.dec.toFixed(6)}°`;
    } else {
      sky.textContent = "";
    }
  }
  map.on("mousemove", (event) => {
    const [x, y] = fitsAt(event.latlng);
    if (x < 1 || y < 1 || x > nx || y > ny) {
      $("readout-xy").textContent = "";
      $("readout-values").textContent = "";
      $("readout-sky").textContent = "";
      return;
    }
    $("readout-xy").textContent = `x ${x} y ${y}`;
    wanted = [x, y];
    askValue();
  });

  // -- overview: the coarsest tile, with the current view's rectangle ---------------
  const overview = $("overview-image");
  function updateOverview() {
    overview.src = tileUrl(config.iip, config.fif, info, settings, 0, 0, 0);
  }
  function updateOverviewBox() {
    const bounds = map.getBounds();
    const tl = displayOf(bounds.getNorthWest());
    const br = displayOf(bounds.getSouthEast());
    const box = $("overview-view").style;
    const clip = (v) => Math.min(Math.max(v, 0), 1) * 100;
    box.left = `${clip(tl.x / nx)}%`;
    box.top = `${clip(tl.y / ny)}%`;
    box.width = `${clip(br.x / nx) - clip(tl.x / nx)}%`;
    box.height = `${clip(br.y / ny) - clip(tl.y / ny)}%`;
  }
  $("overview").addEventListener("click", (event) => {
    const rect = overview.getBoundingClientRect();
    const px = ((event.clientX - rect.left) / rect.width) * nx;
    const py = ((event.clientY - rect.top) / rect.height) * ny;
    map.panTo(latLngOfDisplay(px, py));
  });
  map.on("move zoom", updateOverviewBox);

  // -- download of the view: full resolution if the server's limit allows -----------
  function updateDownload() {
    const link = $("download");
    const bounds = map.getBounds();
    const tl = displayOf(bounds.getNorthWest());
    const br = displayOf(bounds.getSouthEast());
    const region = viewRegion(info, tl.x, tl.y, br.x, br.y);
    if (region === null) {
      link.removeAttribute("href");
      $("download-note").textContent = "The view shows none of the image.";
      return;
    }
    const binning = regionBinning(info, region, config.maxRegionTiles);
    const rgn = `${region[0]},${region[1]}:${region[2]},${region[3]}`;
    link.href = iipUrl(config.iip, config.fif, [["RGN", rgn], ["BIN", String(binning)], ...renderParams(settings, info)]);
    const base = config.fif.replace(/^.*\//, "").replace(/\.[^.]*$/, "");
    link.download = `${base}_${region.join("_")}_bin${binning}.jpg`;
    const w = Math.ceil((region[2] - region[0] + 1) / binning);
    const h = Math.ceil((region[3] - region[1] + 1) / binning);
    $("download-note").textContent =
      binning === 1 ? `${w} × ${h} pixels, full resolution` : `${w} × ${h} pixels, binned ${binning} × ${binning}`;
  }
  map.on("moveend", updateDownload);

  // Past full resolution the pixels show as squares.
  map.on("zoomend", () => map.getContainer().classList.toggle("pixelated", map.getZoom() > zmax));

  // -- information, header, tools ---------------------------------------------------
  showInfo(info);
  $("header-text").textContent = headerText(info.header);
  const toggleHeader = (on) => {
    $("header").hidden = !on;
    $("show-header").setAttribute("aria-pressed", String(on));
  };
  $("show-header").addEventListener("click", () => toggleHeader($("header").hidden));
  $("header-close").addEventListener("click", () => toggleHeader(false));
  const tools = {
    L,
    map,
    info,
    request,
    fitsAt,
    latLngOfDisplay,
    colors: () => (settings.channel === 0 ? settings.colors : info.channels === 1 ? ["#1f77b4"] : settings.colors),
  };
  profileTool(tools);
  ccdOutlines(tools);

  setView(view);
  // The tiles on screen were just made with these settings: no reload.
  applySettings(settings, false);
  updateOverviewBox();
  commit(true);
  map.getContainer().focus();
  root.dataset.ready = "true";
}

main();
