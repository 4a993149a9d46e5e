package authz

import "slices"

// APIGroup is the API group of the resources that SubjectAccessReviews name
// for the central's actions. No CustomResourceDefinition serves it: RBAC
// rules may name any group, resource and verb, and the API server checks a
// SubjectAccessReview against the rules alone.
const APIGroup = "datastorage.kubernaut.ai"

// Rule is an action in Kubernetes RBAC terms: the verb on a resource (and
// subresource) of APIGroup that a SubjectAccessReview asks about, and the
// ClusterRole that deploy/central/components/authz-sar ships to grant it.
type Rule struct {
	Action      Action
	Verb        string
	Resource    string
	Subresource string // "" for none
	ClusterRole string
}

// RBACResource is the resource as an RBAC rule names it:
// "resource/subresource", or the resource alone.
func (r Rule) RBACResource() string {
	if r.Subresource == "" {
		return r.Resource
	}
	return r.Resource + "/" + r.Subresource
}

// Rules is the mapping of every action, in the order of Actions. The
// README's table, the shipped ClusterRoles and the tests are all checked
// against it.
var Rules = []Rule{
	{Action: WriteRemediation, Verb: "create", Resource: "auditevents", Subresource: "remediation", ClusterRole: "datastorage-remediation-writer"},
	{Action: WriteWorkflow, Verb: "create", Resource: "auditevents", Subresource: "workflow", ClusterRole: "datastorage-workflow-writer"},
	{Action: ReadSimilar, Verb: "list", Resource: "auditevents", Subresource: "similar", ClusterRole: "datastorage-similar-reader"},
	{Action: ReadAudit, Verb: "list", Resource: "auditevents", ClusterRole: "datastorage-reader"},
	{Action: ExportAudit, Verb: "export", Resource: "auditevents", ClusterRole: "datastorage-exporter"},
	{Action: HoldAudit, Verb: "create", Resource: "legalholds", ClusterRole: "datastorage-legal-hold-manager"},
	{Action: VerifyLedger, Verb: "get", Resource: "ledger", Subresource: "verify", ClusterRole: "datastorage-ledger-verifier"},
}

// RuleFor is act's rule; false for an unknown action.
func RuleFor(act Action) (Rule, bool) {
	i := slices.IndexFunc(Rules, func(r Rule) bool { return r.Action == act })
	if i < 0 {
		return Rule{}, false
	}
	return Rules[i], true
}
