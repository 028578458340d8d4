-- wrk script of the benchmark: POST requests read from a file, one per line:
--   <Authorization header value or empty> TAB <JSON body>
-- wrk -s requests.lua URL -- FILE rotate      each request takes the next line
-- wrk -s requests.lua URL -- FILE per-thread  thread i always sends line i (one user each)
-- done() prints one line "BENCH_JSON {...}" that bench/run.py reads.
local threads = {}
local requests = {}
local counter = 0
local fixed = nil

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    local auth = line:sub(1, tab - 1)
    local headers = { ["Content-Type"] = "application/json" }
    if auth ~= "" then
      headers["Authorization"] = auth
    end
    table.insert(requests, wrk.format("POST", wrk.path, headers, line:sub(tab + 1)))
  end
  if args[2] == "per-thread" then
    fixed = requests[(index % #requests) + 1]
  end
end

function request()
  if fixed then
    return fixed
  end
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
