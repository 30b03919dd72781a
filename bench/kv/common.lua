-- Shared wrk hooks for the bench/kv scripts (loaded by concord_*.lua / etcd_*.lua).
--
-- The including script defines, before loading this file:
--   build_request(i)        -> full HTTP request string for key index i (0-based),
--                              built once per thread with wrk.format
--   response_ok(status, body) -> true when the response counts as a success
--
-- Environment (read in every wrk thread):
--   BENCH_KEYS        number of distinct keys, default 10000 (key-0 .. key-9999)
--   BENCH_VALUE_SIZE  value size in bytes, default 256
--
-- done() prints one machine-readable line starting with "BENCH_RESULT".

local M = {}

M.nkeys = tonumber(os.getenv("BENCH_KEYS") or "") or 10000
M.value_size = tonumber(os.getenv("BENCH_VALUE_SIZE") or "") or 256

function M.key(i)
   return "key-" .. i
end

-- Deterministic printable value of value_size bytes.
function M.value()
   local pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
   local parts, n = {}, 0
   while n < M.value_size do
      local chunk = pattern:sub(1, math.min(#pattern, M.value_size - n))
      parts[#parts + 1] = chunk
      n = n + #chunk
   end
   return table.concat(parts)
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Standard base64 (RFC 4648, with padding); pure Lua, no bit library needed.
function M.base64(s)
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = s:byte(i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local c1 = math.floor(n / 262144) % 64
      local c2 = math.floor(n / 4096) % 64
      local c3 = math.floor(n / 64) % 64
      local c4 = n % 64
      out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
         .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=")
         .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
   end
   return table.concat(out)
end

-- ---- wrk hooks -------------------------------------------------------------

local threads = {}   -- main state only: every thread, for done()
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   threads[#threads + 1] = thread
end

-- Per-thread state (each wrk thread has its own Lua state).
local requests_tbl
local counter = 0
bad = 0        -- responses that failed response_ok (read back by done())
responses = 0  -- responses seen

function init(args)
   requests_tbl = {}
   for i = 0, M.nkeys - 1 do
      requests_tbl[i + 1] = build_request(i)
   end
   -- Spread threads over the key space so they do not walk the same keys in step.
   counter = ((id or 0) * 4999) % M.nkeys
end

function request()
   local r = requests_tbl[counter + 1]
   counter = (counter + 1) % M.nkeys
   return r
end

function response(status, headers, body)
   responses = responses + 1
   if not response_ok(status, body) then
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   local bad_total, resp_total = 0, 0
   for _, t in ipairs(threads) do
      bad_total = bad_total + (tonumber(t:get("bad")) or 0)
      resp_total = resp_total + (tonumber(t:get("responses")) or 0)
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
         .. "max_ms=%.3f mean_ms=%.3f responses=%d bad=%d status_ge400=%d "
         .. "err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000,
      resp_total, bad_total, e.status, e.connect, e.read, e.write, e.timeout))
end

return M
