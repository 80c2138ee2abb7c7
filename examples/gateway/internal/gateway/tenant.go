package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modeltel/modeltel/internal/cowmap"
)

// Tenant labels that are no hash.
const (
	// TenantOther is the tenant of every tenant beyond Config.MaxTenants.
	TenantOther = "other"
	// TenantAnonymous is the tenant of a request with no API key (nor
	// tenant header).
	TenantAnonymous = "anonymous"
)

// tenants attributes requests to tenants: the hash of the API key (or of
// the tenant header's value), never the key itself, bounded: the first max
// distinct tenants get their own series, the later ones share "other", so
// a thousand keys never make a thousand series. (First come, not top-K by
// traffic: a counter cannot move from one series to another without
// breaking rate().)
type tenants struct {
	header string // "" means the Authorization bearer token
	salt   string
	max    int
	m      *metrics
	seen   cowmap.Map[string, *tenantSeries]
}

type tenantSeries struct {
	name              string
	requests, in, out prometheus.Counter
}

// id returns the tenant id of r: "t-" and 16 hex digits of the SHA-256 of
// the salt and the key.
func (t *tenants) id(r *http.Request) string {
	var key string
	if t.header != "" {
		key = r.Header.Get(t.header)
	} else {
		auth := r.Header.Get("Authorization")
		if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			key = strings.TrimSpace(auth[7:])
		}
	}
	if key == "" {
		return TenantAnonymous
	}
	h := sha256.New()
	h.Write([]byte(t.salt))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	return "t-" + hex.EncodeToString(h.Sum(sum[:0])[:8])
}

// series returns the series of the tenant id, bounded.
func (t *tenants) series(id string) *tenantSeries {
	s, _ := t.seen.LoadOrAdmit(id, t.admit, t.create)
	return s
}

func (t *tenants) admit(id string) (string, bool) {
	if id == TenantAnonymous || t.seen.Len() < t.max {
		return id, true
	}
	return TenantOther, true
}

func (t *tenants) create(id string) *tenantSeries {
	return &tenantSeries{
		name:     id,
		requests: t.m.tenantRequests.WithLabelValues(id),
		in:       t.m.tenantToken.WithLabelValues(id, "input"),
		out:      t.m.tenantToken.WithLabelValues(id, "output"),
	}
}
