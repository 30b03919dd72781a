-- wrk script: etcd v3 JSON gateway POST /v3/kv/range {"key": b64} (linearizable by
-- default: no "serializable" flag). etcd answers 200 with no "kvs" for a missing key;
-- that is counted as an error, like a 404 from concord.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

function build_request(i)
   local body = '{"key":"' .. common.base64(common.key(i)) .. '"}'
   return wrk.format("POST", "/v3/kv/range", { ["Content-Type"] = "application/json" }, body)
end

function response_ok(status, body)
   return status >= 200 and status < 300 and body ~= nil
      and string.find(body, '"kvs"', 1, true) ~= nil
end
