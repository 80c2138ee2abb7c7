# shellcheck shell=bash disable=SC2154 # $data, $ebin, $repo, $stack, $bin come from e2e.sh
# e2e fragment: simulated GPUs (gpumon/gpusim) through the GPU exporter into Prometheus.
#
# Starts `gpu-exporter --simulate 8` (H100 SXM, default names, --process-metrics with two processes sharing each
# busy GPU, as under time-slicing) on 127.0.0.1:9400, the
# job gpu-exporter of examples/stack/prometheus.yml, and a second one with --dcgm-names on 127.0.0.1:9401, then:
#  - every per-GPU series of the design is in Prometheus for all 8 GPUs (gpu_fan_speed_ratio excepted: the
#    H100 SXM is passively cooled and NVML reports no fan, so gpumon leaves it out, as for the real board),
#    gpu_info says simulated="true", and the values follow the load set through the control API, the
#    per-process utilisation of the two processes on a GPU adding up to the GPU's;
#  - the DCGM names (with err_code/err_msg on DCGM_FI_DEV_XID_ERRORS, Hostname from $NODE_NAME);
#  - the background sampler's series (GPM, PCIe and NVLink throughput, 18 NVLinks per GPU) in both namings;
#  - every query of dashboards/gpu.json returns data (the fan panel excepted, as above);
#  - NVLink errors injected on gpu 4 link 2 are counted and GPUNVLinkErrors fires on the e2e Prometheus;
#  - after an XID 79 on gpu 3, gpu 5 off the bus and gpu 6 hung: gpu_up 0 for 5 and 6 only, the XID counted,
#    and on the main Prometheus (the real rules) GPUXIDErrors firing and GPUDown pending (its `for:` is 1m);
#  - on a second, e2e-only Prometheus (127.0.0.1:9091, data under $data/gpu-sim) that scrapes both exporters
#    with rules derived at run time from rules/gpu.yml (the same expressions, with windows of 15s instead of
#    10m and `for:` of 2s), GPUXIDErrors and GPUDown go to firing, and resolve after the faults are cleared
#    (GPUXIDErrors when its 15 s window has passed: an XID is an event, nothing clears it).
# The simulated exporter stays up on :9400 (faults cleared) and sets gpu_running=1, so later fragments
# (modeltop's GPU rows) check against it. Every wait is bounded.

gs_ports=(9400 9401 9091)
gs_dir="$data/gpu-sim"
gs_names="gpu_info gpu_up gpu_utilization_ratio gpu_memory_utilization_ratio gpu_memory_used_bytes
  gpu_memory_free_bytes gpu_memory_total_bytes gpu_temperature_celsius gpu_memory_temperature_celsius
  gpu_power_usage_watts gpu_power_limit_watts gpu_energy_consumed_joules_total gpu_sm_clock_hertz
  gpu_memory_clock_hertz gpu_clock_event_active gpu_pcie_replay_errors_total gpu_ecc_errors_total
  gpu_memory_remapped_rows_total gpu_memory_row_remap_pending gpu_memory_row_remap_failed
  gpu_process_memory_used_bytes gpu_process_sm_utilization_ratio gpu_process_memory_utilization_ratio
  gpu_process_encoder_utilization_ratio gpu_process_decoder_utilization_ratio gpu_xid_errors_total
  gpu_graphics_engine_active_ratio gpu_sm_active_ratio gpu_sm_occupancy_ratio gpu_tensor_pipe_active_ratio
  gpu_dram_active_ratio gpu_pcie_transmit_bytes_per_second gpu_pcie_receive_bytes_per_second
  gpu_nvlink_transmit_bytes_per_second gpu_nvlink_receive_bytes_per_second gpu_nvlink_active
  gpu_nvlink_transmit_bytes_total gpu_nvlink_receive_bytes_total gpu_nvlink_errors_total"
gs_dcgm="DCGM_FI_DEV_SM_CLOCK DCGM_FI_DEV_MEM_CLOCK DCGM_FI_DEV_MEMORY_TEMP DCGM_FI_DEV_GPU_TEMP
  DCGM_FI_DEV_POWER_USAGE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION DCGM_FI_DEV_PCIE_REPLAY_COUNTER DCGM_FI_DEV_GPU_UTIL
  DCGM_FI_DEV_MEM_COPY_UTIL DCGM_FI_DEV_ENC_UTIL DCGM_FI_DEV_DEC_UTIL DCGM_FI_DEV_XID_ERRORS DCGM_FI_DEV_FB_FREE
  DCGM_FI_DEV_FB_USED DCGM_FI_DEV_FB_RESERVED DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS
  DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS DCGM_FI_DEV_ROW_REMAP_FAILURE
  DCGM_FI_PROF_GR_ENGINE_ACTIVE DCGM_FI_PROF_SM_ACTIVE DCGM_FI_PROF_SM_OCCUPANCY DCGM_FI_PROF_PIPE_TENSOR_ACTIVE
  DCGM_FI_PROF_DRAM_ACTIVE DCGM_FI_PROF_PCIE_TX_BYTES DCGM_FI_PROF_PCIE_RX_BYTES DCGM_FI_PROF_NVLINK_TX_BYTES
  DCGM_FI_PROF_NVLINK_RX_BYTES DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL
  DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL
  DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"

# gs_value PORT PROMQL: the first sample's value on the Prometheus at PORT, or nothing.
gs_value() {
  curl -fsS --max-time 5 -G "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" |
    jq -r 'if .status == "success" and (.data.result | length) > 0 then .data.result[0].value[1] else empty end'
}
# gs_is PORT PROMQL WANT: the value is WANT.
gs_is() { local v; v=$(gs_value "$1" "$2" 2>/dev/null) || return 1; [ "$v" = "$3" ]; }
# gs_post PORT PATH: a control API call that must answer 200.
gs_post() {
  local out
  out=$(curl -sS --max-time 5 -X POST -w ' %{http_code}' "http://127.0.0.1:$1$2") || fail "POST :$1$2 failed"
  [ "${out##* }" = 200 ] || fail "POST :$1$2 answered ${out##* }: ${out% *}"
  info "POST :$1$2 -> ${out% *}"
}

step "simulated GPUs: gpu-exporter --simulate 8 on :9400, --dcgm-names on :9401"
if alive gpu-exporter 2>/dev/null; then
  info "a gpu-exporter on real GPUs holds :9400: stopping it for the simulated one"
  stop_group gpu-exporter
fi
for port in "${gs_ports[@]}"; do
  if listening "$port"; then fail "127.0.0.1:$port is already in use"; fi
done
if [ ! -x "$ebin/gpu-exporter" ]; then
  CGO_ENABLED=1 go build -o "$ebin/gpu-exporter" "$repo/examples/gpu-exporter" || fail "go build ./examples/gpu-exporter"
fi
# The scrape timeout stays below Prometheus's (1 s here), so a hung GPU gives gpu_up 0, not a failed scrape.
start gpu-sim "$ebin/gpu-exporter" --listen 127.0.0.1:9400 --simulate 8 --process-metrics --simulate-processes 2 \
  --scrape-timeout 300ms
start gpu-sim-dcgm env NODE_NAME=e2e-node "$ebin/gpu-exporter" --listen 127.0.0.1:9401 --simulate 8 --dcgm-names \
  --simulate-load 0.5 --scrape-timeout 300ms
wait_http gpu-sim http://127.0.0.1:9400/healthz 30
wait_http gpu-sim-dcgm http://127.0.0.1:9401/healthz 30

# The e2e-only Prometheus: both exporters, and the real GPU rules with short windows.
mkdir -p "$gs_dir/tsdb"
sed -E -e 's/\[10m\]/[15s]/g' -e 's/offset 10m/offset 15s/g' -e 's/^( +for: )[0-9]+m$/\12s/' \
  "$stack/rules/gpu.yml" >"$gs_dir/gpu-rules.yml"
if grep -qE '10m\]|offset 10m|for: [0-9]+m' "$gs_dir/gpu-rules.yml" ||
  ! grep -q 'increase(gpu_xid_errors_total\[15s\])' "$gs_dir/gpu-rules.yml"; then
  fail "deriving the e2e rules from rules/gpu.yml left a long window or missed the XID rule (rules/gpu.yml changed?)"
fi
cat >"$gs_dir/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ['$gs_dir/gpu-rules.yml']
scrape_configs:
  - job_name: gpu-exporter
    static_configs: [{targets: ['127.0.0.1:9400']}]
  - job_name: gpu-exporter-dcgm
    static_configs: [{targets: ['127.0.0.1:9401']}]
YAML
"$bin/promtool" check config "$gs_dir/prometheus.yml" >/dev/null || fail "promtool check config of the e2e-only config"
start gpu-sim-prom "$bin/prometheus" --config.file="$gs_dir/prometheus.yml" --storage.tsdb.path="$gs_dir/tsdb" \
  --web.listen-address=127.0.0.1:9091 --log.level=warn
wait_http gpu-sim-prom http://127.0.0.1:9091/-/ready 60

gs_post 9400 '/simulate/load?value=0.7'
gs_post 9400 '/simulate/load?gpu=7&value=1' # above the power cap: sw_power_cap
gs_post 9400 '/simulate/fault?gpu=0&type=xid&code=13' # an application XID: gpu_xid_errors_total exists, healthy
gs_post 9401 '/simulate/fault?gpu=2&type=xid&code=79'

step "simulated GPUs: every GPU series of the design, for 8 GPUs, in Prometheus"
for name in $gs_names; do
  want=8
  [ "$name" = gpu_xid_errors_total ] && want=1 # only gpu 0 has had an XID
  poll 30 "$name: $want GPUs" gs_is 9090 "count(count by (gpu) ($name{job=\"gpu-exporter\"}))" "$want" ||
    fail "$name: $(gs_value 9090 "count(count by (gpu) ($name{job=\"gpu-exporter\"}))") GPUs in Prometheus, want $want"
done
poll 10 'gpu_info{simulated="true"} for 8 GPUs' gs_is 9090 'count(gpu_info{job="gpu-exporter",simulated="true",name="NVIDIA H100 80GB HBM3"})' 8 ||
  fail "gpu_info does not say simulated=\"true\" for the 8 GPUs"
gs_is 9090 'count(gpu_fan_speed_ratio{job="gpu-exporter"}) or vector(0)' 0 ||
  fail "gpu_fan_speed_ratio present for a passively cooled H100 SXM"
ok "gpu_fan_speed_ratio absent, as on a real H100 SXM (no fan)"
poll 10 "values follow the load: utilisation 0.7 on gpu 0" \
  gs_is 9090 'gpu_utilization_ratio{job="gpu-exporter",gpu="0"}' 0.7 ||
  fail "gpu_utilization_ratio{gpu=\"0\"} = $(gs_value 9090 'gpu_utilization_ratio{job="gpu-exporter",gpu="0"}'), want 0.7"
poll 10 "two processes per GPU, their SM utilisation adding up to the GPU's (0.7 on gpu 0)" \
  gs_is 9090 'count(gpu_process_sm_utilization_ratio{job="gpu-exporter"}) * 10 + sum(gpu_process_sm_utilization_ratio{job="gpu-exporter",gpu="0"})' 160.7 ||
  fail "per-process utilisation: $(prom_query 'gpu_process_sm_utilization_ratio{job="gpu-exporter"}' | jq -c '[.data.result[] | {gpu: .metric.gpu, pid: .metric.pid, v: .value[1]}]')"
poll 10 "gpu 7 at the power limit with sw_power_cap" \
  gs_is 9090 'gpu_clock_event_active{job="gpu-exporter",gpu="7",reason="sw_power_cap"} * on(gpu) gpu_power_usage_watts{job="gpu-exporter",gpu="7"}' 700 ||
  fail "gpu 7 at load 1 is not power-capped at 700 W"
gs_is 9090 'count(gpu_nvlink_active{job="gpu-exporter"} == 1)' 144 || fail "gpu_nvlink_active: want 18 active links on each of 8 H100 SXM"
poll 10 "GPM follows the load: tensor activity 0.49 (0.7 x 0.7) on gpu 0" \
  gs_is 9090 'round(gpu_tensor_pipe_active_ratio{job="gpu-exporter",gpu="0"}, 0.001)' 0.49 ||
  fail "gpu_tensor_pipe_active_ratio{gpu=\"0\"} = $(gs_value 9090 'gpu_tensor_pipe_active_ratio{job="gpu-exporter",gpu="0"}'), want 0.49"
poll 30 "the energy counters rise faster than at idle (72 W)" gs_is 9090 'count(rate(gpu_energy_consumed_joules_total{job="gpu-exporter"}[30s]) > 100)' 8 ||
  fail "gpu_energy_consumed_joules_total does not rise on every GPU: $(prom_query 'rate(gpu_energy_consumed_joules_total{job="gpu-exporter"}[30s])' | jq -c '[.data.result[] | {gpu: .metric.gpu, w: .value[1]}]')"

step "simulated GPUs: DCGM names (--dcgm-names, job gpu-exporter-dcgm on the e2e Prometheus)"
for name in $gs_dcgm; do
  poll 30 "$name: 8 GPUs" gs_is 9091 "count(count by (gpu) ($name{job=\"gpu-exporter-dcgm\",Hostname=\"e2e-node\"}))" 8 ||
    fail "$name: $(gs_value 9091 "count(count by (gpu) ($name{job=\"gpu-exporter-dcgm\"}))") GPUs, want 8 with Hostname=e2e-node"
done
poll 20 'DCGM_FI_DEV_XID_ERRORS{gpu="2"} 79 with err_code and err_msg' \
  gs_is 9091 'DCGM_FI_DEV_XID_ERRORS{job="gpu-exporter-dcgm",gpu="2",err_code="79",err_msg="GPU has fallen off the bus"}' 79 ||
  fail "no DCGM_FI_DEV_XID_ERRORS{err_code=\"79\",err_msg=\"GPU has fallen off the bus\"} for gpu 2"
gs_is 9091 'count(DCGM_FI_DEV_GPU_UTIL{job="gpu-exporter-dcgm"} == 50)' 8 || fail "DCGM_FI_DEV_GPU_UTIL is not 50 at --simulate-load 0.5"
ok "DCGM_FI_DEV_GPU_UTIL 50 on all 8 at --simulate-load 0.5"

step "simulated GPUs: every query of dashboards/gpu.json returns data"
dashboard_check gpu_fan_speed_ratio "$stack/dashboards/gpu.json"
for q in "${dq_empty[@]}"; do info "no data, as expected on an H100 SXM (no fan): $q"; done
ok "$(( dq_total - ${#dq_empty[@]} )) of $dq_total GPU dashboard queries return data (the other: the fan panel)"

step "simulated GPUs: faults (XID 79 on gpu 3, gpu 5 off the bus, gpu 6 hung) and alerts"
gs_post 9400 '/simulate/fault?gpu=3&type=xid&code=79'
gs_post 9400 '/simulate/fault?gpu=5&type=fall-off-bus'
gs_post 9400 '/simulate/fault?gpu=6&type=hang'
poll 30 "gpu_up 0 for gpus 5 and 6 only" gs_is 9090 'count(gpu_up{job="gpu-exporter"} == 0) + count(gpu_up{job="gpu-exporter",gpu=~"5|6"} == 0) * 10' 22 ||
  fail "gpu_up: $(prom_query 'gpu_up{job="gpu-exporter"}' | jq -c '[.data.result[] | {gpu: .metric.gpu, v: .value[1]}]')"
poll 20 'gpu_xid_errors_total{gpu="3",xid="79"} 1' gs_is 9090 'gpu_xid_errors_total{job="gpu-exporter",gpu="3",xid="79"}' 1 ||
  fail "XID 79 on gpu 3 not counted"
poll 20 "gpumon_collect_errors_total{call=\"timeout\"} counts the hung gpu 6" \
  prom_at_least 'gpumon_collect_errors_total{job="gpu-exporter",call="timeout"}' 1 || fail "no scrape timeout counted"
gs_alert() { gs_is "$1" "count(ALERTS{alertname=\"$2\",alertstate=~\"$3\",job=\"gpu-exporter\",gpu=~\"$4\"})" "$5"; }
poll 30 "main Prometheus (real rules): GPUXIDErrors firing for gpu 3" gs_alert 9090 GPUXIDErrors firing 3 1 ||
  fail "GPUXIDErrors not firing on the main Prometheus"
poll 30 "main Prometheus (real rules): GPUDown pending for gpus 5 and 6 (for: 1m)" gs_alert 9090 GPUDown 'pending|firing' '5|6' 2 ||
  fail "GPUDown not pending on the main Prometheus"
poll 30 "e2e rules: GPUXIDErrors firing for gpu 3" gs_alert 9091 GPUXIDErrors firing 3 1 ||
  fail "GPUXIDErrors not firing on the e2e Prometheus: $(curl -fsS --max-time 5 127.0.0.1:9091/api/v1/alerts | head -c 1500)"
poll 30 "e2e rules: GPUDown firing for gpus 5 and 6" gs_alert 9091 GPUDown firing '5|6' 2 ||
  fail "GPUDown not firing on the e2e Prometheus: $(curl -fsS --max-time 5 127.0.0.1:9091/api/v1/alerts | head -c 1500)"
gs_is 9091 'count(ALERTS{alertname="GPUDown",job="gpu-exporter"})' 2 || fail "GPUDown fires for GPUs other than 5 and 6"

gs_post 9400 '/simulate/clear'
poll 30 "all 8 GPUs up again after clear" gs_is 9090 'sum(gpu_up{job="gpu-exporter"})' 8 ||
  fail "gpu_up after clear: $(prom_query 'gpu_up{job="gpu-exporter"}' | jq -c '[.data.result[] | {gpu: .metric.gpu, v: .value[1]}]')"
gs_quiet() { gs_is 9091 "count(ALERTS{alertname=~\"GPUDown|GPUXIDErrors\",job=\"gpu-exporter\"}) or vector(0)" 0; }
poll 60 "e2e rules: GPUDown and GPUXIDErrors resolved" gs_quiet ||
  fail "alerts still active after clear: $(curl -fsS --max-time 5 127.0.0.1:9091/api/v1/alerts | head -c 1500)"
# After the clear: while gpu 6 hung, the exporter's background sampler (GPM, NVLink) was stuck in its call too.
step "simulated GPUs: NVLink errors on gpu 4 link 2 and the GPUNVLinkErrors alert"
gs_post 9400 '/simulate/fault?gpu=4&type=nvlink&link=2&count=5'
poll 20 'gpu_nvlink_errors_total{gpu="4",link="2",type="crc_flit"} 5' \
  gs_is 9090 'gpu_nvlink_errors_total{job="gpu-exporter",gpu="4",link="2",type="crc_flit"}' 5 || fail "NVLink errors on gpu 4 link 2 not counted"
poll 30 "e2e rules: GPUNVLinkErrors firing for gpu 4 link 2" gs_is 9091 'count(ALERTS{alertname="GPUNVLinkErrors",alertstate="firing",job="gpu-exporter",gpu="4",link="2"})' 1 ||
  fail "GPUNVLinkErrors not firing on the e2e Prometheus: $(curl -fsS --max-time 5 127.0.0.1:9091/api/v1/alerts | head -c 1500)"

curl -fsS --max-time 5 http://127.0.0.1:9400/healthz >/dev/null 2>&1 || info "/healthz still 503 (critical XID 79 since start, by design)"
# shellcheck disable=SC2034 # read by later fragments (60-modeltop.sh)
gpu_running=1
