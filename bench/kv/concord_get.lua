-- wrk script: concord linearizable GET /v1/kv/key-<n mod BENCH_KEYS> (keys must exist:
-- any non-2xx, including 404, counts as an error).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

function build_request(i)
   return wrk.format("GET", "/v1/kv/" .. common.key(i))
end

function response_ok(status, body)
   return status >= 200 and status < 300
end
