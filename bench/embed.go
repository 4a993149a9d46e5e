package bench

import (
	"hash/fnv"
	"math"
	"strings"
	"unicode"

	"github.com/kubernaut/datastorage/wire"
)

// EmbeddingDims is the spec's vector(768).
const EmbeddingDims = 768

// hashEmbed is a deterministic embedding with no model: signed feature
// hashing of lower-cased word and bigram tokens, L2-normalised (the design's
// default embedder, reimplemented here because central/embed did not exist
// when the bench was written).
func hashEmbed(text string) []float32 {
	v := make([]float32, EmbeddingDims)
	toks := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	add := func(tok string) {
		h := fnv.New64a()
		h.Write([]byte(tok))
		s := h.Sum64()
		sign := float32(1)
		if s>>63 == 1 {
			sign = -1
		}
		v[s%EmbeddingDims] += sign
	}
	for i, t := range toks {
		add(t)
		if i > 0 {
			add(toks[i-1] + " " + t)
		}
	}
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 {
		v[0] = 1
		return v
	}
	inv := float32(1 / math.Sqrt(n))
	for i := range v {
		v[i] *= inv
	}
	return v
}

// embeddingText is the text that represents a record for its embedding:
// the semantic fields, as the design names them.
func embeddingText(r *wire.Record) string {
	if a := r.Remediation; a != nil {
		return strings.Join([]string{a.AlertName, a.ActionType, a.Status, a.Reasoning, a.ErrorMessage, a.Namespace, a.Cluster}, " ")
	}
	a := r.Workflow
	return strings.Join([]string{a.StepName, a.StepStatus, a.ErrorMessage}, " ")
}
