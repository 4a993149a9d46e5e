package embed

import (
	"context"
	"math"
)

// Hash is the built-in embedder: signed feature hashing of word unigrams and
// bigrams into Dimensions buckets, L2-normalised. It is deterministic, needs
// no model and embeds a document in microseconds.
//
// Tokens are maximal runs of ASCII letters and digits and of non-ASCII bytes
// (so UTF-8 words stay whole), ASCII letters folded to lower case; anything
// else separates tokens. A token at the start of a line that is followed
// directly by ':' is a field label of Document ("alert:", "error:") and is
// not a feature, so labels shared by every document do not make unrelated
// documents look alike. Bigrams are formed within a line only, so they never
// join two fields. Each feature adds ±1 to one bucket; bucket and sign come
// from a 64-bit FNV-1a hash of the token, finalised with a SplitMix64 mix,
// computed over the bytes in place (no allocation per token). A text with no
// features maps to a fixed unit vector.
type Hash struct{}

// NewHash returns the hash embedder.
func NewHash() *Hash { return &Hash{} }

var _ Embedder = (*Hash)(nil)

// Provider is "hash".
func (*Hash) Provider() string { return "hash" }

// Identity is "hash/v1"; it changes if the features ever do.
func (*Hash) Identity() string { return "hash/v1" }

// Embed embeds texts; it never fails. The vectors share one allocation.
func (h *Hash) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	buf := make([]float32, len(texts)*Dimensions)
	for i, t := range texts {
		out[i] = buf[i*Dimensions : (i+1)*Dimensions : (i+1)*Dimensions]
		EmbedInto(t, out[i])
	}
	return out, nil
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
	// bigramSeed keeps a bigram's feature apart from its words'.
	bigramSeed = 0x9e3779b97f4a7c15
)

// EmbedInto writes the embedding of text into dst (len Dimensions),
// overwriting it. It does not allocate.
func EmbedInto(text string, dst []float32) {
	dst = dst[:Dimensions]
	clear(dst)
	var (
		prev, cur   uint64
		inTok       bool
		havePrev    bool
		lineStart   = true // no feature yet on this line
		features    int
		tokenIsHead bool // the current token is the first of its line
	)
	emit := func(hv uint64) {
		m := mix(hv)
		idx := (m >> 1) % Dimensions
		if m&1 == 0 {
			dst[idx]++
		} else {
			dst[idx]--
		}
		features++
	}
	endToken := func(next byte) {
		inTok = false
		if tokenIsHead && next == ':' {
			return // a field label
		}
		emit(cur)
		if havePrev {
			emit(prev*bigramSeed ^ cur + bigramSeed)
		}
		prev, havePrev = cur, true
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if isWordByte(c) {
			if !inTok {
				inTok, cur = true, fnvOffset
				tokenIsHead = lineStart
				lineStart = false
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			cur = (cur ^ uint64(c)) * fnvPrime
			continue
		}
		if inTok {
			endToken(c)
		}
		if c == '\n' {
			lineStart, havePrev = true, false
		}
	}
	if inTok {
		endToken(0)
	}
	if features == 0 {
		dst[0] = 1
		return
	}
	var sum float64
	for _, v := range dst {
		sum += float64(v) * float64(v)
	}
	if sum == 0 { // every feature cancelled out
		dst[0] = 1
		return
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range dst {
		dst[i] *= inv
	}
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80
}

// mix is SplitMix64's finaliser: it spreads FNV's low-entropy high bits.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
