// Command tenantpush pushes a few log lines for one team through the SDK's Loki handler, into that team's
// tenant, and flushes them: `make e2e-fleet` uses it to check per-team isolation of logs.
//
//	tenantpush --url http://127.0.0.1:9428/insert --team serving --account 1
//
// The tenant is sent both ways: X-Scope-OrgID (Loki's tenant header, from LokiConfig.TenantID) with the team
// name, and VictoriaLogs' AccountID/ProjectID headers (LokiConfig.Headers), since VictoriaLogs keys its
// tenants on those numeric headers and not on X-Scope-OrgID (docs/stack.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/modeltel/modeltel/logging"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:9428/insert", "base URL of the Loki push API")
	team := flag.String("team", "", "team: the tenant and the stream label team")
	account := flag.Int("account", 0, "VictoriaLogs AccountID of the team's tenant")
	lines := flag.Int("lines", 5, "lines to push")
	flag.Parse()
	if *team == "" || *account <= 0 {
		fmt.Fprintln(os.Stderr, "tenantpush: --team and a positive --account are required")
		os.Exit(2)
	}
	loki, err := logging.NewLoki(logging.LokiConfig{
		URL:       *url,
		Labels:    map[string]string{"service_name": "fleet-" + *team, "team": *team},
		TenantID:  *team,
		Headers:   map[string]string{"AccountID": strconv.Itoa(*account), "ProjectID": "0"},
		BatchWait: 100 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "tenantpush:", err)
		os.Exit(1)
	}
	log := slog.New(loki)
	for i := range *lines {
		log.Info("fleet tenant line", "team", *team, "n", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := loki.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tenantpush: flush:", err)
		os.Exit(1)
	}
}
