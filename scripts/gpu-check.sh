#!/usr/bin/env bash
# gpu-check.sh: the checks that need a real NVIDIA GPU, as one script for a machine that has one (CI never runs
# it). It runs gpumon's tests (which use mocks and gpusim, so they pass anywhere, and here also prove the cgo
# build against the real libnvidia-ml), then the GPU exporter on the real GPUs, plain and with --dcgm-names,
# puts a short load on GPU 0 where PyTorch is installed (a bf16 matrix multiply for LOAD_SECONDS), and saves
# the exporter's /metrics from during the load: everything under ${OUT:-./gpu-check-out}.
#
#   scripts/gpu-check.sh            # about 1 minute plus the build
#   LOAD_SECONDS=20 scripts/gpu-check.sh
#   EXPORTER_ARGS='--simulate 8' scripts/gpu-check.sh   # the same over simulated GPUs: checks the script itself
#
# The summary (summary.txt) lists the series of issue 18 (GPM, NVLink, PCIe, MIG, processes) with their values.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export CGO_CFLAGS="${CGO_CFLAGS:--Wno-deprecated-declarations}"
out="${OUT:-./gpu-check-out}"
load_seconds="${LOAD_SECONDS:-15}"
read -r -a extra <<<"${EXPORTER_ARGS:-}"
mkdir -p "$out"
log() { printf '[gpu-check %s] %s\n' "$(date +%T)" "$*" | tee -a "$out/summary.txt"; }

log "nvidia-smi"
nvidia-smi -L >"$out/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed (no driver?)"
cat "$out/nvidia-smi.txt" >>"$out/summary.txt"

log "go test ./gpumon/... (mocks and gpusim; the cgo build against the installed NVML)"
go test -count=1 ./gpumon/... >"$out/gpumon-test.txt" 2>&1
log "gpumon tests: rc=$?"

log "build the exporter"
go build -o "$out/gpu-exporter" ./examples/gpu-exporter || { log "build failed"; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
"$out/gpu-exporter" --listen 127.0.0.1:19400 --process-metrics "${extra[@]}" >"$out/exporter.log" 2>&1 &
pids+=($!)
"$out/gpu-exporter" --listen 127.0.0.1:19401 --dcgm-names "${extra[@]}" >"$out/exporter-dcgm.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 40); do
  curl -fsS -o /dev/null 127.0.0.1:19400/metrics && curl -fsS -o /dev/null 127.0.0.1:19401/metrics && break
  sleep 0.5
done
sleep 3 # two sampler rounds: GPM rates need two samples
curl -fsS 127.0.0.1:19400/metrics >"$out/metrics-idle.txt" || log "no /metrics from the exporter (see exporter.log)"

if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  log "load: torch bf16 matmul on cuda:0 for ${load_seconds}s"
  python3 - "$load_seconds" >"$out/load.txt" 2>&1 <<'EOF' &
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda:0", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda:0", dtype=torch.bfloat16)
end = time.time() + float(sys.argv[1])
n = 0
while time.time() < end:
    c = a @ b
    n += 1
torch.cuda.synchronize()
print(f"{n} matmuls of 8192^3 in {sys.argv[1]} s: {2 * 8192**3 * n / float(sys.argv[1]) / 1e12:.1f} TFLOP/s")
EOF
  load_pid=$!
  pids+=("$load_pid")
  sleep $((load_seconds / 2 + 2))
else
  log "no PyTorch with CUDA: the metrics below are of idle GPUs"
fi
curl -fsS 127.0.0.1:19400/metrics >"$out/metrics.txt"
curl -fsS 127.0.0.1:19401/metrics >"$out/metrics-dcgm.txt"
[ -z "${load_pid:-}" ] || wait "$load_pid"
cat "$out/load.txt" >>"$out/summary.txt" 2>/dev/null

log "issue 18 series (native names)"
grep -E '^(gpu_(sm_active|sm_occupancy|graphics_engine_active|tensor_pipe_active|dram_active)_ratio|gpu_(pcie|nvlink)_(transmit|receive)_bytes_per_second|gpu_nvlink_(active|errors_total)|gpu_mig_|gpu_process_|gpu_vgpu|gpumon_unsupported_gpus|gpu_up|gpu_info)' \
  "$out/metrics.txt" | head -n 200 >>"$out/summary.txt"
log "issue 18 series (DCGM names)"
grep -E '^DCGM_FI_(PROF_|DEV_NVLINK|DEV_VGPU)' "$out/metrics-dcgm.txt" | head -n 100 >>"$out/summary.txt"
log "collect errors"
grep -E '^gpumon_collect_errors_total' "$out/metrics.txt" >>"$out/summary.txt"
log "done: $out"
