-- wrk-async.lua: one job at a time per connection: POST /execute/async (signed, unique), then
-- GET /jobs/{id} every BENCH_POLL_MS (default 10) until the job is finished. For each job it
-- prints "ASYNC_SAMPLE <ms>": from just before the POST was handed to wrk to the response
-- that showed the job finished. Errors (a status other than 202/200, a job that did not
-- complete) are counted in the BENCH line's bad=.
-- Environment: CORRAL_PUBLIC_KEY, CORRAL_SECRET_KEY, BENCH_LANGUAGE, BENCH_CODE, BENCH_RUN,
-- BENCH_MAX (jobs per thread, then the thread stops), BENCH_POLL_MS.
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
local hmac = require("hmac")
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local tsbuf = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, tsbuf)   -- CLOCK_MONOTONIC
  return tonumber(tsbuf.tv_sec) * 1000 + tonumber(tsbuf.tv_nsec) / 1e6
end

local threads = {}
local counter = 0
local pub = os.getenv("CORRAL_PUBLIC_KEY")
local secret = os.getenv("CORRAL_SECRET_KEY")
local language = os.getenv("BENCH_LANGUAGE") or "python"
local code = os.getenv("BENCH_CODE") or "print('hello')"
local run_tag = os.getenv("BENCH_RUN") or ""
local max = tonumber(os.getenv("BENCH_MAX") or "0") or 0
local poll_ms = tonumber(os.getenv("BENCH_POLL_MS") or "10") or 10
local nthreads = 0   -- threads made by setup(); each thread's own number is its global tid
local job = nil        -- the job being polled, or nil: submit next
local t_submit = 0
local polling = false
local done_jobs = 0
polls = 0

local json_str = hmac.json_str

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

function init(args)
  errors = 0
  polls = 0
end

local function signed(method, path, body)
  return hmac.signed_request(pub, secret, method, path, body)
end

function delay()
  if job ~= nil then return poll_ms end
  return 0
end

function request()
  if job ~= nil then
    polls = polls + 1
    return signed("GET", "/jobs/" .. job, "")
  end
  counter = counter + 1
  local body = '{"language":' .. json_str(language) .. ',"code":' .. json_str(code) ..
    ',"env":{"BENCH_RUN":' .. json_str(run_tag) .. '},"stdin":"' .. tid .. "-" .. counter .. '"}'
  t_submit = now_ms()
  return signed("POST", "/execute/async", body)
end

local finished = { completed = true, failed = true, timeout = true, cancelled = true,
  compilation_error = true, runtime_error = true, memory_limit = true, output_limit = true,
  internal_error = true, wrong_answer = true }

function response(status, headers, body)
  if job == nil then
    local id = body:match('"job_id"%s*:%s*"([0-9a-f-]+)"')
    if status ~= 202 or id == nil then
      errors = errors + 1
      return
    end
    job = id
    return
  end
  if status ~= 200 then
    errors = errors + 1
    job = nil
    return
  end
  local st = body:match('"status"%s*:%s*"([a-z_]+)"')
  if st ~= nil and finished[st] then
    if st ~= "completed" then errors = errors + 1 end
    io.write(string.format("ASYNC_SAMPLE %.3f\n", now_ms() - t_submit))
    job = nil
    done_jobs = done_jobs + 1
    if max > 0 and done_jobs == max then
      io.write("BENCH_STOPPED\n")   -- wrk itself runs until -d or SIGINT: bench/run sends one
      io.flush()
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local bad, polls_all = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("errors") or 0)
    polls_all = polls_all + (t:get("polls") or 0)
  end
  io.write(string.format("BENCH requests=%d bad=%d socket_errors=%d duration_us=%d polls=%d\n",
    summary.requests, bad, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout, summary.duration, polls_all))
end
