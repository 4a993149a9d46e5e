package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// StaticTokens authenticates against a fixed token list in kube-apiserver's
// --token-auth-file format. Only SHA-256 digests of the tokens are kept, and
// every look-up compares against all of them in constant time.
type StaticTokens struct {
	entries []staticEntry
}

type staticEntry struct {
	digest [sha256.Size]byte
	id     Identity
}

// LoadStaticTokens reads a token file; see ParseStaticTokens for the format.
func LoadStaticTokens(path string) (*StaticTokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: static tokens: %w", err)
	}
	defer f.Close()
	s, err := ParseStaticTokens(f)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return s, nil
}

// ParseStaticTokens reads kube-apiserver's token file format: CSV records of
// token,user,uid and an optional fourth column of comma-separated groups,
// quoted when it holds more than one ("group1,group2"). Blank lines and lines
// starting with '#' are ignored. Unlike kube-apiserver, which warns and goes
// on, it refuses an empty token, an empty user, a duplicate token and more
// than four columns, naming the line; the message never contains a token.
func ParseStaticTokens(r io.Reader) (*StaticTokens, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true

	s := &StaticTokens{}
	seen := make(map[[sha256.Size]byte]int) // digest → line
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				// csv.ParseError's message holds no field values.
				return nil, fmt.Errorf("auth: static tokens: line %d: %w", pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("auth: static tokens: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) < 3 || len(rec) > 4 {
			return nil, fmt.Errorf("auth: static tokens: line %d: want 3 or 4 columns (token,user,uid[,\"group1,group2\"]), got %d", line, len(rec))
		}
		token, user, uid := rec[0], strings.TrimSpace(rec[1]), strings.TrimSpace(rec[2])
		if strings.TrimSpace(token) == "" {
			return nil, fmt.Errorf("auth: static tokens: line %d: empty token", line)
		}
		if user == "" {
			return nil, fmt.Errorf("auth: static tokens: line %d: empty user name", line)
		}
		var groups []string
		if len(rec) == 4 {
			for g := range strings.SplitSeq(rec[3], ",") {
				if g = strings.TrimSpace(g); g != "" {
					groups = append(groups, g)
				}
			}
		}
		digest := sha256.Sum256([]byte(token))
		if first, dup := seen[digest]; dup {
			return nil, fmt.Errorf("auth: static tokens: line %d: duplicate token (first on line %d)", line, first)
		}
		seen[digest] = line
		s.entries = append(s.entries, staticEntry{digest: digest, id: NewIdentity(user, uid, groups)})
	}
	return s, nil
}

// Len is the number of tokens.
func (s *StaticTokens) Len() int { return len(s.entries) }

// Authenticate returns the identity of token, or an error wrapping
// ErrUnauthenticated. The time it takes does not depend on which token, if
// any, matches. A look-up costs nothing, so peer is ignored.
func (s *StaticTokens) Authenticate(ctx context.Context, token string, _ netip.Addr) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	digest := sha256.Sum256([]byte(token))
	match := -1
	for i := range s.entries {
		eq := subtle.ConstantTimeCompare(digest[:], s.entries[i].digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 || token == "" {
		return Identity{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	return s.entries[match].id.clone(), nil
}
