-- wrk script for bench/idp-tokens: one token request per call (POST, form body, Basic client authentication).
-- Every response is checked: a status outside 2xx, or a 2xx body without the expected text, is counted, so a
-- benchmark of errors cannot pass for a fast one. The last line of output is machine-readable (BENCH key=value ...).
--
-- Env: WRK_AUTH    the Authorization header value (e.g. "Basic YmVuY2g6...")
--      WRK_BODY    the form body (default "grant_type=client_credentials")
--      WRK_METHOD  POST (default) or GET (e.g. for a /healthz baseline)
--      WRK_EXPECT  text every 2xx body must contain (default "access_token")

local method = os.getenv("WRK_METHOD") or "POST"
local expect = os.getenv("WRK_EXPECT") or "access_token"
wrk.method = method
if method == "POST" then
  wrk.body = os.getenv("WRK_BODY") or "grant_type=client_credentials"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
wrk.headers["Accept"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  badbody = 0
  firstbad = ""
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
