package stack_test

// metricKind is the Prometheus type of a metric family; it decides which sample names the family exposes.
type metricKind int

const (
	counter metricKind = iota
	gauge
	histogram
)

// addFamily adds the sample names a family of the given kind exposes: the name itself for counters and
// gauges, name_bucket, name_count and name_sum for a (classic) histogram.
func addFamily(names map[string]bool, name string, kind metricKind) {
	if kind == histogram {
		names[name+"_bucket"] = true
		names[name+"_count"] = true
		names[name+"_sum"] = true
		return
	}
	names[name] = true
}

// sdkMetricNames returns the sample names (as they appear in the exposition and in PromQL) of every metric
// the SDK exports under its default names. For now it is copied from the names in DESIGN.md, each with its
// type; it is meant to be replaced by names gathered from the real collectors.
func sdkMetricNames() map[string]bool {
	families := []struct {
		name string
		kind metricKind
	}{
		// gpumon (default names).
		{"gpu_info", gauge},
		{"gpu_up", gauge},
		{"gpu_utilization_ratio", gauge},
		{"gpu_memory_utilization_ratio", gauge},
		{"gpu_memory_used_bytes", gauge},
		{"gpu_memory_free_bytes", gauge},
		{"gpu_memory_total_bytes", gauge},
		{"gpu_temperature_celsius", gauge},
		{"gpu_power_usage_watts", gauge},
		{"gpu_power_limit_watts", gauge},
		{"gpu_energy_consumed_joules_total", counter},
		{"gpu_sm_clock_hertz", gauge},
		{"gpu_memory_clock_hertz", gauge},
		{"gpu_fan_speed_ratio", gauge},
		{"gpu_clock_event_active", gauge},
		{"gpu_pcie_replay_errors_total", counter},
		{"gpu_ecc_errors_total", counter},
		{"gpu_xid_errors_total", counter},
		{"gpu_process_memory_used_bytes", gauge},
		{"gpumon_collect_errors_total", counter},
		{"gpumon_collect_duration_seconds", gauge}, // type not fixed by DESIGN.md; no dashboard uses it

		// inference.
		{"gen_ai_server_request_duration_seconds", histogram},
		{"gen_ai_server_time_to_first_token_seconds", histogram},
		{"gen_ai_server_time_per_output_token_seconds", histogram},
		{"inference_tokens_total", counter},
		{"inference_requests_active", gauge},
		{"inference_output_tokens_per_second", histogram},

		// middleware: HTTP.
		{"http_server_request_duration_seconds", histogram},
		{"http_server_active_requests", gauge},
		{"http_server_request_body_size_bytes", histogram},
		{"http_server_response_body_size_bytes", histogram},

		// middleware: gRPC (go-grpc-middleware's names).
		{"grpc_server_started_total", counter},
		{"grpc_server_handled_total", counter},
		{"grpc_server_handling_seconds", histogram},
		{"grpc_server_msg_received_total", counter},
		{"grpc_server_msg_sent_total", counter},

		// training.
		{"training_loss", gauge},
		{"training_learning_rate", gauge},
		{"training_grad_norm", gauge},
		{"training_step_duration_seconds", histogram},
		{"training_steps_total", counter},
		{"training_samples_total", counter},
		{"training_tokens_total", counter},
		{"training_data_wait_seconds", histogram},
		{"training_checkpoint_duration_seconds", histogram},
		{"training_epoch", gauge},
		{"training_last_step_timestamp_seconds", gauge},
		{"training_nonfinite_loss_total", counter},
		// MFU: DESIGN.md describes it without a name; this is the name the training package gives it.
		{"training_model_flops_utilization_ratio", gauge},
	}
	names := make(map[string]bool, 3*len(families))
	for _, f := range families {
		addFamily(names, f.name, f.kind)
	}
	return names
}
