-- wrk script for bench/idp-flows: the flows people cause on an OpenID Provider, with single-use values spent once.
--
-- FLOW=refresh: every request spends one refresh token (grant_type=refresh_token, public client) and must get a new
--   one back, which goes into this thread's pool for a later request. The pool is seeded from FLOW_TOKENS (one token
--   a line, each from its own login, so no two requests ever race on one login's token family); thread i of n takes
--   lines i, i+n, ... A token is never sent twice: one that comes back bad is dropped, and the run fails.
-- FLOW=code: one "exchange" is GET FLOW_AUTHORIZE (a signed-in session cookie, a first-party client, PKCE S256) answered
--   302/303 with a code, then POST FLOW_TOKEN_PATH with that code and its verifier answered 200 with an access token,
--   an ID token carrying the nonce sent with the GET, and a refresh token. request() sends the POST for a waiting code
--   first, else starts a new exchange; the exchange's latency runs from building the GET to reading the token
--   response (state and nonce name the exchange, so the two answers are matched to it).
--
-- Every response is checked; anything else (another status, a missing or reused token, a nonce we did not send) is
-- counted as bad, and the first bad one is described (status and the error body; a 200 body is never printed, it
-- holds tokens). The last line of output is machine-readable: BENCH key=value ...
--
-- Env: FLOW (refresh|code), FLOW_THREADS (wrk -t), FLOW_ADDRS (host:port,... one per thread in turn; default the
--      URL's), FLOW_TOKEN_PATH, FLOW_CLIENT_ID, FLOW_TOKENS (refresh; FLOW_TOKENS_OUT: where done() writes the tokens
--      that came back and were not spent, for a next run), and for code: FLOW_AUTHORIZE_PATH,
--      FLOW_AUTHORIZE_EXTRA (appended to the query, e.g. "&g_continue"), FLOW_REDIRECT, FLOW_SCOPE, FLOW_PKCE (lines
--      "verifier challenge"), FLOW_COOKIES (Cookie header values, one a line; thread i uses line i mod n).

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } flows_timespec;
  int clock_gettime(int clk_id, flows_timespec *tp);
]]
local ts = ffi.new("flows_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local flow = os.getenv("FLOW") or "refresh"
local nthreads = tonumber(os.getenv("FLOW_THREADS") or "1")
local token_path = os.getenv("FLOW_TOKEN_PATH") or "/token"
local client_id = os.getenv("FLOW_CLIENT_ID") or "keyless-cli"

local function lines(path)
  local result = {}
  local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  for line in f:lines() do if line ~= "" then result[#result + 1] = line end end
  f:close()
  return result
end

local function urlencode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- base64url without padding -> string (for the ID token's payload)
local b64 = {}
do
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  for i = 1, 64 do b64[string.byte(alphabet, i)] = i - 1 end
  b64[string.byte("+")] = 62; b64[string.byte("/")] = 63
end
local function b64url_decode(s)
  local out, acc, bits = {}, 0, 0
  for i = 1, #s do
    local v = b64[string.byte(s, i)]
    if v == nil then return nil end
    acc = acc * 64 + v
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      local byte = math.floor(acc / 2 ^ bits)
      out[#out + 1] = string.char(byte)
      acc = acc - byte * 2 ^ bits
    end
  end
  return table.concat(out)
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count - 1)
  local addrs = os.getenv("FLOW_ADDRS")
  if addrs and addrs ~= "" then
    local list = {}
    for a in string.gmatch(addrs, "[^,]+") do list[#list + 1] = a end
    local pick = list[((thread_count - 1) % #list) + 1]
    local host, port = string.match(pick, "^(.*):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
  end
  table.insert(threads, thread)
end

wrk.headers["Accept"] = "application/json"

function init(args)
  bad, starved, completed = 0, 0, 0
  firstbad = ""
  samples = {}
  if flow == "refresh" then
    pool, head, tail = {}, 1, 0
    seen = {}
    for i, token in ipairs(lines(os.getenv("FLOW_TOKENS"))) do
      if (i - 1) % nthreads == tid then tail = tail + 1; pool[tail] = token; seen[token] = true end
    end
    seeded = tail
    prefix = "grant_type=refresh_token&client_id=" .. urlencode(client_id) .. "&refresh_token="
  else
    pkce = {}
    for _, line in ipairs(lines(os.getenv("FLOW_PKCE"))) do
      local v, c = string.match(line, "^(%S+) (%S+)$")
      pkce[#pkce + 1] = { v, c }
    end
    local cookies = lines(os.getenv("FLOW_COOKIES"))
    cookie = cookies[(tid % #cookies) + 1]
    redirect = os.getenv("FLOW_REDIRECT")
    authorize = (os.getenv("FLOW_AUTHORIZE_PATH") or "/authorize") .. "?response_type=code&client_id=" .. urlencode(client_id)
      .. "&redirect_uri=" .. urlencode(redirect) .. "&scope=" .. urlencode(os.getenv("FLOW_SCOPE") or "openid")
      .. "&code_challenge_method=S256"
    extra = os.getenv("FLOW_AUTHORIZE_EXTRA") or ""
    token_prefix = "grant_type=authorization_code&client_id=" .. urlencode(client_id) .. "&redirect_uri=" .. urlencode(redirect)
    started = {}      -- exchange id -> {t0, verifier}: GET sent, code not yet back
    waiting, whead, wtail = {}, 1, 0   -- codes back, POST not yet sent
    exchanging = {}   -- exchange id -> t0: POST sent
    serial = 0
  end
end

local function note_bad(status, body, why)
  bad = bad + 1
  wrk.thread:stop()   -- the run has failed: stop this thread's load rather than hammer the server with bad requests
  if firstbad == "" then
    local text = why
    if status ~= 200 and body then text = text .. ": " .. string.sub(body, 1, 200) end
    firstbad = tostring(status) .. " " .. text
  end
end

local form_headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
  if flow == "refresh" then
    if head > tail then
      -- every token of this thread is in flight or lost: only possible after bad answers (the run fails anyway)
      starved = starved + 1
      return wrk.format("POST", token_path, form_headers, "grant_type=refresh_token&client_id=" .. urlencode(client_id))
    end
    local token = pool[head]; pool[head] = nil; head = head + 1
    return wrk.format("POST", token_path, form_headers, prefix .. urlencode(token))
  end
  if whead <= wtail then
    local item = waiting[whead]; waiting[whead] = nil; whead = whead + 1
    exchanging[item.id] = item.t0
    return wrk.format("POST", token_path, form_headers,
      token_prefix .. "&code=" .. urlencode(item.code) .. "&code_verifier=" .. item.verifier)
  end
  serial = serial + 1
  local id = "t" .. tid .. "x" .. serial
  local pair = pkce[(serial % #pkce) + 1]
  started[id] = { t0 = now_us(), verifier = pair[1] }
  return wrk.format("GET", authorize .. "&state=" .. id .. "&nonce=" .. id .. "&code_challenge=" .. pair[2] .. extra,
    { ["Cookie"] = cookie })
end

local function header(headers, name)
  local v = headers[name]
  if v then return v end
  local lower = string.lower(name)
  for k, value in pairs(headers) do if string.lower(k) == lower then return value end end
  return nil
end

function response(status, headers, body)
  if flow == "refresh" then
    if status ~= 200 then return note_bad(status, body, "refresh answered " .. status) end
    local new = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if not new then return note_bad(status, body, "200 without a refresh_token") end
    if not string.find(body, '"access_token"', 1, true) then return note_bad(status, body, "200 without an access_token") end
    if seen[new] then return note_bad(status, body, "200 with a refresh_token seen before (not rotated)") end
    seen[new] = true
    tail = tail + 1; pool[tail] = new
    completed = completed + 1
    return
  end
  if status == 302 or status == 303 then
    local location = header(headers, "Location") or ""
    local code = string.match(location, "[?&]code=([^&]+)")
    local id = string.match(location, "[?&]state=([^&]+)")
    local entry = id and started[id]
    if not code or not entry then return note_bad(status, nil, "redirect without a code or with an unknown state") end
    started[id] = nil
    -- the code is form-encoded in the Location; it goes back form-encoded, so decode it first
    code = string.gsub(code, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    wtail = wtail + 1
    waiting[wtail] = { id = id, t0 = entry.t0, code = code, verifier = entry.verifier }
    return
  end
  if status ~= 200 then return note_bad(status, body, "answered " .. status) end
  local id_token = string.match(body, '"id_token"%s*:%s*"([^"]+)"')
  if not id_token or not string.find(body, '"access_token"', 1, true) or not string.find(body, '"refresh_token"', 1, true) then
    return note_bad(status, body, "200 without an id_token, access_token and refresh_token (or a login page: no session)")
  end
  local payload = b64url_decode(string.match(id_token, "^[^.]+%.([^.]+)%.") or "")
  local id = payload and string.match(payload, '"nonce"%s*:%s*"([^"]+)"')
  local t0 = id and exchanging[id]
  if not t0 then return note_bad(status, nil, "ID token without the nonce of an exchange in flight") end
  exchanging[id] = nil
  completed = completed + 1
  samples[#samples + 1] = now_us() - t0
end

function done(summary, latency, requests)
  local bad_total, starved_total, completed_total, seeded_total, first = 0, 0, 0, 0, ""
  local all = {}
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    starved_total = starved_total + thread:get("starved")
    completed_total = completed_total + thread:get("completed")
    seeded_total = seeded_total + (thread:get("seeded") or 0)
    local f = thread:get("firstbad")
    if first == "" and f and f ~= "" then first = f end
    if flow == "code" then
      for _, v in ipairs(thread:get("samples")) do all[#all + 1] = v end
    end
  end
  if first ~= "" then io.write("first bad response: ", (string.gsub(first, "%s+", " ")), "\n") end
  -- the tokens that came back and were not spent, for the next run (those in flight when wrk stopped are lost)
  local keep = os.getenv("FLOW_TOKENS_OUT")
  if flow == "refresh" and keep and keep ~= "" then
    local f = assert(io.open(keep, "w"))
    for _, thread in ipairs(threads) do
      for _, token in pairs(thread:get("pool")) do f:write(token, "\n") end
    end
    f:close()
  end
  local p50, p99, max
  if flow == "code" then
    table.sort(all)
    local function pct(p)
      if #all == 0 then return 0 end
      return all[math.max(1, math.ceil(#all * p / 100))]
    end
    p50, p99, max = pct(50), pct(99), all[#all] or 0
  else
    p50, p99, max = latency:percentile(50), latency:percentile(99), latency.max
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH flow=%s requests=%d duration_us=%d completed=%d rate=%.1f p50_us=%d p99_us=%d max_us=%d " ..
    "req_p50_us=%d req_p99_us=%d bad=%d starved=%d seeded=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
    flow, summary.requests, summary.duration, completed_total, completed_total / (summary.duration / 1e6),
    p50, p99, max, latency:percentile(50), latency:percentile(99), bad_total, starved_total, seeded_total,
    e.connect, e.read, e.write, e.timeout))
end
