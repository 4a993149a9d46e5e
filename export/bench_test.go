//go:build unix

package export_test

import (
	"bufio"
	"bytes"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/export"
)

// BenchmarkWriter measures Record on typical (~400-byte) remediation
// lines into a buffered discard writer: JSON encoding, SHA-256 and the copy
// out, what an export handler pays per row on top of the database.
func BenchmarkWriter(b *testing.B) {
	es := entries(1024, 0)
	line, err := json.Marshal(&es[0])
	require.NoError(b, err)
	w := export.NewWriter(bufio.NewWriterSize(io.Discard, 64<<10))
	b.SetBytes(int64(len(line) + 1))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	for i := range b.N {
		e := &es[i%len(es)]
		// One long run of one kind in time order: shift each lap forward.
		e.OccurredAt = t0.Add(time.Duration(i) * time.Microsecond)
		if err := w.Record(e); err != nil {
			b.Fatal(err)
		}
	}
	reportRates(b, b.N, cpu)
}

// BenchmarkVerify measures Verify on the same lines: decoding every record,
// SHA-256, the order checks.
func BenchmarkVerify(b *testing.B) {
	key := newKey(b)
	data := write(b, entries(20000, 0), trailer(), key)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	for range b.N {
		if _, err := export.Verify(bytes.NewReader(data), pubOf(key)); err != nil {
			b.Fatal(err)
		}
	}
	reportRates(b, b.N*20000, cpu)
}

// reportRates reports lines per second of wall time and per second of this
// process's CPU time: on a shared machine the wall rate swings with the
// load, the CPU rate much less.
func reportRates(b *testing.B, lines int, cpuBefore time.Duration) {
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(lines)/(cpuTime(b)-cpuBefore).Seconds(), "lines/cpu-s")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
