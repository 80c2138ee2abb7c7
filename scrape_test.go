package modeltel

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modeltel/modeltel/internal/testkit"
)

// Start's registry gives scrapes in which every request that began before
// the scrape is active (http_server_active_requests) or in the GenAI series
// (gen_ai_server_request_duration_seconds), never neither: the middleware
// and the inference metrics are one collector there, the middleware's
// gauges read first. Registered apart, the registry collected the two
// concurrently, and a request ending between the reads vanished from the
// scrape (once seen as a flake of the inference server's OpenAI SDK test).
func TestStartScrapeSeesEveryRequest(t *testing.T) {
	noOTLP(t)
	tel, err := Start(context.Background(), WithLogger(discard()), WithoutGPU())
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	var begun atomic.Int64 // requests inside the handler: after the gauges went up
	h := tel.Middleware().Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		begun.Add(1)
		chat.ServeHTTP(w, r)
		// Requests of up to a few hundred µs, so that some that began
		// before a scrape end while it is being gathered.
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	}))
	stop := testkit.Hammer(16, func() {
		r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[]}`))
		h.ServeHTTP(httptest.NewRecorder(), r)
	})
	defer stop()
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
		before := float64(begun.Load())
		mfs, err := tel.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		active, done := testkit.Total(mfs, "http_server_active_requests"), testkit.Total(mfs, "gen_ai_server_request_duration_seconds")
		if active+done < before {
			t.Fatalf("scrape: %v requests active + %v in the GenAI series < %v begun before it", active, done, before)
		}
	}
}
