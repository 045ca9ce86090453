-- wrk: POST a small chat completion (non-streaming) with the key from the environment.
wrk.method = "POST"
local model = os.getenv("BENCH_MODEL")
if not model or model == "" then
  model = "fake-chat"
end
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"duration_us\": %d, \"errors\": %d, \"non2xx\": %d, \"p50_us\": %d, \"p90_us\": %d, \"p99_us\": %d}\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
