package receive

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuorum(t *testing.T) {
	for rf, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4} {
		require.Equal(t, want, Quorum(rf), "rf=%d", rf)
	}
}

// TestDecide pins the rules of quorum.go with the examples of its comment, for RF 1, 2, 3 and 5.
// Answers are o (ok), c (conflict), i (invalid), f (failed), in the order they arrive; want is the
// verdict after the last one.
func TestDecide(t *testing.T) {
	cases := []struct {
		rf      int
		answers string
		want    verdict
	}{
		{1, "", verdictPending},
		{1, "o", verdictWritten},
		{1, "c", verdictConflict},
		{1, "i", verdictInvalid},
		{1, "f", verdictUnavailable},

		{2, "o", verdictPending},
		{2, "oo", verdictWritten},
		{2, "c", verdictPending},
		{2, "cc", verdictConflict},
		{2, "oc", verdictConflict}, // rule 5: both acked, one refused some points
		{2, "f", verdictUnavailable},
		{2, "i", verdictInvalid}, // one refusal makes a quorum of 2 unreachable for good
		{2, "of", verdictUnavailable},

		{3, "o", verdictPending},
		{3, "oo", verdictWritten},
		{3, "of", verdictPending},
		{3, "ofo", verdictWritten},
		{3, "ofc", verdictConflict},
		{3, "off", verdictUnavailable},
		{3, "ff", verdictUnavailable},
		{3, "cc", verdictConflict},
		{3, "oc", verdictPending}, // the third decides between written and conflict
		{3, "oco", verdictWritten},
		{3, "occ", verdictConflict},
		{3, "ocf", verdictConflict},
		{3, "ii", verdictInvalid},
		{3, "if", verdictUnavailable},
		{3, "io", verdictPending},
		{3, "ioo", verdictWritten},
		{3, "ioc", verdictConflict},
		{3, "ioi", verdictInvalid},
		{3, "iof", verdictUnavailable},
		{3, "fi", verdictUnavailable},

		{5, "oo", verdictPending},
		{5, "ooo", verdictWritten},
		{5, "ooff", verdictPending},
		{5, "ooffo", verdictWritten},
		{5, "ofcf", verdictPending},
		{5, "ofcff", verdictUnavailable},
		{5, "fff", verdictUnavailable},
		{5, "ccc", verdictConflict},
		{5, "ooccf", verdictConflict},
		{5, "oocc", verdictPending},
		{5, "ooc", verdictPending},
		{5, "oocf", verdictPending},
		{5, "iii", verdictInvalid},
		{5, "iif", verdictUnavailable},
		{5, "ooii", verdictPending},
		{5, "ooiio", verdictWritten},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("rf=%d/%s", tc.rf, tc.answers), func(t *testing.T) {
			require.Equal(t, tc.want.String(), decide(parseTally(tc.answers), tc.rf, Quorum(tc.rf)).String())
		})
	}
}

func parseTally(answers string) tally {
	var t tally
	for _, a := range answers {
		switch a {
		case 'o':
			t.ok++
		case 'c':
			t.conflict++
		case 'i':
			t.invalid++
		case 'f':
			t.failed++
		default:
			panic("unknown answer " + string(a))
		}
	}
	return t
}

// TestDecideProperties checks every tally for RF 1 to 9: a series is always decided once every
// replica answered; a written verdict means a quorum of oks, and success (written or conflict) a
// quorum of acks; and an early verdict is the one full information gives, except that an early
// unavailable may turn out invalid (both fail the request).
func TestDecideProperties(t *testing.T) {
	for rf := 1; rf <= 9; rf++ {
		q := Quorum(rf)
		forEachTally(rf, func(tl tally) {
			v := decide(tl, rf, q)
			answered := int(tl.ok + tl.conflict + tl.invalid + tl.failed)
			if answered == rf {
				require.NotEqual(t, verdictPending, v, "rf=%d %+v", rf, tl)
			}
			switch v {
			case verdictWritten:
				require.GreaterOrEqual(t, int(tl.ok), q)
			case verdictConflict:
				require.GreaterOrEqual(t, int(tl.ok+tl.conflict), q)
				require.Positive(t, tl.conflict)
			case verdictInvalid, verdictUnavailable:
				require.Less(t, rf-int(tl.invalid+tl.failed), q, "a quorum of acks was still reachable: rf=%d %+v", rf, tl)
			}
			if v == verdictPending {
				return
			}
			// Every way the pending replicas may answer.
			forEachCompletion(tl, rf-answered, func(full tally) {
				fv := decide(full, rf, q)
				if v == verdictUnavailable && fv == verdictInvalid {
					return
				}
				require.Equal(t, v.String(), fv.String(), "rf=%d early %+v, full %+v", rf, tl, full)
			})
		})
	}
}

func forEachTally(rf int, fn func(tally)) {
	for ok := 0; ok <= rf; ok++ {
		for c := 0; ok+c <= rf; c++ {
			for i := 0; ok+c+i <= rf; i++ {
				for f := 0; ok+c+i+f <= rf; f++ {
					fn(tally{uint8(ok), uint8(c), uint8(i), uint8(f)})
				}
			}
		}
	}
}

func forEachCompletion(tl tally, pending int, fn func(tally)) {
	forEachTally(pending, func(more tally) {
		if int(more.ok+more.conflict+more.invalid+more.failed) != pending {
			return
		}
		fn(tally{tl.ok + more.ok, tl.conflict + more.conflict, tl.invalid + more.invalid, tl.failed + more.failed})
	})
}

func TestTracker(t *testing.T) {
	var tr tracker
	tr.reset(3, 3)
	require.False(t, tr.done())
	tr.add(0, outcomeOK)
	tr.add(0, outcomeOK)
	tr.add(0, outcomeFailed) // after the verdict: ignored
	tr.add(1, outcomeFailed)
	tr.add(1, outcomeFailed)
	require.False(t, tr.done())
	tr.add(2, outcomeConflict)
	tr.add(2, outcomeOK)
	require.False(t, tr.done())
	tr.add(2, outcomeFailed)
	require.True(t, tr.done())
	require.Equal(t, []verdict{verdictWritten, verdictUnavailable, verdictConflict}, tr.verdicts)
	require.Equal(t, [numVerdicts]int{verdictWritten: 1, verdictConflict: 1, verdictUnavailable: 1}, tr.counts)

	// Reuse with another size and factor.
	tr.reset(2, 1)
	require.Equal(t, [numVerdicts]int{verdictPending: 2}, tr.counts)
	tr.add(0, outcomeInvalid)
	tr.add(1, outcomeOK)
	require.True(t, tr.done())
	require.Equal(t, []verdict{verdictInvalid, verdictWritten}, tr.verdicts)
}
