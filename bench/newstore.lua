-- wrk script: NewStore inventory_transaction.items_received events.
-- wrk ... -s bench/newstore.lua URL -- RUN_TAG ITEMS DUP_RATE WEBHOOK_KEY
-- Every request carries a unique payload.id (RUN_TAG-thread-n), except a DUP_RATE share that
-- repeats, byte for byte, an event this thread already sent. done() prints one JSON line.

local threads = {}
local counter = 0
local prefix, suffix, headers, dup_rate, run_tag

accepted, duplicate, other = 0, 0, 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  run_tag = args[1] or "run"
  local items = tonumber(args[2] or "1")
  dup_rate = tonumber(args[3] or "0")
  math.randomseed(tid * 7919 + os.time())
  local parts = {}
  for i = 1, items do
    parts[i] = string.format('{"product_id":"SKU-%06d","quantity":%d}', i, (i % 7) + 1)
  end
  prefix = '{"tenant":"acme","name":"inventory_transaction.items_received",'
    .. '"published_at":"2024-05-14T09:32:18.402Z","payload":{"id":"'
  suffix = '","fulfillment_location_id":"US-NYC-01","processed_at":"2024-05-14T09:31:55.117Z",'
    .. '"items":[' .. table.concat(parts, ",") .. ']}}'
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. (args[4] or "none"),
  }
end

function request()
  local n
  if counter > 0 and math.random() < dup_rate then
    n = math.random(counter)
  else
    counter = counter + 1
    n = counter
  end
  return wrk.format("POST", nil, headers, prefix .. run_tag .. "-" .. tid .. "-" .. n .. suffix)
end

function response(status, hdrs, body)
  if status == 200 and body then
    if string.find(body, '"accepted"', 1, true) then
      accepted = accepted + 1
    elseif string.find(body, '"duplicate"', 1, true) then
      duplicate = duplicate + 1
    else
      other = other + 1
    end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, d, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    d = d + t:get("duplicate")
    o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,'
      .. '"p99_us":%d,"max_us":%d,"mean_us":%.1f,"accepted":%d,"duplicate":%d,"other":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, a, d, o))
end
