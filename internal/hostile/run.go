package hostile

import (
	"encoding/json"
	"io"
	"net/http"
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
			req, err := r.NewHTTP(base, tokenFor)
			require.NoError(t, err)
			resp, err := client.Do(req)
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
