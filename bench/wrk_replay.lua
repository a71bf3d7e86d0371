-- wrk script: replay prepared raw HTTP requests in order, one per request (bench/throughput.py).
-- Arguments after `--`: the file of concatenated requests, and a file with their lengths, one a line.
-- Prints one line "BENCH_JSON {...}" with the totals when done.

local reqs, n, i, wrapped = {}, 0, 0, 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  for line in io.lines(args[2]) do
    local len = tonumber(line)
    if len then
      n = n + 1
      reqs[n] = string.sub(data, pos, pos + len - 1)
      pos = pos + len
    end
  end
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return reqs[i]
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "wrapped": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), w))
end
