package authz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/kubernaut/datastorage/central/auth"
	"github.com/kubernaut/datastorage/wire"
)

// Action is something a caller may be allowed to do.
type Action string

const (
	WriteRemediation Action = "write:remediation"
	WriteWorkflow    Action = "write:workflow"
	ReadSimilar      Action = "read:similar"
	// ReadAudit reads stored audits back: queries, one record, timelines.
	ReadAudit Action = "read:audit"
	// ExportAudit streams a signed export of every audit in a time range.
	ExportAudit Action = "export:audit"
	// HoldAudit places, lists, reads and releases legal holds, which keep
	// the audits they name from retention.
	HoldAudit Action = "hold:audit"
	// VerifyLedger runs the ledger's verification (GET
	// /api/v1/ledger/verify): an administrator's action, a full scan.
	VerifyLedger Action = "verify:ledger"
)

// Actions lists every known action.
var Actions = []Action{WriteRemediation, WriteWorkflow, ReadSimilar, ReadAudit, ExportAudit, HoldAudit, VerifyLedger}

func (a Action) known() bool { return slices.Contains(Actions, a) }

// ActionForKind is the action that writing a record of kind k needs; "" (which
// nobody is allowed) for an unknown kind.
func ActionForKind(k wire.Kind) Action {
	switch k {
	case wire.KindRemediation:
		return WriteRemediation
	case wire.KindWorkflow:
		return WriteWorkflow
	}
	return ""
}

// The spec's service accounts (integration-points.md).
const (
	GatewaySA            = "gateway-sa"
	AIAnalysisSA         = "aianalysis-controller-sa"
	KubernetesExecutorSA = "kubernetes-executor-sa"
	WorkflowExecutionSA  = "workflowexecution-controller-sa"
)

// Authorizer decides whether an identity may perform an action. The central
// consumes it; AllowList and SAR implement it.
type Authorizer interface {
	// Authorize reports whether id may perform act. An error means the
	// question could not be answered (it wraps ErrUnavailable): the caller
	// must refuse, and may retry; it never means "allowed".
	Authorize(ctx context.Context, id auth.Identity, act Action) (bool, error)
	// String is a one-line summary for the start-up log.
	String() string
}

var (
	_ Authorizer = (*AllowList)(nil)
	_ Authorizer = (*SAR)(nil)
)

// ErrUnavailable means an authorizer could not decide: the
// SubjectAccessReview API was unreachable, timed out, answered 5xx or
// refused the central's own request. The HTTP edge answers 503 with
// Retry-After; the request is never allowed, and the answer never cached.
var ErrUnavailable = errors.New("authz: authorization unavailable")

// Check asks a whether id may perform act. Any error comes back wrapping
// ErrUnavailable, with false: an authorizer that cannot decide never allows.
func Check(ctx context.Context, a Authorizer, id auth.Identity, act Action) (bool, error) {
	ok, err := a.Authorize(ctx, id, act)
	switch {
	case err == nil:
		return ok, nil
	case errors.Is(err, ErrUnavailable):
		return false, err
	default:
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
}

// Granted lists the actions id may perform, in the order of Actions (nil
// for none), or the first error (see Check).
func Granted(ctx context.Context, a Authorizer, id auth.Identity) ([]Action, error) {
	var acts []Action
	for _, act := range Actions {
		ok, err := Check(ctx, a, id, act)
		if err != nil {
			return nil, err
		}
		if ok {
			acts = append(acts, act)
		}
	}
	return acts, nil
}

// MayWrite lists the audit kinds id may write (nil for none), or the first
// error (see Check): a caller that may write none is refused before its
// request body is read.
func MayWrite(ctx context.Context, a Authorizer, id auth.Identity) ([]wire.Kind, error) {
	var kinds []wire.Kind
	for _, k := range []wire.Kind{wire.KindRemediation, wire.KindWorkflow} {
		ok, err := Check(ctx, a, id, ActionForKind(k))
		if err != nil {
			return nil, err
		}
		if ok {
			kinds = append(kinds, k)
		}
	}
	return kinds, nil
}

// AllowList is an allow-list of service accounts and their actions. It is
// immutable and safe for concurrent use.
type AllowList struct {
	allowed map[string]map[Action]bool // "namespace/name" → actions
	source  string                     // "default" or the file it came from
}

// Default is the spec's allow-list in namespace: gateway-sa,
// aianalysis-controller-sa and kubernetes-executor-sa may WriteRemediation;
// workflowexecution-controller-sa may WriteWorkflow; aianalysis-controller-sa
// may ReadSimilar and ReadAudit. Nobody may ExportAudit, HoldAudit or VerifyLedger until
// an allow-list file grants it. An empty namespace gives an allow-list that matches no
// identity (cmd requires --namespace).
func Default(namespace string) *AllowList {
	a := &AllowList{allowed: make(map[string]map[Action]bool), source: "default"}
	if namespace == "" {
		return a
	}
	grant := func(sa string, acts ...Action) {
		k := namespace + "/" + sa
		if a.allowed[k] == nil {
			a.allowed[k] = make(map[Action]bool)
		}
		for _, act := range acts {
			a.allowed[k][act] = true
		}
	}
	grant(GatewaySA, WriteRemediation)
	grant(AIAnalysisSA, WriteRemediation, ReadSimilar, ReadAudit)
	grant(KubernetesExecutorSA, WriteRemediation)
	grant(WorkflowExecutionSA, WriteWorkflow)
	return a
}

// File is the allow-list file's schema:
//
//	serviceAccounts:
//	- name: gateway-sa
//	  namespace: kubernaut-system
//	  actions: [write:remediation]
type File struct {
	ServiceAccounts []FileEntry `json:"serviceAccounts"`
}

// FileEntry grants actions to one service account.
type FileEntry struct {
	Name      string   `json:"name"`
	Namespace string   `json:"namespace"`
	Actions   []Action `json:"actions"`
}

// LoadFile reads an allow-list file that replaces the default; see Parse.
func LoadFile(path string) (*AllowList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	a, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("authz: %s: %w", path, err)
	}
	a.source = path
	return a, nil
}

// Parse reads an allow-list in the File schema, strictly: an unknown or
// duplicated field, an unknown action, an invalid or repeated service account,
// an entry without actions, or an empty list is an error.
func Parse(data []byte) (*AllowList, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("allow-list is empty: list at least one service account, or drop the file to use the default")
	}
	if err := checkFields(data); err != nil {
		return nil, err
	}
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("parse allow-list: %w", err)
	}
	if len(f.ServiceAccounts) == 0 {
		return nil, errors.New("allow-list has no serviceAccounts: list at least one, or drop the file to use the default")
	}
	a := &AllowList{allowed: make(map[string]map[Action]bool, len(f.ServiceAccounts)), source: "inline"}
	for i, e := range f.ServiceAccounts {
		where := fmt.Sprintf("serviceAccounts[%d]", i)
		if msgs := validation.IsDNS1123Subdomain(e.Name); len(msgs) > 0 {
			return nil, fmt.Errorf("%s.name %q: %s", where, e.Name, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsDNS1123Label(e.Namespace); len(msgs) > 0 {
			return nil, fmt.Errorf("%s.namespace %q: %s", where, e.Namespace, strings.Join(msgs, "; "))
		}
		if len(e.Actions) == 0 {
			return nil, fmt.Errorf("%s (%s/%s): no actions", where, e.Namespace, e.Name)
		}
		k := e.Namespace + "/" + e.Name
		if _, dup := a.allowed[k]; dup {
			return nil, fmt.Errorf("%s: %s is listed twice", where, k)
		}
		acts := make(map[Action]bool, len(e.Actions))
		for j, act := range e.Actions {
			if !act.known() {
				return nil, fmt.Errorf("%s.actions[%d]: unknown action %q (known: %s)", where, j, act, joinActions(Actions))
			}
			acts[act] = true
		}
		a.allowed[k] = acts
	}
	return a, nil
}

// Allowed reports whether id may perform act. Identities that are not
// service accounts are never allowed.
func (a *AllowList) Allowed(id auth.Identity, act Action) bool {
	if !id.IsServiceAccount() {
		return false
	}
	return a.allowed[id.Namespace+"/"+id.ServiceAccount][act]
}

// Authorize is Allowed; an allow-list always decides.
func (a *AllowList) Authorize(_ context.Context, id auth.Identity, act Action) (bool, error) {
	return a.Allowed(id, act), nil
}

// String is a one-line summary for the start-up log, e.g.
// "authz (default): ns/gateway-sa=[write:remediation] ...".
func (a *AllowList) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "authz (%s): %d service accounts", a.source, len(a.allowed))
	for _, k := range slices.Sorted(maps.Keys(a.allowed)) {
		var acts []Action
		for _, act := range Actions {
			if a.allowed[k][act] {
				acts = append(acts, act)
			}
		}
		fmt.Fprintf(&b, " %s=[%s]", k, joinActions(acts))
	}
	return b.String()
}

func joinActions(acts []Action) string {
	s := make([]string, len(acts))
	for i, a := range acts {
		s[i] = string(a)
	}
	return strings.Join(s, ",")
}

// checkFields reports the first unknown field with its line, which
// sigs.k8s.io/yaml's strict mode names without one. Everything else (types,
// duplicate keys, syntax) is left to yaml.UnmarshalStrict.
func checkFields(data []byte) error {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil // UnmarshalStrict reports it
	}
	top := doc.Content[0]
	if err := unknownKey(top, "", "serviceAccounts"); err != nil {
		return err
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "serviceAccounts" || top.Content[i+1].Kind != yamlv3.SequenceNode {
			continue
		}
		for j, item := range top.Content[i+1].Content {
			if err := unknownKey(item, fmt.Sprintf("serviceAccounts[%d]", j), "name", "namespace", "actions"); err != nil {
				return err
			}
		}
	}
	return nil
}

func unknownKey(n *yamlv3.Node, where string, known ...string) error {
	if n.Kind != yamlv3.MappingNode {
		return nil
	}
	for i := 0; i < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			field := k.Value
			if where != "" {
				field = where + "." + field
			}
			return fmt.Errorf("line %d: unknown field %q (known: %s)", k.Line, field, strings.Join(known, ", "))
		}
	}
	return nil
}
