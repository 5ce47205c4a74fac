-- wrk script for bench/server-config: GET requests, each with a bearer token taken in turn from a list, so every
-- connection cycles through several distinct tokens (several cached entries on the server, not one).
-- Every response is checked: a status outside 2xx, or a 2xx body without the expected text, is counted, so a
-- benchmark of errors cannot pass for a fast one. The last line of output is machine-readable (BENCH key=value ...).
--
-- Env: WRK_TOKENS_FILE  a file with one token per line (required; sent as Authorization: Bearer TOKEN)
--      WRK_PATH         the path to request (default /api/v1/config)
--      WRK_EXPECT       text every 2xx body must contain (default "credential_process")

local path = os.getenv("WRK_PATH") or "/api/v1/config"
local expect = os.getenv("WRK_EXPECT") or "credential_process"
local tokens_file = os.getenv("WRK_TOKENS_FILE")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

local requests_ = {}
local count = 0
local next_index = 1

function init(args)
  non2xx = 0
  badbody = 0
  firstbad = ""
  local f = assert(io.open(assert(tokens_file, "WRK_TOKENS_FILE is not set"), "r"))
  for line in f:lines() do
    if line ~= "" then
      count = count + 1
      -- Built once: request() then costs wrk a table lookup, not a formatting call.
      requests_[count] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. line, ["Accept"] = "application/json" })
    end
  end
  f:close()
  assert(count > 0, "no tokens in " .. tokens_file)
  -- Threads start at different tokens.
  next_index = ((thread_number or 1) * 3) % count + 1
end

function request()
  local r = requests_[next_index]
  next_index = next_index % count + 1
  return r
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if firstbad == "" then firstbad = tostring(status) .. " " .. string.sub(body or "", 1, 200) end
  elseif expect ~= "" and not string.find(body or "", expect, 1, true) then
    badbody = badbody + 1
    if firstbad == "" then firstbad = tostring(status) .. " " .. string.sub(body or "", 1, 200) end
  end
end

function done(summary, latency, requests)
  local non2xx_total, badbody_total, first = 0, 0, ""
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
    badbody_total = badbody_total + thread:get("badbody")
    local f = thread:get("firstbad")
    if first == "" and f and f ~= "" then first = f end
  end
  if first ~= "" then io.write("first bad response: ", (string.gsub(first, "%s+", " ")), "\n") end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d badbody=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    non2xx_total, badbody_total, e.connect, e.read, e.write, e.timeout))
end
