package embed_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/central/embed"
)

// fakeAPI speaks OpenAI's /v1/embeddings: it embeds each input with the hash
// embedder scaled by 3 (so normalisation is visible), answers in reverse
// order (so indexes matter), and fails the first `failures` requests with 503.
type fakeAPI struct {
	dims     int
	failures atomic.Int32
	requests atomic.Int32
	maxBatch atomic.Int32
	auth     atomic.Value
	hang     bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if r.URL.Path != "/v1/embeddings" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	f.auth.Store(r.Header.Get("Authorization"))
	if f.hang {
		_, _ = io.ReadAll(r.Body) // so the server notices the client leaving
		<-r.Context().Done()
		return
	}
	if f.failures.Add(-1) >= 0 {
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Model != "nomic-embed-text" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if n := int32(len(req.Input)); n > f.maxBatch.Load() {
		f.maxBatch.Store(n)
	}
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	var resp struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
	}
	resp.Object, resp.Model = "list", req.Model
	for i := len(req.Input) - 1; i >= 0; i-- {
		v := make([]float32, embed.Dimensions)
		embed.EmbedInto(req.Input[i], v)
		for j := range v {
			v[j] *= 3
		}
		resp.Data = append(resp.Data, item{Object: "embedding", Index: i, Embedding: v[:f.dims]})
	}
	out, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func newFake(t *testing.T, f *fakeAPI) string {
	t.Helper()
	if f.dims == 0 {
		f.dims = embed.Dimensions
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

func cfg(url string) embed.OpenAIConfig {
	return embed.OpenAIConfig{URL: url, Model: "nomic-embed-text", APIKey: "k", BatchSize: 3,
		Timeout: time.Second, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
}

func TestOpenAI_BatchesInOrderAndNormalises(t *testing.T) {
	f := &fakeAPI{}
	o, err := embed.NewOpenAI(context.Background(), cfg(newFake(t, f)))
	require.NoError(t, err)
	assert.Equal(t, "openai/nomic-embed-text", o.Identity())
	texts := []string{"a b", "c d", "e f", "g h", "i j", "k l", "m n"}
	got, err := o.Embed(context.Background(), texts)
	require.NoError(t, err)
	require.Len(t, got, len(texts))
	want := make([]float32, embed.Dimensions)
	for i, text := range texts {
		embed.EmbedInto(text, want)
		assert.InDeltaSlice(t, want, got[i], 1e-6, "text %d in its place, unit length", i)
	}
	assert.EqualValues(t, 3, f.maxBatch.Load())
	assert.EqualValues(t, 1+3, f.requests.Load(), "start-up check, then 7 texts in batches of 3")
	assert.Equal(t, "Bearer k", f.auth.Load())
}

func TestOpenAI_StartUpCheckRefusesOtherDimensions(t *testing.T) {
	_, err := embed.NewOpenAI(context.Background(), cfg(newFake(t, &fakeAPI{dims: 384})))
	require.ErrorIs(t, err, embed.ErrDimensions)
}

func TestOpenAI_RetriesOverloadThenSucceeds(t *testing.T) {
	f := &fakeAPI{}
	f.failures.Store(2)
	o, err := embed.NewOpenAI(context.Background(), cfg(newFake(t, f)))
	require.NoError(t, err)
	assert.EqualValues(t, 3, f.requests.Load(), "two 503s, then the answer")
	_, err = o.Embed(context.Background(), []string{"x"})
	require.NoError(t, err)
}

func TestOpenAI_GivesUpAsUnavailable(t *testing.T) {
	f := &fakeAPI{}
	o, err := embed.NewOpenAI(context.Background(), cfg(newFake(t, f)))
	require.NoError(t, err)
	f.failures.Store(100)
	_, err = o.Embed(context.Background(), []string{"x"})
	require.ErrorIs(t, err, embed.ErrUnavailable)
}

func TestOpenAI_TimeoutIsUnavailable(t *testing.T) {
	c := cfg(newFake(t, &fakeAPI{hang: true}))
	c.Timeout, c.MaxRetries = 50*time.Millisecond, -1
	_, err := embed.NewOpenAI(context.Background(), c)
	require.ErrorIs(t, err, embed.ErrUnavailable)
}

func TestOpenAIConfig_Validate(t *testing.T) {
	assert.ErrorContains(t, embed.OpenAIConfig{Model: "m"}.Validate(), "URL")
	assert.ErrorContains(t, embed.OpenAIConfig{URL: "ftp://x", Model: "m"}.Validate(), "URL")
	assert.ErrorContains(t, embed.OpenAIConfig{URL: "http://x"}.Validate(), "Model")
}
