//go:build race

package logging

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts (slog's buffer pool) are not exact under -race.
const raceEnabled = true
