-- Replays presigned S3 requests (path + query, one per line) generated up front,
-- so wrk spends no CPU on signing and every server sees the identical client.
--
-- Configured through the environment (wrk's script argument handling is awkward):
--   BENCH_URLS    file with one presigned path?query per line
--   BENCH_METHOD  GET or PUT
--   BENCH_BODY    body size in bytes for PUT (0 for none)
--   BENCH_THREADS number of wrk threads (lines are dealt out round-robin)
-- The `done` hook prints one line "BENCHJSON {...}" with the summary.

local thread_list = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(thread_list, thread)
end

function init(args)
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   local size = tonumber(os.getenv("BENCH_BODY") or "0")
   method = os.getenv("BENCH_METHOD") or "GET"
   paths = {}
   local i = 0
   for line in io.lines(os.getenv("BENCH_URLS")) do
      if i % nthreads == tid then
         paths[#paths + 1] = line
      end
      i = i + 1
   end
   body = nil
   if size > 0 then
      body = string.rep("x", size)
   end
   headers = { Host = wrk.headers["Host"] }
   idx = 0
   wrapped = 0
end

function request()
   idx = idx + 1
   if idx > #paths then
      idx = 1
      wrapped = wrapped + 1
   end
   return wrk.format(method, paths[idx], headers, body)
end

function done(summary, latency, requests)
   local wraps = 0
   for _, t in ipairs(thread_list) do
      wraps = wraps + (t:get("wrapped") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,"wrapped":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.mean, latency.max, wraps))
end
