package central

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/pgvector/pgvector-go"
	"github.com/valyala/fasthttp"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/central/authz"
	"github.com/kubernaut/datastorage/central/embed"
	"github.com/kubernaut/datastorage/internal/edge"
	"github.com/kubernaut/datastorage/storage"
	"github.com/kubernaut/datastorage/wire"
)

// POST /api/v1/incidents/similar: the audits most similar to a text or a
// record, for the AI Analysis controller.
//
// Request (application/json):
//
//	{"text": "…"}                                    free text, embedded as is
//	{"record": {"kind": "remediation", "record": {…}}} a record in the batch item
//	                                                  format, embedded through
//	                                                  embed.Document like stored ones
//	optional: "cluster", "namespace", "kind" ("remediation"|"workflow"),
//	          "since", "until" (RFC 3339; since ≤ t < until), "limit" (1..MaxLimit,
//	          default DefaultSearchLimit)
//
// Answer 200: {"results":[{"auditID","kind","serviceAccount","similarity",
// "occurredAt","receivedAt","remediation"|"workflow": {the stored record}}]},
// most similar first; similarity is 1 − cosine distance. Each result is
// joined to its audit by the audit's full identity (kind, writer, ID).
const pathSimilar = "/api/v1/incidents/similar"

// Search defaults.
const (
	DefaultSearchLimit   = 10
	DefaultSearchMax     = 100
	DefaultSearchTimeout = 5 * time.Second
	maxSearchBody        = 1 << 20
)

// VectorSearcher finds similar vectors; *storage.VectorDB implements it.
type VectorSearcher interface {
	Search(ctx context.Context, query pgvector.Vector, f storage.SearchFilter, limit int) ([]storage.Match, error)
}

// AuditReader reads stored audits by identity; *storage.DB implements it.
type AuditReader interface {
	Records(ctx context.Context, refs []storage.RecordRef) (map[storage.RecordRef]*wire.Record, error)
}

// SearchConfig enables the similarity search endpoint (Config.Search).
type SearchConfig struct {
	Embedder embed.Embedder // must be the pipeline's, so queries and stored vectors agree
	Vectors  VectorSearcher
	Audits   AuditReader
	// MaxLimit caps "limit". Zero: DefaultSearchMax.
	MaxLimit int
	// Timeout bounds embedding plus both queries. Zero: DefaultSearchTimeout.
	Timeout time.Duration
}

// Validate reports the first missing dependency.
func (c *SearchConfig) Validate() error {
	switch {
	case c.Embedder == nil:
		return errors.New("central: SearchConfig.Embedder is required")
	case c.Vectors == nil:
		return errors.New("central: SearchConfig.Vectors is required")
	case c.Audits == nil:
		return errors.New("central: SearchConfig.Audits is required")
	case c.MaxLimit < 0 || c.Timeout < 0:
		return errors.New("central: SearchConfig.MaxLimit and Timeout must not be negative")
	}
	return nil
}

type similarRequest struct {
	Text      string          `json:"text,omitempty"`
	Record    *wire.BatchItem `json:"record,omitempty"`
	Cluster   string          `json:"cluster,omitempty"`
	Namespace string          `json:"namespace,omitempty"`
	Kind      wire.Kind       `json:"kind,omitempty"`
	Since     *time.Time      `json:"since,omitempty"`
	Until     *time.Time      `json:"until,omitempty"`
	Limit     int             `json:"limit,omitempty"`
}

// SimilarResult is one audit of a similarity answer. ServiceAccount is who
// wrote it ("namespace/name"), so that a reader can weigh what it finds: an
// ID is unique per writer, not globally.
type SimilarResult struct {
	AuditID        string                 `json:"auditID"`
	Kind           wire.Kind              `json:"kind"`
	ServiceAccount string                 `json:"serviceAccount"`
	Similarity     float64                `json:"similarity"`
	OccurredAt     time.Time              `json:"occurredAt"`
	ReceivedAt     time.Time              `json:"receivedAt"`
	Remediation    *wire.RemediationAudit `json:"remediation,omitempty"`
	Workflow       *wire.WorkflowAudit    `json:"workflow,omitempty"`
}

// SimilarResponse answers POST /api/v1/incidents/similar.
type SimilarResponse struct {
	Results []SimilarResult `json:"results"`
}

// errSearchDisabled: the central runs without a vector database.
var errSearchDisabled = fmt.Errorf("similarity search is not configured: %w", edge.NotFound())

func badSearch(field, msg string) error {
	return &searchRequestError{body: wire.ValidationFailed(field, msg)}
}

// searchRequestError is an invalid search request (400).
type searchRequestError struct{ body *wire.ErrorBody }

func (e *searchRequestError) Error() string { return "invalid search request: " + e.body.Message }

func (s *Server) similar(ctx *fasthttp.RequestCtx) error {
	cfg := s.cfg.Search
	if cfg == nil {
		return errSearchDisabled
	}
	id, err := s.caller(ctx)
	if err != nil {
		return err
	}
	if err := s.authorize(ctx, id, authz.ReadSimilar); err != nil {
		return err
	}
	body, err := s.readBody(ctx, maxSearchBody)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	text, filter, limit, err := parseSimilar(body, now, cfg)
	if err != nil {
		return err
	}
	if err := s.allow(now, id, 1); err != nil {
		return err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultSearchTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := s.search(sctx, id, cfg, text, filter, limit)
	if err != nil {
		return err
	}
	return edge.WriteJSON(ctx, fasthttp.StatusOK, resp)
}

func parseSimilar(body []byte, now time.Time, cfg *SearchConfig) (string, storage.SearchFilter, int, error) {
	var req similarRequest
	if err := json.Unmarshal(body, &req, json.RejectUnknownMembers(true)); err != nil {
		return "", storage.SearchFilter{}, 0, badSearch("", "request body is not a valid search request: "+err.Error())
	}
	var text string
	switch {
	case req.Text != "" && req.Record != nil:
		return "", storage.SearchFilter{}, 0, badSearch("text", `send either "text" or "record", not both`)
	case req.Text != "":
		if len(req.Text) > wire.MaxTextLen {
			return "", storage.SearchFilter{}, 0, badSearch("text", fmt.Sprintf("text must be at most %d bytes", wire.MaxTextLen))
		}
		text = req.Text
	case req.Record != nil:
		rec, err := req.Record.Decode(now)
		if err != nil {
			var ve *wire.ValidationError
			if errors.As(err, &ve) {
				b := ve.Body()
				return "", storage.SearchFilter{}, 0, badSearch("record."+b.Field, b.Message)
			}
			return "", storage.SearchFilter{}, 0, badSearch("record", err.Error())
		}
		text = embed.Document(&rec)
	default:
		return "", storage.SearchFilter{}, 0, badSearch("text", `send "text" or "record"`)
	}
	maxLimit := cfg.MaxLimit
	if maxLimit <= 0 {
		maxLimit = DefaultSearchMax
	}
	limit := req.Limit
	switch {
	case limit == 0:
		limit = DefaultSearchLimit
	case limit < 0 || limit > maxLimit:
		return "", storage.SearchFilter{}, 0, badSearch("limit", fmt.Sprintf("limit must be between 1 and %d", maxLimit))
	}
	f := storage.SearchFilter{Cluster: req.Cluster, Namespace: req.Namespace, Kind: req.Kind}
	if f.Kind != "" && f.Kind != wire.KindRemediation && f.Kind != wire.KindWorkflow {
		return "", storage.SearchFilter{}, 0, badSearch("kind", `kind must be "remediation" or "workflow"`)
	}
	if req.Since != nil {
		f.Since = *req.Since
	}
	if req.Until != nil {
		f.Until = *req.Until
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return "", storage.SearchFilter{}, 0, badSearch("until", "until must be after since")
	}
	return text, f, limit, nil
}

func (s *Server) search(ctx context.Context, _ auth.Identity, cfg *SearchConfig, text string, f storage.SearchFilter, limit int) (*SimilarResponse, error) {
	vecs, err := cfg.Embedder.Embed(ctx, []string{text})
	if err != nil {
		return nil, fmt.Errorf("embed query: %w", err)
	}
	matches, err := cfg.Vectors.Search(ctx, pgvector.NewVector(vecs[0]), f, limit)
	if err != nil {
		return nil, fmt.Errorf("similarity search: %w", err)
	}
	refs := make([]storage.RecordRef, len(matches))
	for i, m := range matches {
		refs[i] = m.RecordRef
	}
	recs, err := cfg.Audits.Records(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("read matched audits: %w", err)
	}
	resp := &SimilarResponse{Results: make([]SimilarResult, 0, len(matches))}
	for _, m := range matches {
		rec, ok := recs[m.RecordRef]
		if !ok {
			continue // removed from the audit database since it was embedded
		}
		resp.Results = append(resp.Results, SimilarResult{
			AuditID: m.ID, Kind: m.Kind, ServiceAccount: m.ServiceAccount, Similarity: m.Similarity,
			OccurredAt: m.OccurredAt, ReceivedAt: rec.ReceivedAt, Remediation: rec.Remediation, Workflow: rec.Workflow,
		})
	}
	return resp, nil
}
