package wire

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/google/uuid"
)

// IDPrefix starts every ID this package generates.
const IDPrefix = "audit-"

// idempotencyDomain separates IDForKey's hashes from any other use of
// SHA-256 over similar input; bump the version to change the derivation.
const idempotencyDomain = "kubernaut.datastorage/idempotency-key/v1"

// NewID is a fresh record ID: "audit-" + a UUIDv7, so IDs sort by creation
// time (string order equals time order; within one process they are
// strictly increasing).
func NewID() string {
	return IDPrefix + uuid.Must(uuid.NewV7()).String()
}

// IDForKey is the ID of the record written under an Idempotency-Key: the same
// (serviceAccount, kind, key) always gives the same ID, whichever of the agent
// or the central accepted the request, and different service accounts or
// kinds give different IDs. serviceAccount is "namespace/name". The ID is
// "audit-" + a UUIDv8 whose 122 free bits are the first bits of SHA-256 over
// a domain string and the three parts, each length-prefixed so that no two
// different triples hash the same input.
func IDForKey(serviceAccount string, kind Kind, key string) string {
	return IDPrefix + derivedUUID(idempotencyDomain, serviceAccount, string(kind), key).String()
}

// derivedUUID is a UUIDv8 whose 122 free bits are the first bits of SHA-256
// over the parts, each prefixed with its length (8 bytes, big endian).
func derivedUUID(parts ...string) uuid.UUID {
	h := sha256.New()
	var n [8]byte
	for _, part := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var u uuid.UUID
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u
}

// ValidateID checks a record ID as sent by a client or an agent: 1 to
// MaxIDLen characters, ASCII letters, digits and "-_.:" only. It does not
// require the "audit-" prefix: IDs assigned elsewhere are kept as they are.
func ValidateID(id string) error {
	switch {
	case id == "":
		return invalid("id", "ID must not be empty")
	case len(id) > MaxIDLen:
		return invalid("id", "ID must be at most 255 characters")
	}
	for i := 0; i < len(id); i++ {
		if !isIDByte(id[i]) {
			return invalid("id", `ID may contain only ASCII letters, digits and "-_.:"`)
		}
	}
	return nil
}

func isIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == ':'
}

// ValidateIdempotencyKey checks the Idempotency-Key header: 1 to
// MaxIdempotencyKeyLen characters of printable ASCII (space to '~'). Its
// error names the field "Idempotency-Key".
func ValidateIdempotencyKey(key string) error {
	const field = "Idempotency-Key"
	switch {
	case key == "":
		return invalid(field, "Idempotency-Key must not be empty")
	case len(key) > MaxIdempotencyKeyLen:
		return invalid(field, "Idempotency-Key must be at most 255 characters")
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return invalid(field, "Idempotency-Key may contain only printable ASCII characters")
		}
	}
	return nil
}
