// Package training makes a training job observable with Prometheus: step time,
// loss, learning rate, gradient norm, samples and tokens, data-loader wait,
// checkpoints, epoch, model FLOPs utilisation, a last-step timestamp for
// stall alerts, and goodput: how much of the run's wall time went into steps
// that advanced it, and where the rest went. [Ingest] feeds the same metrics from the JSON lines a Python
// trainer prints, so a Go launcher can supervise the trainer and expose them.
//
// # Metrics
//
// [NewMetrics] returns a [Metrics], a prometheus.Collector the caller
// registers. The series:
//
//   - training_step_duration_seconds (histogram), training_steps_total,
//     training_samples_total, training_tokens_total
//   - training_loss, training_learning_rate, training_grad_norm (gauges, the
//     last reported value; absent until first reported)
//   - training_nonfinite_loss_total, training_nonfinite_grad_norm_total
//   - training_data_wait_seconds (histogram)
//   - training_checkpoint_duration_seconds (histogram),
//     training_checkpoint_written_bytes_total, training_checkpoint_size_bytes,
//     training_last_checkpoint_timestamp_seconds
//   - training_epoch, training_last_step_timestamp_seconds
//   - training_model_flops_utilization_ratio, with [WithFLOPs]
//   - training_ingest_errors_total{reason="syntax|value|overlong"}, for [Ingest]
//   - training_goodput_seconds_total, training_badput_seconds_total{reason},
//     training_goodput_ratio, training_recomputed_steps_total (see Goodput)
//
// In a [StepResult] a zero Loss, LearningRate or GradNorm means "not
// reported"; [Metrics.SetLearningRate], [Metrics.SetGradNorm] and
// [Metrics.SetLoss] report a true zero.
//
// A NaN or infinite loss is counted in training_nonfinite_loss_total and never
// written into training_loss, which keeps the last finite loss, so that max,
// avg and comparisons over ranks keep working. Alert on the counter:
// increase(training_nonfinite_loss_total[5m]) > 0.
//
// # Run identity and ranks
//
// Run identity is constant labels ([WithRun], [WithRank], [WithConstLabels]);
// epoch, batch and step never are (they are values, and registration fails if
// they are given as labels). Prefer run over job: Prometheus sets job from the
// scrape configuration. Several ranks in one process register one Metrics each,
// with distinct rank labels, on one registry. Aggregate ranks in PromQL:
//
//	max by (run) (rate(training_step_duration_seconds_sum[5m]) / rate(training_step_duration_seconds_count[5m]))
//	sum by (run) (rate(training_tokens_total[1m]))
//	time() - min by (run) (training_last_step_timestamp_seconds) > 600
//
// # Goodput
//
// The wall time since the run started ([NewMetrics]) is split, as Google's ML
// Goodput Measurement does, into productive step time (goodput) and badput by
// reason: startup (before the first step), data_wait ([Metrics.ObserveDataWait]),
// checkpoint (saves, and restores given to [Metrics.ObserveResume]), restart
// (from [Metrics.ObserveCrash] to the first step after it), recompute (the
// step time of steps run again after resuming from a checkpoint older than
// the last step completed) and other (the gaps between the intervals
// reported). Every interval ends when it is reported and is counted from the
// end of the time already counted, so the parts never overlap and, with the
// time since the last interval (Goodput.Pending), add up to the wall time.
// The counters only grow: a step run again is recompute badput when it runs,
// rather than goodput taken back. training_goodput_ratio is goodput over the
// wall time; over a window, rate(training_goodput_seconds_total[30m]) is the
// share of those 30 minutes that was productive. [Metrics.EndRun] stops the
// clock when the run is over; [Metrics.Goodput] returns the breakdown.
//
// # Trainer output lines
//
// [Ingest] reads one JSON object per line; a line with "step" is a step:
//
//	{"step": 120, "loss": 2.31, "lr": 3e-4, "grad_norm": 0.9, "samples": 32, "tokens": 65536, "step_time": 0.41, "epoch": 1, "data_wait": 0.02}
//	{"event": "checkpoint", "step": 500, "duration": 12.5, "bytes": 1073741824}
//	{"event": "resume", "step": 500, "duration": 30}
//
// Times are seconds. A resume event (the trainer restored the checkpoint of
// step 500, in 30 s) is [Metrics.ObserveResume]. Every field but "step" (or "event") is optional; a field
// present in a line is reported even when it is 0. Without "step_time" the step
// time is the time since the previous step line (or checkpoint event) divided
// by the step-number difference, and the first step line has none. When step
// numbers jump (a trainer that logs every N steps), training_steps_total grows
// by the difference, and samples and tokens are taken as the totals of those
// steps. A line with the same step number as the previous step line (an eval
// line, say) sets the values it has but is no new step: no count, no step
// time. A step number lower than the previous one (a trainer that restarted
// from a checkpoint under the same output) counts one step, without a derived
// step time, since the time since the previous line includes the restart. For
// goodput a step number at most the highest one recorded is a step run
// again, across Ingest calls (one per trainer attempt) too: "step" is the
// global step, not one that starts over every epoch. A step line's
// interval ends when the line is read and lasts its step_time (or the time
// since the previous line), its data_wait just before it (or, without
// step_time, at the start of that time). "lr" may be spelled "learning_rate". Python's NaN, Infinity and
// -Infinity (bare or quoted) are accepted. Lines with "epoch" or "data_wait"
// only set those. Other lines, plain text or JSON with none of these fields,
// go to [WithTextLine].
//
// # Example
//
//	func train(ctx context.Context, reg *prometheus.Registry) {
//		m := training.NewMetrics(
//			training.WithRun("llama-8b-sft-7"),
//			training.WithRank(0),
//			training.WithFLOPs(6*8e9, 989e12), // 6 x params per token, H100 bf16 peak
//		)
//		reg.MustRegister(m)
//		for epoch := 0; epoch < 3; epoch++ {
//			m.SetEpoch(epoch)
//			for batch := 0; batch < 100; batch++ {
//				step := m.StartStep()
//				loss := 2.0 / float64(batch+1) // forward, backward, optimizer step
//				step.End(training.StepResult{Loss: loss, LearningRate: 3e-4, GradNorm: 1.1, Samples: 32, Tokens: 32 * 2048})
//			}
//			m.ObserveCheckpoint(4*time.Second, 16<<30)
//		}
//	}
package training
