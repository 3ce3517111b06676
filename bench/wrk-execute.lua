-- wrk-execute.lua: sends validly signed, unique POST /execute requests (unsandbox HMAC auth)
-- and reports every status that was not 200.
-- Environment: CORRAL_PUBLIC_KEY, CORRAL_SECRET_KEY, BENCH_LANGUAGE, BENCH_CODE.
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
local hmac = require("hmac")

local threads = {}
local counter = 0
local pub = os.getenv("CORRAL_PUBLIC_KEY")
local secret = os.getenv("CORRAL_SECRET_KEY")
local language = os.getenv("BENCH_LANGUAGE") or "python"
local code = os.getenv("BENCH_CODE") or "print('hello')"
local path = "/execute"
local tid = 0

-- Escapes a string for a JSON string literal.
local function json_str(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" elseif c == "\n" then return "\\n" end
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  errors = 0
end

-- Each request is unique (a per-thread counter in env), so no signature repeats within the window.
function request()
  counter = counter + 1
  local body = '{"language":' .. json_str(language) .. ',"code":' .. json_str(code) ..
    ',"env":{"BENCH_SEQ":"' .. tid .. "-" .. counter .. '"}}'
  local ts = tostring(os.time())
  local sig = hmac.hmac_sha256_hex(secret, ts .. ":POST:" .. path .. ":" .. body)
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. pub,
    ["X-Timestamp"] = ts,
    ["X-Signature"] = sig,
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, body)
  if status ~= 200 or not body:find('"status":"completed"', 1, true) then
    errors = errors + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("errors") or 0)
  end
  io.write(string.format("BENCH requests=%d bad=%d socket_errors=%d duration_us=%d p50_us=%d p95_us=%d p99_us=%d\n",
    summary.requests, bad, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
