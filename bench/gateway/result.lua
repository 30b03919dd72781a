-- bench/gateway/result.lua: wrk's end-of-run summary as one machine-readable line.
--
-- Only done() is defined: with no request() or response() hook wrk keeps its static
-- request and does not hand responses to Lua, so the script costs nothing per request.
-- wrk counts a status >= 400 as errors.status; connect/read/write/timeout are socket
-- errors. Latencies are in ms.

function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
         .. "max_ms=%.3f mean_ms=%.3f status_ge400=%d err_connect=%d err_read=%d "
         .. "err_write=%d err_timeout=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000,
      e.status, e.connect, e.read, e.write, e.timeout))
end
