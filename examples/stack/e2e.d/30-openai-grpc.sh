# The inference server's user-facing surface (examples/inference-server), against the running stack: the
# text_completion and embeddings operations (POST /v1/completions, /v1/embeddings) each reach Prometheus as
# series of their own, embeddings with input tokens and no output tokens; GET /v1/models/{model} answers; and,
# where grpcurl is installed, the gRPC service is listed, described and called through server reflection and
# the standard health service says SERVING.
# shellcheck disable=SC2154 # $model comes from e2e.sh, which sources this file
step "inference-server: completions, embeddings and models/{model}; gRPC reflection and health"
oa_api=http://127.0.0.1:8080
oa_grpc=127.0.0.1:8081
for i in 1 2 3; do
  curl -fsS --max-time 30 "$oa_api/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"model\":\"$model\",\"prompt\":\"Why is the sky blue? ($i)\",\"max_tokens\":4}" >/dev/null ||
    fail "POST /v1/completions failed"
  curl -fsS --max-time 30 "$oa_api/v1/embeddings" -H 'Content-Type: application/json' \
    -d "{\"model\":\"$model\",\"input\":[\"the blue sky\",\"red light $i\"]}" >/dev/null ||
    fail "POST /v1/embeddings failed"
done
curl -fsS --max-time 10 "$oa_api/v1/models/$model" | grep -q "\"id\":\"$model\"" ||
  fail "GET /v1/models/$model does not describe the model"
for oa_op in text_completion embeddings; do
  poll 20 "3 $oa_op requests in Prometheus" prom_at_least \
    "sum(gen_ai_server_request_duration_seconds_count{job=\"inference-server\",gen_ai_operation_name=\"$oa_op\",error_type=\"\"})" 3 ||
    fail "Prometheus counts $(prom_value "sum(gen_ai_server_request_duration_seconds_count{job=\"inference-server\",gen_ai_operation_name=\"$oa_op\"})") $oa_op requests, want >= 3"
done
poll 20 "embeddings input tokens in Prometheus" prom_at_least \
  'sum(inference_tokens_total{job="inference-server",gen_ai_operation_name="embeddings",gen_ai_token_type="input"})' 15 ||
  fail "embeddings input tokens: $(prom_value 'sum(inference_tokens_total{job="inference-server",gen_ai_operation_name="embeddings",gen_ai_token_type="input"})'), want >= 15"
oa_out=$(prom_value 'sum(inference_tokens_total{job="inference-server",gen_ai_operation_name="embeddings",gen_ai_token_type="output"})') ||
  fail "Prometheus query for the embeddings output tokens failed"
[ "${oa_out:-0}" = 0 ] || fail "embeddings have output tokens in Prometheus: $oa_out"
ok "embeddings: no output tokens"

if command -v grpcurl >/dev/null; then
  oa_list=$(timeout 20 grpcurl -plaintext "$oa_grpc" list) || fail "grpcurl list: $oa_list"
  if ! grep -qx 'modeltel.examples.v1.Generator' <<<"$oa_list" || ! grep -qx 'grpc.health.v1.Health' <<<"$oa_list"; then
    fail "grpcurl list does not show the Generator and Health services: $oa_list"
  fi
  timeout 20 grpcurl -plaintext "$oa_grpc" describe modeltel.examples.v1.Generator | grep -q 'rpc Generate' ||
    fail "grpcurl describe modeltel.examples.v1.Generator shows no Generate"
  oa_gen=$(timeout 30 grpcurl -plaintext -d "{\"model\":\"$model\",\"prompt\":\"Why is the sky blue?\",\"max_tokens\":3}" \
    "$oa_grpc" modeltel.examples.v1.Generator/Generate) || fail "grpcurl Generate: $oa_gen"
  grep -q '"finishReason": "length"' <<<"$oa_gen" || fail "grpcurl Generate did not finish: $oa_gen"
  timeout 20 grpcurl -plaintext "$oa_grpc" grpc.health.v1.Health/Check | grep -q '"SERVING"' ||
    fail "grpc.health.v1.Health/Check is not SERVING"
  ok "grpcurl: list, describe, Generate, Health/Check"
else
  skip "grpcurl checks: grpcurl is not on PATH (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4)"
fi
