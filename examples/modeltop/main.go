// Command modeltop is a terminal live view of an LLM service, what nvitop is
// for GPUs: per model the request rate, TTFT and TPOT p50/p99, tokens/s,
// errors, requests in flight and queued; per GPU utilisation, memory, power,
// temperature, XID errors and clock throttling; per training run step time,
// loss, tokens/s, MFU and how long since the last step.
//
// It reads a Prometheus-compatible HTTP API, so a whole fleet:
//
//	go run ./examples/modeltop --prometheus http://127.0.0.1:9090
//
// or scrapes /metrics endpoints itself, for one node with no Prometheus:
//
//	go run ./examples/modeltop --scrape 127.0.0.1:8080 --scrape 127.0.0.1:9400
//
// Keys: tab / shift+tab (or 1-4) switch between all sections and one at full
// height, which up/down, pgup/pgdn and home/end scroll; q quits.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/modeltel/modeltel/examples/modeltop/internal/source"
	"github.com/modeltel/modeltel/examples/modeltop/internal/ui"
)

func main() {
	err := run(os.Args[1:], os.Stdout)
	switch {
	case err == nil:
	case errors.Is(err, tea.ErrInterrupted): // SIGINT where ctrl+c is not a key
		os.Exit(130)
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "modeltop:", err)
		os.Exit(2)
	}
}

// urls is a repeatable flag; each value may also be comma-separated.
type urls []string

func (u *urls) String() string { return strings.Join(*u, ",") }
func (u *urls) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*u = append(*u, s)
		}
	}
	return nil
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("modeltop", flag.ContinueOnError)
	var scrape urls
	promURL := fs.String("prometheus", "", "Prometheus-compatible HTTP API to query (http://127.0.0.1:9090): a fleet")
	fs.Var(&scrape, "scrape", "/metrics endpoint to scrape directly (host:port or URL; repeatable): one node, no Prometheus")
	interval := fs.Duration("interval", 2*time.Second, "how often to fetch")
	window := fs.Duration("window", time.Minute, "with --prometheus: the range of rate() and histogram_quantile (at least two scrape intervals)")
	timeout := fs.Duration("timeout", 0, "bound on one fetch (default: the interval, at least 1s)")
	once := fs.Bool("once", false, "print one screen as plain text and exit (scrape: two fetches one interval apart, for rates)")
	width := fs.Int("width", 120, "with --once: screen width")
	height := fs.Int("height", 40, "with --once: screen height")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if (*promURL == "") == (len(scrape) == 0) {
		return errors.New("give either --prometheus URL or --scrape URL (repeatable)")
	}
	if *interval < 100*time.Millisecond {
		return fmt.Errorf("--interval %v: want at least 100ms", *interval)
	}
	if *timeout <= 0 {
		*timeout = max(*interval, time.Second)
	}
	client := &http.Client{Timeout: *timeout}

	var src source.Source
	var err error
	if *promURL != "" {
		src, err = source.NewPrometheus(*promURL, *window, client)
	} else {
		src, err = source.NewScrape(scrape, client)
	}
	if err != nil {
		return err
	}
	m := ui.NewModel(src, *interval, *timeout)
	if *once {
		return printOnce(m, stdout, *interval, *promURL == "", *width, *height)
	}
	_, err = tea.NewProgram(m).Run()
	return err
}

// printOnce writes one screen without a terminal.
func printOnce(m ui.Model, w io.Writer, interval time.Duration, twice bool, width, height int) error {
	m = m.Feed()
	if twice {
		time.Sleep(interval)
		m = m.Feed()
	}
	_, err := fmt.Fprintln(w, ansi.Strip(ui.Render(m.Input(), width, height)))
	return err
}
