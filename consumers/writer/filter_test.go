package writer

import (
	"fmt"
	"testing"

	"github.com/telephony/creditledger/consumers/intake"
)

// TestUsageFilterHasNoFalseNegatives: every key added is reported as maybe present; keys
// never added are mostly reported absent.
func TestUsageFilterHasNoFalseNegatives(t *testing.T) {
	f := newUsageFilter(1 << 20)
	const n = 100_000
	for i := range n {
		f.add(intake.UsageKey{AccountID: fmt.Sprintf("acct-%d", i%1000), UsageID: fmt.Sprintf("u-%d", i)})
	}
	for i := range n {
		if k := (intake.UsageKey{AccountID: fmt.Sprintf("acct-%d", i%1000), UsageID: fmt.Sprintf("u-%d", i)}); !f.mayContain(k) {
			t.Fatalf("%v was added but the filter says absent", k)
		}
	}
	positives := 0
	for i := range n {
		if f.mayContain(intake.UsageKey{AccountID: fmt.Sprintf("acct-%d", i%1000), UsageID: fmt.Sprintf("new-%d", i)}) {
			positives++
		}
	}
	// 4 probes, 10.5 bits per key: about 1.2% expected.
	if rate := float64(positives) / n; rate > 0.03 {
		t.Errorf("false-positive rate %.3f", rate)
	}
	if newUsageFilter(-1).mayContain(intake.UsageKey{AccountID: "a", UsageID: "b"}) != true {
		t.Error("a disabled filter must say maybe")
	}
}
