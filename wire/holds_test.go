package wire_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubernaut/datastorage/wire"
)

func TestDecodePlaceHold_TakesOneTargetAndAReason(t *testing.T) {
	r, err := wire.DecodePlaceHold([]byte(`{"remediationRequestID":"rr-1","reason":"Litigation 2026-117 (counsel: J. Doe)"}`))
	require.NoError(t, err)
	kind, id := r.Target()
	assert.Equal(t, wire.KindRemediation, kind)
	assert.Equal(t, "rr-1", id)
	assert.Equal(t, "Litigation 2026-117 (counsel: J. Doe)", r.Reason)

	r, err = wire.DecodePlaceHold([]byte(`{"workflowID":"team-a/wf 7","remediationRequestID":null,"reason":"Prüfung § 4 — 监管"}`))
	require.NoError(t, err, "a null member is absent; any printable script")
	kind, id = r.Target()
	assert.Equal(t, wire.KindWorkflow, kind)
	assert.Equal(t, "team-a/wf 7", id)

	long := strings.Repeat("é", wire.MaxNameLen)
	_, err = wire.DecodePlaceHold([]byte(fmt.Sprintf(`{"workflowID":%q,"reason":%q}`, long, strings.Repeat("ß", wire.MaxHoldReasonLen))))
	require.NoError(t, err, "limits count characters")
}

func TestDecodePlaceHold_RefusesEachBadShapeNamingTheField(t *testing.T) {
	for body, field := range map[string]string{
		`{"remediationRequestID":"rr-1","workflowID":"wf-1","reason":"r"}`: "workflowID",
		`{"reason":"r"}`: "remediationRequestID",
		`{"remediationRequestID":"","workflowID":"","reason":"r"}`:                                        "workflowID",
		`{"remediationRequestID":"","reason":"r"}`:                                                        "remediationRequestID",
		`{"remediationRequestID":null,"workflowID":null,"reason":"r"}`:                                    "remediationRequestID",
		`{"remediationRequestID":"   ","reason":"r"}`:                                                     "remediationRequestID",
		`{"remediationRequestID":"rr\u0000","reason":"r"}`:                                                "remediationRequestID",
		`{"workflowID":"` + strings.Repeat("w", wire.MaxNameLen+1) + `","reason":"r"}`:                    "workflowID",
		`{"remediationRequestID":"rr-1"}`:                                                                 "reason",
		`{"remediationRequestID":"rr-1","reason":" \t "}`:                                                 "reason",
		`{"remediationRequestID":"rr-1","reason":"line\nbreak"}`:                                          "reason",
		`{"remediationRequestID":"rr-1","reason":"bell\u0007"}`:                                           "reason",
		`{"remediationRequestID":"rr-1","reason":"right-to-left \u202e override"}`:                        "reason",
		`{"remediationRequestID":"rr-1","reason":"` + strings.Repeat("r", wire.MaxHoldReasonLen+1) + `"}`: "reason",
		`{"remediationRequestID":"rr-1","reason":"r","kind":"remediation"}`:                               "kind",
		`{"remediationRequestID":"rr-1","reason":"r","Reason":"r"}`:                                       "Reason",
		`{"remediationRequestID":"rr-1","reason":"r","reason":"s"}`:                                       "reason",
		`{"remediationRequestID":1,"reason":"r"}`:                                                         "remediationRequestID",
		`["rr-1"]`: "",
		`{"remediationRequestID":"rr-1","reason":"r"} {}`: "",
		``: "",
	} {
		_, err := wire.DecodePlaceHold([]byte(body))
		requireValidationError(t, err, field)
	}
	_, err := wire.DecodePlaceHold([]byte(`{"remediationRequestID":"rr-1","reason":"` + strings.Repeat(" ", wire.MaxHoldBytes) + `x"}`))
	requireValidationError(t, err, "")
}

func TestValidateHoldReason_NamesTheOffendingCharacter(t *testing.T) {
	verr := requireValidationError(t, wire.ValidateHoldReason("reason", "tab\there"), "reason")
	assert.Contains(t, verr.Message, `'\t' at byte 3`)
	requireValidationError(t, wire.ValidateHoldReason("reason", "bad \xff utf-8"), "reason")
	assert.NoError(t, wire.ValidateHoldReason("reason", "non\u00a0breaking and ideographic\u3000spaces are spaces"))
}

func TestHoldIDs(t *testing.T) {
	id := wire.NewHoldID()
	require.True(t, strings.HasPrefix(id, "hold-"), id)
	u, err := uuid.Parse(strings.TrimPrefix(id, "hold-"))
	require.NoError(t, err)
	assert.Equal(t, uuid.Version(7), u.Version())
	assert.Less(t, id, wire.NewHoldID(), "time-ordered")

	keyed := wire.HoldIDForKey("ns/legal-sa", "k1")
	assert.Equal(t, keyed, wire.HoldIDForKey("ns/legal-sa", "k1"))
	u, err = uuid.Parse(strings.TrimPrefix(keyed, "hold-"))
	require.NoError(t, err)
	assert.Equal(t, uuid.Version(8), u.Version())
	for _, other := range []string{wire.HoldIDForKey("ns/other-sa", "k1"), wire.HoldIDForKey("ns/legal-sa", "k2"),
		"hold-" + strings.TrimPrefix(wire.IDForKey("ns/legal-sa", "", "k1"), "audit-")} {
		assert.NotEqual(t, keyed, other)
	}
}
