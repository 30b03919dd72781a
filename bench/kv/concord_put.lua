-- wrk script: concord PUT /v1/kv/key-<n mod BENCH_KEYS> with a BENCH_VALUE_SIZE-byte body.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")
local value = common.value()

function build_request(i)
   return wrk.format("PUT", "/v1/kv/" .. common.key(i),
      { ["Content-Type"] = "application/octet-stream" }, value)
end

function response_ok(status, body)
   return status >= 200 and status < 300
end
