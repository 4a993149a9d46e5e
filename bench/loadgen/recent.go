package loadgen

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/kubernaut/datastorage/wire"
)

// Recent holds each controller's most recently acknowledged remediation
// record, for a reader that reads the history back while the load runs and
// draws its filters from what the load writes. It is safe for concurrent
// use; a controller stores one pointer per acknowledgement.
type Recent struct {
	slots []atomic.Pointer[wire.RemediationAudit]
}

// NewRecent has a slot for each of controllers controllers.
func NewRecent(controllers int) *Recent {
	return &Recent{slots: make([]atomic.Pointer[wire.RemediationAudit], controllers)}
}

// Put makes a controller's latest acknowledged remediation record a; a
// must not change afterwards. Controllers beyond the slots are ignored.
func (r *Recent) Put(ctrl int, a *wire.RemediationAudit) {
	if ctrl >= 0 && ctrl < len(r.slots) {
		r.slots[ctrl].Store(a)
	}
}

// Pick returns a record for which ok holds, from a slot drawn with rng
// (the next slots in turn when that one has none); nil when no slot has
// one yet.
func (r *Recent) Pick(rng *rand.Rand, ok func(*wire.RemediationAudit) bool) *wire.RemediationAudit {
	n := len(r.slots)
	if n == 0 {
		return nil
	}
	start := rng.IntN(n)
	for i := range n {
		if a := r.slots[(start+i)%n].Load(); a != nil && ok(a) {
			return a
		}
	}
	return nil
}
