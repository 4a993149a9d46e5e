package bench

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"
	"time"

	"github.com/kubernaut/datastorage/bench/loadgen"
)

// Percentiles of a distribution, in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
	N    int     `json:"n"`
}

// latencies are the acknowledgements' latencies.
func latencies(acks []loadgen.Ack) []time.Duration {
	out := make([]time.Duration, len(acks))
	for i, a := range acks {
		out[i] = a.Latency
	}
	return out
}

func percentiles(ds []time.Duration) *Percentiles {
	if len(ds) == 0 {
		return nil
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	at := func(q float64) float64 { return ms(s[min(len(s)-1, int(q*float64(len(s))))]) }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return &Percentiles{P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: ms(s[len(s)-1]),
		Mean: ms(sum / time.Duration(len(s))), N: len(s)}
}

// progress prints a live line every second until done.
func progress(w io.Writer, name string, start time.Time, accepted *atomic.Int64, persisted func() int64, done <-chan struct{}) {
	if w == io.Discard {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastA, lastP int64
	for {
		select {
		case <-done:
			fmt.Fprintln(w)
			return
		case <-tick.C:
			a, p := accepted.Load(), persisted()
			fmt.Fprintf(w, "\r%-16s %5.1fs  accepted %9d (%7d/s)  persisted %9d (%7d/s)   ",
				name, time.Since(start).Seconds(), a, a-lastA, p, p-lastP)
			lastA, lastP = a, p
		}
	}
}
