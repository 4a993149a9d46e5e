package hostile

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

// Run sends every row that applies to target against base, each in a
// subtest, and checks its status and JSON error body. It returns how many
// rows ran. The caller checks that nothing was stored and that the server
// is still healthy.
func Run(t *testing.T, base string, target Target, tokenFor func(string) string) int {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	ran := 0
	for _, r := range Requests() {
		want := r.Expect(target)
		if !want.Applies() {
			continue
		}
		ran++
		t.Run(r.Name, func(t *testing.T) {
			// A server that refuses a large request from its headers closes
			// while the client may still be writing; the kernel then resets
			// the connection before the answer is read. Retry that race (see
			// HugeHeaders): what is tested is the answer.
			var resp *http.Response
			var err error
			for range 5 {
				req, rerr := r.NewHTTP(base, tokenFor)
				require.NoError(t, rerr)
				if resp, err = client.Do(req); err == nil {
					break
				}
			}
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, want.Status, resp.StatusCode, "%s answered %s", target, body)
			var eb wire.ErrorBody
			require.NoError(t, json.Unmarshal(body, &eb), "%s", body)
			assert.Equal(t, want.Code, eb.Error)
			assert.NotEmpty(t, eb.Message)
			assert.Contains(t, resp.Header.Get("Content-Type"), "application/json")
		})
	}
	return ran
}

// HugeHeaders posts a record to url with 64 KiB of headers and returns the
// answer. The server answers 431 from the first 16 KiB and closes; a client
// still writing may then see its connection reset before it reads that
// answer (the kernel resets a socket closed with unread data), so a reset
// is retried a few times: what is tested is the answer, not the TCP race.
func HugeHeaders(t *testing.T, url string, headers map[string]string) (status int, body string) {
	t.Helper()
	var lastErr error
	for range 5 {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"remediationRequestID":"rr-1"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		req.Header.Set("X-Padding", strings.Repeat("p", 64<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	t.Fatalf("no answer to huge headers in 5 tries: %v", lastErr)
	return 0, ""
}
