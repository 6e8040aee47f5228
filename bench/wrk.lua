-- wrk script used by bench/run.sh. It is driven by the environment:
--
--   BENCH_URI         absolute URI for the request line, as a client configured with
--                     HTTP_PROXY sends it; unset means origin form (the path of the wrk URL)
--   BENCH_METHOD      request method, GET by default
--   BENCH_BODY_BYTES  size of the request body; none by default
--   BENCH_EXPECT      when set, every response must be a 200 whose body holds this text
--   BENCH_EXPECT_LEN  when set, every response body must be exactly this long
--   BENCH_COUNT       when set with BENCH_EXPECT, also count the bodies holding this text
--
-- done() prints one line, "BENCH key=value ...", for the calling script to parse.
-- Checking bodies makes wrk slower, so run.sh does it only in its verification runs.

local uri = os.getenv("BENCH_URI") or ""
if uri ~= "" then
	wrk.path = uri
	-- The Host header names the destination, not the proxy.
	wrk.headers["Host"] = uri:match("^%a+://([^/]+)")
end

wrk.method = os.getenv("BENCH_METHOD") or "GET"

local body_bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "") or 0
if body_bytes > 0 then
	wrk.body = string.rep("p", body_bytes)
	wrk.headers["Content-Type"] = "application/octet-stream"
end

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

local expect = os.getenv("BENCH_EXPECT") or ""
local expect_len = tonumber(os.getenv("BENCH_EXPECT_LEN") or "")
local count = os.getenv("BENCH_COUNT") or ""

if expect ~= "" then
	-- Globals, so that done() can read them from each thread.
	checked, bad, counted, sample = 0, 0, 0, nil

	function response(status, headers, body)
		checked = checked + 1
		if count ~= "" and body:find(count, 1, true) then
			counted = counted + 1
		end
		local ok = status == 200 and body:find(expect, 1, true) ~= nil
		if expect_len and #body ~= expect_len then
			ok = false
		end
		if not ok then
			bad = bad + 1
			if not sample then
				sample = string.format("status %d, %d bytes: %s", status, #body,
					(body:sub(1, 160):gsub("%s+", " ")))
			end
		end
	end
end

local function verification()
	local n_checked, n_bad, n_counted, first = 0, 0, 0, nil
	for _, thread in ipairs(threads) do
		n_checked = n_checked + (thread:get("checked") or 0)
		n_bad = n_bad + (thread:get("bad") or 0)
		n_counted = n_counted + (thread:get("counted") or 0)
		first = first or thread:get("sample")
	end
	return n_checked, n_bad, n_counted, first
end

function done(summary, latency, requests)
	local e = summary.errors
	local seconds = summary.duration / 1e6
	local line = string.format(
		"BENCH requests=%d duration_us=%d rps=%.1f p50_us=%.0f p99_us=%.0f max_us=%.0f" ..
		" connect=%d read=%d write=%d status=%d timeout=%d",
		summary.requests, summary.duration, summary.requests / seconds,
		latency:percentile(50), latency:percentile(99), latency.max,
		e.connect, e.read, e.write, e.status, e.timeout)
	if expect ~= "" then
		local n_checked, n_bad, n_counted, first = verification()
		line = line .. string.format(" checked=%d bad=%d counted=%d",
			n_checked, n_bad, n_counted)
		if first then
			io.write("BENCH_SAMPLE ", first, "\n")
		end
	end
	io.write(line, "\n")
end
