package auth_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubernaut/datastorage/central/auth"
)

// BenchmarkTokenReview_CacheHitVersusReview measures a cached answer against a
// TokenReview round trip to a local TLS API server, in one run, and reports
// their ratio: what the cache saves per request at the very least (a real API
// server is farther away than loopback).
func BenchmarkTokenReview_CacheHitVersusReview(b *testing.B) {
	f := newFakeAPI(b)
	tokens := make([]string, 200)
	for i := range tokens {
		tokens[i] = projectedToken("ns", fmt.Sprintf("sa-%d", i))
		f.addUser(tokens[i], fmt.Sprintf("system:serviceaccount:ns:sa-%d", i), "")
	}
	cfg := f.restConfig()
	cfg.QPS = -1 // no client-side throttling: measure the round trip itself
	tr, err := auth.NewTokenReview(auth.TokenReviewConfig{Client: f.clientsetFor(cfg), Audience: audience})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	// Reviews: the cache is made to miss with a fresh TokenReview per round.
	start := time.Now()
	reviews := 0
	for i := 0; i < len(tokens) && time.Since(start) < 2*time.Second; i++ {
		if _, err := tr.Authenticate(ctx, tokens[i], testPeer); err != nil {
			b.Fatal(err)
		}
		reviews++
	}
	perReview := time.Since(start) / time.Duration(reviews)

	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := tr.Authenticate(ctx, tokens[i%reviews], testPeer); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perHit := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(perReview.Nanoseconds()), "ns/review")
	b.ReportMetric(float64(perReview)/float64(perHit), "review/hit")
}

// BenchmarkStaticTokens_Authenticate is linear in the number of tokens by
// design (every entry is compared, in constant time); this shows the cost.
func BenchmarkStaticTokens_Authenticate(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var sb strings.Builder
			for i := range n {
				fmt.Fprintf(&sb, "tok-%d,user-%d,uid\n", i, i)
			}
			s, err := auth.ParseStaticTokens(strings.NewReader(sb.String()))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for b.Loop() {
				if _, err := s.Authenticate(ctx, "tok-5", testPeer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
