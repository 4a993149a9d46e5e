package embed

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/kubernaut/datastorage/internal/backoff"
)

// OpenAI defaults for OpenAIConfig's zero values.
const (
	DefaultOpenAIBatchSize  = 64
	DefaultOpenAITimeout    = 30 * time.Second
	DefaultOpenAIMaxRetries = 4
	DefaultOpenAIMinBackoff = 200 * time.Millisecond
	DefaultOpenAIMaxBackoff = 5 * time.Second
)

// ErrDimensions is returned by NewOpenAI when the model's vectors are not
// Dimensions long.
var ErrDimensions = fmt.Errorf("embed: the model does not return %d-dimensional vectors", Dimensions)

// OpenAIConfig configures the client of an OpenAI-compatible embeddings API.
type OpenAIConfig struct {
	// URL is the API's base URL ("http://ollama:11434", "https://api.openai.com");
	// requests go to URL + "/v1/embeddings" ("/embeddings" when URL already
	// ends in "/v1"). Required.
	URL string
	// Model is sent as "model". Required.
	Model string
	// APIKey is sent as a Bearer token. Empty: no Authorization header.
	APIKey string
	// BatchSize is the most texts per request. Zero: DefaultOpenAIBatchSize.
	BatchSize int
	// Timeout bounds each HTTP request. Zero: DefaultOpenAITimeout.
	Timeout time.Duration
	// MaxRetries is how many times a request is retried after a network
	// error, a 429 or a 5xx. Zero: DefaultOpenAIMaxRetries. Negative: none.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the wait between retries (doubling,
	// with jitter; a Retry-After header is honoured up to MaxBackoff). Zero:
	// DefaultOpenAIMinBackoff, DefaultOpenAIMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Client is the HTTP client. Nil: a client with no overall timeout
	// (Timeout applies per request).
	Client *http.Client
}

// Validate reports the first invalid field.
func (c OpenAIConfig) Validate() error {
	switch {
	case c.URL == "":
		return errors.New("embed: OpenAIConfig.URL is required")
	case !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://"):
		return fmt.Errorf("embed: OpenAIConfig.URL must be http:// or https://, got %q", c.URL)
	case c.Model == "":
		return errors.New("embed: OpenAIConfig.Model is required")
	case c.BatchSize < 0:
		return fmt.Errorf("embed: OpenAIConfig.BatchSize must not be negative, got %d", c.BatchSize)
	case c.Timeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0:
		return errors.New("embed: OpenAIConfig durations must not be negative")
	}
	return nil
}

func (c OpenAIConfig) withDefaults() OpenAIConfig {
	c.BatchSize = cmp.Or(c.BatchSize, DefaultOpenAIBatchSize)
	c.Timeout = cmp.Or(c.Timeout, DefaultOpenAITimeout)
	c.MaxRetries = max(cmp.Or(c.MaxRetries, DefaultOpenAIMaxRetries), 0) // negative: none
	c.MinBackoff = cmp.Or(c.MinBackoff, DefaultOpenAIMinBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultOpenAIMaxBackoff)
	c.Client = cmp.Or(c.Client, &http.Client{})
	return c
}

// OpenAI embeds through an OpenAI-compatible /v1/embeddings endpoint
// (OpenAI, Ollama, vLLM, TEI).
type OpenAI struct {
	cfg      OpenAIConfig
	endpoint string
}

var _ Embedder = (*OpenAI)(nil)

// NewOpenAI validates cfg and checks, with one request, that the model
// answers with Dimensions-long vectors (ErrDimensions otherwise).
func NewOpenAI(ctx context.Context, cfg OpenAIConfig) (*OpenAI, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	base := strings.TrimRight(cfg.URL, "/")
	endpoint := base + "/v1/embeddings"
	if strings.HasSuffix(base, "/v1") {
		endpoint = base + "/embeddings"
	}
	o := &OpenAI{cfg: cfg, endpoint: endpoint}
	if _, err := o.Embed(ctx, []string{"dimension check"}); err != nil {
		return nil, fmt.Errorf("embed: openai start-up check: %w", err)
	}
	return o, nil
}

// Provider is "openai".
func (*OpenAI) Provider() string { return "openai" }

// Identity is "openai/<model>".
func (o *OpenAI) Identity() string { return "openai/" + o.cfg.Model }

// Embed sends texts in requests of at most BatchSize and L2-normalises the
// answers. A vector of the wrong length fails with ErrDimensions.
func (o *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += o.cfg.BatchSize {
		part, err := o.embedBatch(ctx, texts[i:min(i+o.cfg.BatchSize, len(texts))])
		if err != nil {
			return nil, err
		}
		out = append(out, part...)
	}
	return out, nil
}

type embeddingsRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type embeddingsResponse struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
}

// retryableError is a failure worth retrying (and, once retries run out,
// ErrUnavailable).
type retryableError struct {
	err        error
	retryAfter time.Duration
}

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

func (o *OpenAI) embedBatch(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(embeddingsRequest{Model: o.cfg.Model, Input: texts})
	if err != nil {
		return nil, fmt.Errorf("embed: openai: encode request: %w", err)
	}
	bo := backoff.New(o.cfg.MinBackoff, o.cfg.MaxBackoff)
	for attempt := 0; ; attempt++ {
		vecs, err := o.post(ctx, body, len(texts))
		var re *retryableError
		if err == nil || !errors.As(err, &re) {
			return vecs, err
		}
		if attempt >= o.cfg.MaxRetries || ctx.Err() != nil {
			return nil, fmt.Errorf("embed: openai: %w: %w (after %d attempts)", ErrUnavailable, err, attempt+1)
		}
		wait := bo.Next()
		if re.retryAfter > 0 {
			wait = min(re.retryAfter, o.cfg.MaxBackoff)
		}
		if !backoff.Sleep(ctx, wait, nil) {
			return nil, fmt.Errorf("embed: openai: %w: %w", ErrUnavailable, ctx.Err())
		}
	}
}

func (o *OpenAI) post(ctx context.Context, body []byte, n int) ([][]float32, error) {
	rctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, o.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("embed: openai: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if o.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.cfg.APIKey)
	}
	resp, err := o.cfg.Client.Do(req)
	if err != nil {
		return nil, &retryableError{err: fmt.Errorf("request: %w", err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &retryableError{err: fmt.Errorf("read answer: %w", err)}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return nil, &retryableError{err: fmt.Errorf("status %d: %s", resp.StatusCode, snippet(data)), retryAfter: time.Duration(ra) * time.Second}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("embed: openai: status %d: %s", resp.StatusCode, snippet(data))
	}
	var er embeddingsResponse
	if err := json.Unmarshal(data, &er); err != nil {
		return nil, fmt.Errorf("embed: openai: decode answer: %w", err)
	}
	if len(er.Data) != n {
		return nil, fmt.Errorf("embed: openai: %d embeddings for %d inputs", len(er.Data), n)
	}
	out := make([][]float32, n)
	for _, d := range er.Data {
		if d.Index < 0 || d.Index >= n || out[d.Index] != nil {
			return nil, fmt.Errorf("embed: openai: bad or repeated index %d", d.Index)
		}
		if len(d.Embedding) != Dimensions {
			return nil, fmt.Errorf("%w: got %d", ErrDimensions, len(d.Embedding))
		}
		normalise(d.Embedding)
		out[d.Index] = d.Embedding
	}
	return out, nil
}

func normalise(v []float32) {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= inv
	}
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
