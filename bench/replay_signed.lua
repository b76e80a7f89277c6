-- Replays S3 requests signed the way SDKs sign them: SigV4 in the Authorization header,
-- each request with its own X-Amz-Date and signature (made up front by botocore's
-- S3SigV4Auth, so wrk spends no CPU on signing). Companion of replay.lua, same summary.
--
-- Environment:
--   BENCH_URLS    file, one request a line: path<TAB>x-amz-date<TAB>authorization<TAB>sha256
--   BENCH_METHOD  GET, HEAD or PUT
--   BENCH_BODY    body size in bytes for PUT (0 for none); the body is "x" * size, the
--                 payload that was signed
--   BENCH_THREADS number of wrk threads (lines are dealt out round-robin)

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
   reqs = {}
   local i = 0
   for line in io.lines(os.getenv("BENCH_URLS")) do
      if i % nthreads == tid then
         local path, date, auth, sha = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)")
         reqs[#reqs + 1] = { path, date, auth, sha }
      end
      i = i + 1
   end
   body = nil
   if size > 0 then
      body = string.rep("x", size)
   end
   host = wrk.headers["Host"]
   idx = 0
   wrapped = 0
end

function request()
   idx = idx + 1
   if idx > #reqs then
      idx = 1
      wrapped = wrapped + 1
   end
   local r = reqs[idx]
   local headers = {
      Host = host,
      ["X-Amz-Date"] = r[2],
      Authorization = r[3],
      ["X-Amz-Content-Sha256"] = r[4],
   }
   return wrk.format(method, r[1], headers, body)
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
