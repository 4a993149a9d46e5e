package embed

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"

	"github.com/kubernaut/datastorage/wire"
)

// Dimensions is the size of every embedding (the vector(768) column).
const Dimensions = 768

// Embedder embeds texts in batches. Implementations are safe for concurrent
// use.
type Embedder interface {
	// Embed returns one L2-normalised vector of Dimensions floats per text,
	// in order. Errors caused by the provider being unreachable or
	// overloaded wrap ErrUnavailable.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Provider names the provider, for metrics labels: "hash", "openai".
	Provider() string
	// Identity names the provider and model exactly (e.g.
	// "hash/v1", "openai/nomic-embed-text"): two embedders with the same
	// identity map a text to the same vector. It is part of ContentHash.
	Identity() string
}

// ErrUnavailable is wrapped by Embed errors caused by the provider being
// unreachable, timing out or refusing for overload (5xx, 429): retry later.
var ErrUnavailable = errors.New("embed: provider unavailable")

// Document is the text that represents rec for embedding, built here and
// nowhere else. It has one line per semantic field the writer sent, in this
// order, as "label: value":
//
//	remediation: alert (alertName), action (actionType), status, reasoning,
//	             error (errorMessage), namespace, cluster, target (targetResource)
//	workflow:    step (stepName), status (stepStatus), error (errorMessage)
//
// IDs (record, remediation request, workflow), timestamps, durations,
// priority, confidence and the service account are left out: they differ
// between two occurrences of the same incident and would keep identical
// incidents apart. Whitespace inside a value (newlines included) is
// collapsed to single spaces, so a value cannot start a line of its own.
// Omitted fields have no line; a record with none gives "".
func Document(rec *wire.Record) string {
	var b strings.Builder
	line := func(label, value string) {
		value = strings.Join(strings.Fields(value), " ")
		if value == "" {
			return
		}
		b.WriteString(label)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteByte('\n')
	}
	switch {
	case rec.Remediation != nil:
		a := rec.Remediation
		line("alert", a.AlertName)
		line("action", a.ActionType)
		line("status", a.Status)
		line("reasoning", a.Reasoning)
		line("error", a.ErrorMessage)
		line("namespace", a.Namespace)
		line("cluster", a.Cluster)
		line("target", a.TargetResource)
	case rec.Workflow != nil:
		w := rec.Workflow
		line("step", w.StepName)
		line("status", w.StepStatus)
		line("error", w.ErrorMessage)
	}
	return b.String()
}

// ContentHash identifies the vector of document under embedder identity:
// SHA-256 of the identity, a NUL byte and the document. Two audits with the
// same hash share one stored vector.
func ContentHash(identity, document string) []byte {
	h := sha256.New()
	h.Write([]byte(identity))
	h.Write([]byte{0})
	h.Write([]byte(document))
	return h.Sum(nil)
}
