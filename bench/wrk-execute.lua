-- wrk-execute.lua: sends validly signed, unique POST /execute requests (unsandbox HMAC auth)
-- and reports every status that was not 200.
-- Environment: CORRAL_PUBLIC_KEY, CORRAL_SECRET_KEY, BENCH_LANGUAGE, BENCH_CODE; optional
-- BENCH_RUN (a tag put in each job's env, so bench/run finds this run's jobs with SQL),
-- BENCH_MAX (each thread stops after this many responses; 0 = run for wrk's -d),
-- BENCH_PATH (/execute, the default, or /execute/async), BENCH_UNIQUE=1 (append a C comment
-- with a counter to each source, so no two requests compile the same code).
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
local hmac = require("hmac")

local threads = {}
local counter = 0
local pub = os.getenv("CORRAL_PUBLIC_KEY")
local secret = os.getenv("CORRAL_SECRET_KEY")
local language = os.getenv("BENCH_LANGUAGE") or "python"
local code = os.getenv("BENCH_CODE") or "print('hello')"
local path = os.getenv("BENCH_PATH") or "/execute"   -- or /execute/async (answered 202)
local async = path == "/execute/async"
local run_tag = os.getenv("BENCH_RUN") or ""
local max = tonumber(os.getenv("BENCH_MAX") or "0") or 0
local seen = 0
local unique = os.getenv("BENCH_UNIQUE") == "1"
local nthreads = 0   -- threads made by setup(); each thread's own number is its global tid

local json_str = hmac.json_str

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  errors = 0
end

-- Each request is unique (a per-thread counter as stdin, which the programs do not read and
-- which, unlike env, is not part of the compile cache key), so no signature repeats.
function request()
  counter = counter + 1
  local src = code
  if unique then src = code .. "\n/* " .. tid .. "-" .. counter .. " */\n" end
  local body = '{"language":' .. json_str(language) .. ',"code":' .. json_str(src) ..
    ',"env":{"BENCH_RUN":' .. json_str(run_tag) .. '},"stdin":"' .. tid .. "-" .. counter .. '"}'
  return hmac.signed_request(pub, secret, "POST", path, body)
end

function response(status, headers, body)
  seen = seen + 1
  if max > 0 and seen == max then
    io.write("BENCH_STOPPED\n")   -- wrk itself runs until -d or SIGINT: bench/run sends one
    io.flush()
    wrk.thread:stop()
  end
  local ok
  if async then ok = status == 202 and body:find('"job_id"', 1, true)
  else ok = status == 200 and body:find('"status":"completed"', 1, true) end
  if not ok then
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
