-- wrk script: random 256 x 256 tiles of one level of one image, IIP JTL requests.
--
--   wrk -t1 -c8 -d10s -s benchmarks/tiles.lua http://127.0.0.1:PORT -- \
--       ENDPOINT FIF LEVEL NCOLS NROWS MODE SEED [EXTRA]
--
-- ENDPOINT  IIP path, e.g. /iip (ours) or /api (the reference server)
-- FIF       image name, relative to the served folder
-- LEVEL     JTL resolution number (nlevels - 1 is full resolution)
-- NCOLS, NROWS  tile grid of that level
-- MODE      "uncached": a random tile and a random CNT in [1, 1.01) per request, so
--           that no tile cache of any kind can answer;
--           "cached": one of 64 fixed tiles (fixed settings) per request
-- SEED      random seed
-- EXTRA     optional query string added to every request, e.g. "&CHAN=1&CMP=jet"
--
-- When done, prints one line "WRKJSON {...}" with the counts and latencies (us).

local endpoint, fif, level, ncols, nrows, mode, extra
local fixed = {}

function init(args)
   endpoint = args[1]
   fif = args[2]
   level = tonumber(args[3])
   ncols = tonumber(args[4])
   nrows = tonumber(args[5])
   mode = args[6]
   math.randomseed(tonumber(args[7]))
   extra = args[8] or ""
   local count = math.min(64, ncols * nrows)
   for i = 1, count do
      fixed[i] = string.format(
         "%s?FIF=%s&JTL=%d,%d%s", endpoint, fif, level,
         math.random(0, ncols * nrows - 1), extra)
   end
end

function request()
   local path
   if mode == "cached" then
      path = fixed[math.random(1, #fixed)]
   else
      path = string.format(
         "%s?FIF=%s&JTL=%d,%d&CNT=%.9f%s", endpoint, fif, level,
         math.random(0, ncols * nrows - 1), 1 + 0.01 * math.random(), extra)
   end
   return wrk.format("GET", path)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.mean, latency.max))
end
