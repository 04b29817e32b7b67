// IIP arithmetic and URLs of the viewer: pure functions, no DOM, no Leaflet.
//
// Conventions (those of the server, see the package's DESIGN):
// - JTL z counts levels from the coarsest (z = 0) to full resolution
//   (z = tile_levels - 1); the Leaflet zoom of the viewer is that same z.
// - The tile grid of a level is the seed's formula; tiles are numbered
//   x + ncols * y, rows running from the top of the displayed image.
// - "Display" pixels: full resolution, origin at the top-left corner, y down,
//   0-based floats (what Leaflet projects to at the finest zoom).
// - "FITS" pixels: 1-based integers, x first, y growing upward (VAL, PFL).

export const COLORMAPS = ["grey", "jet", "cold", "cool", "hot"];

/** Tile rows and columns of JTL level z (seed formula, never zero). */
export function gridShape(info, z) {
  const level = info.tile_levels - 1 - z;
  const [nx, ny] = info.full_size;
  const [tw, th] = info.tile_size;
  // (n >> level) - 1 may be -1: floor division keeps Python's meaning.
  const count = (n, t) => Math.max(1, Math.floor(((n >> level) - 1) / t) + 1);
  return { cols: count(nx, tw), rows: count(ny, th) };
}

/** Default cuts per channel: the median over the images of their cuts. */
export function defaultCuts(info) {
  const median = (values) => {
    const s = [...values].sort((a, b) => a - b);
    const h = s.length >> 1;
    return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
  };
  const cuts = [];
  for (let c = 0; c < info.channels; c++) {
    const lows = info.images.map((im) => im.min_max[c][0]);
    const highs = info.images.map((im) => im.min_max[c][1]);
    cuts.push([median(lows), median(highs)]);
  }
  return cuts;
}

/** Default colour of each channel in colour mode: blue to red, as bands go. */
export function defaultColors(nchannels) {
  if (nchannels === 1) return ["#ffffff"];
  const colors = [];
  for (let c = 0; c < nchannels; c++) {
    // Hue from 240 (blue) down to 0 (red): the first band is the bluest.
    colors.push(hslToHex(240 - (240 * c) / (nchannels - 1)));
  }
  return colors;
}

function hslToHex(hue) {
  const f = (n) => {
    const k = (n + hue / 30) % 12;
    const v = 0.5 - 0.5 * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    return Math.round(255 * v)
      .toString(16)
      .padStart(2, "0");
  };
  return `#${f(0)}${f(8)}${f(4)}`;
}

/** "#rrggbb" -> [r, g, b] weights in [0, 1], 3 decimals (what MIX carries). */
export function hexToMix(hex) {
  return [1, 3, 5].map((i) => Math.round((parseInt(hex.slice(i, i + 2), 16) / 255) * 1000) / 1000);
}

/** [r, g, b] weights in [0, 1] -> "#rrggbb". */
export function mixToHex(mix) {
  const byte = (v) => Math.round(Math.max(0, Math.min(1, v)) * 255);
  return "#" + mix.map((v) => byte(v).toString(16).padStart(2, "0")).join("");
}

/** The display settings an image starts with. */
export function defaultSettings(info) {
  return {
    // 0 is colour mode; c >= 1 shows channel c alone.
    channel: info.channels > 1 ? 0 : 1,
    cuts: defaultCuts(info),
    colors: defaultColors(info.channels),
    cmp: "grey",
    inv: false,
    brt: info.brightness,
    cnt: info.contrast,
    gam: info.gamma,
    qlt: info.quality,
  };
}

const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * IIP rendering parameters of the tiles, as [name, value] pairs.
 *
 * Mono mode sends CHAN, the cuts of that channel if changed, and CMP; colour
 * mode sends MINMAX and MIX for every channel, as the VisiOmatic client does.
 * Other settings are sent when they differ from the image's defaults, so that
 * default views share the server's cached tiles.
 */
export function renderParams(settings, info) {
  const defaults = defaultSettings(info);
  const params = [];
  const minmax = (c) => `${c}:${settings.cuts[c - 1][0]},${settings.cuts[c - 1][1]}`;
  if (settings.channel > 0) {
    const c = settings.channel;
    params.push(["CHAN", String(c)]);
    if (!same(settings.cuts[c - 1], defaults.cuts[c - 1])) params.push(["MINMAX", minmax(c)]);
    if (settings.cmp !== "grey") params.push(["CMP", settings.cmp]);
  } else {
    for (let c = 1; c <= info.channels; c++) params.push(["MINMAX", minmax(c)]);
    for (let c = 1; c <= info.channels; c++) {
      params.push(["MIX", `${c}:${hexToMix(settings.colors[c - 1]).join(",")}`]);
    }
  }
  if (settings.brt !== defaults.brt) params.push(["BRT", String(settings.brt)]);
  if (settings.cnt !== defaults.cnt) params.push(["CNT", String(settings.cnt)]);
  if (settings.gam !== defaults.gam) params.push(["GAM", String(settings.gam)]);
  if (settings.inv) params.push(["INV", "1"]);
  if (settings.qlt !== defaults.qlt) params.push(["QLT", String(settings.qlt)]);
  return params;
}

/** URL of an IIP request on image `fif` with the given [name, value] pairs. */
export function iipUrl(base, fif, params) {
  const query = new URLSearchParams([["FIF", fif], ...params]);
  return `${base}?${query}`;
}

/** URL of tile (x, y) of level z with the current settings. */
export function tileUrl(base, fif, info, settings, z, x, y) {
  const n = x + gridShape(info, z).cols * y;
  return iipUrl(base, fif, [["JTL", `${z},${n}`], ...renderParams(settings, info)]);
}

/** Display pixel (0-based floats) -> FITS pixel [x, y] (1-based, y up). */
export function displayToFits(info, px, py) {
  return [Math.floor(px) + 1, info.full_size[1] - Math.floor(py)];
}

/** Number of tiles the server reads for region RGN at binning b (its formula). */
export function regionTileCount(info, region, binning) {
  const [x1, y1, x2, y2] = region;
  const level = Math.min(Math.floor(Math.log2(binning)), info.tile_levels - 1);
  const [tw, th] = info.tile_size;
  const cols = Math.floor((x2 - 1) / 2 ** level / tw) - Math.floor((x1 - 1) / 2 ** level / tw);
  const rows = Math.floor((y2 - 1) / 2 ** level / th) - Math.floor((y1 - 1) / 2 ** level / th);
  return (cols + 1) * (rows + 1);
}

/**
 * RGN corners of a view given in display pixels (floats), clipped to the
 * image: [x1, y1, x2, y2], 1-based, inclusive, origin top-left, y down.
 * Returns null when the view does not overlap the image.
 */
export function viewRegion(info, left, top, right, bottom) {
  const [nx, ny] = info.full_size;
  const x1 = Math.max(1, Math.floor(left) + 1);
  const y1 = Math.max(1, Math.floor(top) + 1);
  const x2 = Math.min(nx, Math.ceil(right));
  const y2 = Math.min(ny, Math.ceil(bottom));
  return x2 < x1 || y2 < y1 ? null : [x1, y1, x2, y2];
}

/** Smallest power-of-two binning whose region stays within the server's limit. */
export function regionBinning(info, region, maxTiles) {
  let binning = 1;
  while (regionTileCount(info, region, binning) > maxTiles) binning *= 2;
  return binning;
}
