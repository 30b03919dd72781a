-- wrk script: etcd v3 JSON gateway POST /v3/kv/put {"key": b64, "value": b64}.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")
local value_b64 = common.base64(common.value())  -- computed once

function build_request(i)
   local body = '{"key":"' .. common.base64(common.key(i)) .. '","value":"' .. value_b64 .. '"}'
   return wrk.format("POST", "/v3/kv/put", { ["Content-Type"] = "application/json" }, body)
end

function response_ok(status, body)
   return status >= 200 and status < 300
end
