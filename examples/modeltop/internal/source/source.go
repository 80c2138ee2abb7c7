// Package source fetches what modeltop shows, from a Prometheus HTTP API (a
// fleet: PromQL does the rates and quantiles) or by scraping /metrics
// endpoints directly (one node, no Prometheus: the rates and quantiles come
// from the difference between two scrapes). Both read modeltel's metric
// names (gen_ai_*, inference_*, gpu_*, training_*) and, for GPUs,
// dcgm-exporter's DCGM_FI_DEV_* names where the native ones are absent.
package source

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/modeltel/modeltel/examples/modeltop/internal/snap"
)

// Source is a backend modeltop polls.
type Source interface {
	// Fetch returns what the backend holds now. It never fails: a backend
	// that did not answer is reported in the snapshot's Status.
	Fetch(ctx context.Context) snap.Snapshot
	// Describe names the source for the header ("scrape 127.0.0.1:8080").
	Describe() string
}

// Metric and label names read.
const (
	mDuration = "gen_ai_server_request_duration_seconds"
	mTTFT     = "gen_ai_server_time_to_first_token_seconds"
	mTPOT     = "gen_ai_server_time_per_output_token_seconds"
	mTokens   = "inference_tokens_total"
	mActive   = "inference_requests_active"
	mVLLMWait = "vllm:num_requests_waiting"

	mStepDur  = "training_step_duration_seconds"
	mTrTokens = "training_tokens_total"

	lModel     = "gen_ai_request_model"
	lErrorType = "error_type"
	lTokenType = "gen_ai_token_type"
	lInstance  = "instance"

	// Synthetic names for values a source computed (rates), folded with
	// the gauges read as they are.
	sStepTime  = "modeltop:step_time_seconds"
	sTrTokRate = "modeltop:training_tokens_per_second"
)

// gpuNames are the per-GPU series folded into snap.GPU: modeltel's gpumon
// names first, then dcgm-exporter's.
var gpuNames = []string{
	"gpu_info", "gpu_up", "gpu_utilization_ratio", "gpu_memory_used_bytes", "gpu_memory_total_bytes",
	"gpu_power_usage_watts", "gpu_power_limit_watts", "gpu_temperature_celsius", "gpu_xid_errors_total",
	"gpu_clock_event_active",
	"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED",
	"DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_POWER_MGMT_LIMIT", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_XID_ERRORS",
	"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
}

// runGauges are the training series read as they are.
var runGauges = []string{
	"training_loss", "training_model_flops_utilization_ratio", "training_last_step_timestamp_seconds",
	"training_steps_total",
}

// sample is one series value with its labels (instance included).
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// clockReasons are the bits of the NVML clocks event reasons mask
// (DCGM_FI_DEV_CLOCK_THROTTLE_REASONS), named as gpumon's reason label.
var clockReasons = []struct {
	bit  uint64
	name string
}{
	{0x1, "gpu_idle"}, {0x2, "applications_clocks_setting"}, {0x4, "sw_power_cap"}, {0x8, "hw_slowdown"},
	{0x10, "sync_boost"}, {0x20, "sw_thermal_slowdown"}, {0x40, "hw_thermal_slowdown"},
	{0x80, "hw_power_brake_slowdown"}, {0x100, "display_clock_setting"},
}

// pick returns a unless it is NaN, else b.
func pick(a, b float64) float64 {
	if math.IsNaN(a) {
		return b
	}
	return a
}

// foldGPUs turns per-GPU series into one snap.GPU per (instance, gpu),
// sorted. Native values win over DCGM ones for the same device.
func foldGPUs(samples []sample) []snap.GPU {
	type acc struct {
		nat, dcgm                 snap.GPU
		fbUsed, fbFree, fbReserve float64
	}
	byKey := map[[2]string]*acc{}
	get := func(l map[string]string) *acc {
		k := [2]string{l[lInstance], l["gpu"]}
		a := byKey[k]
		if a == nil {
			a = &acc{nat: snap.NewGPU(k[0], k[1]), dcgm: snap.NewGPU(k[0], k[1]),
				fbUsed: math.NaN(), fbFree: math.NaN(), fbReserve: math.NaN()}
			byKey[k] = a
		}
		return a
	}
	for _, s := range samples {
		if _, ok := s.labels["gpu"]; !ok {
			continue
		}
		a, v := get(s.labels), s.value
		switch s.name {
		case "gpu_info":
			a.nat.Name = s.labels["name"]
			a.nat.Simulated = s.labels["simulated"] == "true"
		case "gpu_up":
			a.nat.Up = v
		case "gpu_utilization_ratio":
			a.nat.Util = v
		case "gpu_memory_used_bytes":
			a.nat.MemUsed = v
		case "gpu_memory_total_bytes":
			a.nat.MemTotal = v
		case "gpu_power_usage_watts":
			a.nat.Power = v
		case "gpu_power_limit_watts":
			a.nat.PowerLimit = v
		case "gpu_temperature_celsius":
			a.nat.Temp = v
		case "gpu_xid_errors_total":
			snap.Add(&a.nat.XID, v)
			if x := s.labels["xid"]; v > 0 && x != "" && !slices.Contains(a.nat.XIDCodes, x) {
				a.nat.XIDCodes = append(a.nat.XIDCodes, x)
			}
		case "gpu_clock_event_active":
			if r := s.labels["reason"]; v == 1 && r != "gpu_idle" && !slices.Contains(a.nat.Throttle, r) {
				a.nat.Throttle = append(a.nat.Throttle, r)
			}
		case "DCGM_FI_DEV_GPU_UTIL":
			a.dcgm.Util = v / 100
			if a.dcgm.Name == "" {
				a.dcgm.Name = s.labels["modelName"]
			}
		case "DCGM_FI_DEV_FB_USED":
			a.fbUsed = v
		case "DCGM_FI_DEV_FB_FREE":
			a.fbFree = v
		case "DCGM_FI_DEV_FB_RESERVED":
			a.fbReserve = v
		case "DCGM_FI_DEV_POWER_USAGE":
			a.dcgm.Power = v
		case "DCGM_FI_DEV_POWER_MGMT_LIMIT":
			a.dcgm.PowerLimit = v
		case "DCGM_FI_DEV_GPU_TEMP":
			a.dcgm.Temp = v
			if a.dcgm.Name == "" {
				a.dcgm.Name = s.labels["modelName"]
			}
		case "DCGM_FI_DEV_XID_ERRORS":
			if v > 0 {
				a.dcgm.XIDCodes = []string{strconv.FormatFloat(v, 'f', -1, 64)}
			}
		case "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "DCGM_FI_DEV_CLOCKS_EVENT_REASONS":
			if v >= 0 && v < 1<<32 {
				a.dcgm.Throttle = a.dcgm.Throttle[:0]
				for _, r := range clockReasons {
					if uint64(v)&r.bit != 0 && r.name != "gpu_idle" {
						a.dcgm.Throttle = append(a.dcgm.Throttle, r.name)
					}
				}
			}
		}
	}
	// gpu_xid_errors_total has a series only once a device had an XID: where
	// one device of an instance has one, the instance's exporter watches
	// XIDs, and its other devices had none.
	watched := map[string]bool{}
	for k, a := range byKey {
		if !math.IsNaN(a.nat.XID) {
			watched[k[0]] = true
		}
	}
	out := make([]snap.GPU, 0, len(byKey))
	for k, a := range byKey {
		if watched[k[0]] && math.IsNaN(a.nat.XID) {
			a.nat.XID = 0
		}
		g, d := a.nat, a.dcgm
		const mib = 1 << 20
		if !math.IsNaN(a.fbUsed) {
			d.MemUsed = a.fbUsed * mib
			if !math.IsNaN(a.fbFree) {
				d.MemTotal = (a.fbUsed + a.fbFree + pick(a.fbReserve, 0)) * mib
			}
		}
		if g.Name == "" {
			g.Name = d.Name
		}
		g.Util = pick(g.Util, d.Util)
		g.MemUsed = pick(g.MemUsed, d.MemUsed)
		g.MemTotal = pick(g.MemTotal, d.MemTotal)
		g.Power = pick(g.Power, d.Power)
		g.PowerLimit = pick(g.PowerLimit, d.PowerLimit)
		g.Temp = pick(g.Temp, d.Temp)
		if g.XIDCodes == nil {
			g.XIDCodes = d.XIDCodes
		}
		if g.Throttle == nil {
			g.Throttle = d.Throttle
		}
		slices.Sort(g.XIDCodes)
		slices.Sort(g.Throttle)
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b snap.GPU) int {
		if c := strings.Compare(a.Instance, b.Instance); c != 0 {
			return c
		}
		return compareNumeric(a.Index, b.Index)
	})
	return out
}

// compareNumeric orders "2" before "10" and falls back to string order.
func compareNumeric(a, b string) int {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	if errA == nil && errB == nil {
		return x - y
	}
	return strings.Compare(a, b)
}

// foldRuns turns training series (and the synthetic step time and token
// rate) into one snap.Run per (instance, run, rank), sorted.
func foldRuns(samples []sample) []snap.Run {
	byKey := map[[3]string]*snap.Run{}
	for _, s := range samples {
		if !strings.HasPrefix(s.name, "training_") && s.name != sStepTime && s.name != sTrTokRate {
			continue
		}
		k := [3]string{s.labels["run"], s.labels["rank"], s.labels[lInstance]}
		r := byKey[k]
		if r == nil {
			n := snap.NewRun(k[0], k[1], k[2])
			r = &n
			byKey[k] = r
		}
		switch s.name {
		case "training_loss":
			r.Loss = s.value
		case "training_model_flops_utilization_ratio":
			r.MFU = s.value
		case "training_last_step_timestamp_seconds":
			r.LastStep = s.value
		case "training_steps_total":
			snap.Add(&r.Steps, s.value)
		case sStepTime:
			r.StepTime = s.value
		case sTrTokRate:
			snap.Add(&r.TokensPerSec, s.value)
		}
	}
	out := make([]snap.Run, 0, len(byKey))
	for _, r := range byKey {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b snap.Run) int {
		if c := strings.Compare(a.Run, b.Run); c != 0 {
			return c
		}
		if c := compareNumeric(a.Rank, b.Rank); c != 0 {
			return c
		}
		return strings.Compare(a.Instance, b.Instance)
	})
	return out
}

// models keeps snap.Models by name.
type models map[string]*snap.Model

func (m models) get(name string) *snap.Model {
	x := m[name]
	if x == nil {
		n := snap.NewModel(name)
		x = &n
		m[name] = x
	}
	return x
}

func (m models) sorted() []snap.Model {
	out := make([]snap.Model, 0, len(m))
	for _, x := range m {
		out = append(out, *x)
	}
	slices.SortFunc(out, func(a, b snap.Model) int { return strings.Compare(a.Model, b.Model) })
	return out
}
