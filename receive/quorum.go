package receive

// The write quorum, per series. This file has no I/O: the router feeds it the outcome of each replica
// of each series and asks whether the series is decided.
//
// # Rules
//
// A series is written to its RF owners (replicas). Quorum q = floor(RF/2)+1 (RF 1→1, 2→2, 3→2, 4→3,
// 5→3; Thanos uses 1 for RF=2, Weir asks both replicas). Each replica answers one of:
//
//	ok        the replica acked (its WAL has the series' points); rejected exemplars do not count,
//	          exemplars are best effort
//	conflict  the replica acked but refused some samples or histograms of the series for good (out of
//	          order, duplicate with another value, too old, invalid histogram); the rest is in its WAL
//	invalid   the replica refused the whole write as the client's fault (gRPC InvalidArgument); nothing
//	          was written there. The router validated the request, so this means a bug or a version skew.
//	failed    the replica failed for a server-side reason (unavailable, timeout, transport error, internal
//	          error, endpoint known down, in-flight bound exceeded); nothing was written there
//
// With ok, conflict, invalid, failed the counts so far and pending = RF − their sum, the verdict is the
// first rule that applies, evaluated after every answer:
//
//	1. ok ≥ q                                        → written     (every point is in a quorum of WALs)
//	2. conflict ≥ q                                  → conflict    (400 partial write, rejections reported)
//	3. invalid > RF − q                              → invalid     (400; no retry can reach a quorum)
//	4. invalid + failed > RF − q                     → unavailable (503; a quorum of acks is out of reach
//	                                                                now, a retry may reach it)
//	5. ok + conflict ≥ q, ok + pending < q,
//	   conflict + pending < q                        → conflict    (acked by a quorum, refused in part by
//	                                                                some; nothing pending can change that)
//	6. otherwise                                     → pending     (wait for more answers)
//
// Examples, RF=3 (q=2): ok,ok → written after two answers (the verdict; whether the answer to the
// client also waits for the third is the router's wait policy, RouterConfig.Wait). conflict,conflict
// → conflict. failed,failed → unavailable. ok,failed → pending until the third: ok → written, conflict
// → conflict (rule 5), failed → unavailable. ok,conflict,failed → conflict. invalid,invalid →
// invalid. invalid,failed → unavailable. RF=1: the one answer decides. RF=2: one failure is
// unavailable at once (rule 4), as both replicas must ack.
//
// Every series is decided after at most RF answers, since with pending = 0 rules 1–5 cover every
// tally: either invalid + failed > RF − q, or ok + conflict ≥ q and then rule 1, 2 or 5 applies.
//
// How the router turns verdicts into one answer (router.go, Router.Write): any unavailable series →
// ClassUnavailable error (503, the sender retries the whole request; points that did land are then
// sent again with the same values, which the TSDB accepts as duplicates). Else any invalid series →
// ClassInvalid error (400). Else nil error, with the rejections of conflict series in the stats (the
// handler answers 400 partial write when any sample or histogram is among them, 2xx otherwise).

// Quorum is the number of replicas that must ack a series before a write succeeds: floor(rf/2)+1.
func Quorum(rf int) int { return rf/2 + 1 }

// maxReplicationFactor bounds the replication factor so that a tally fits in bytes.
const maxReplicationFactor = 255

// outcome is what one replica did with one series.
type outcome uint8

const (
	outcomeOK outcome = iota
	outcomeConflict
	outcomeInvalid
	outcomeFailed
)

// verdict is the decision for one series.
type verdict uint8

const (
	verdictPending verdict = iota
	verdictWritten
	verdictConflict
	verdictInvalid
	verdictUnavailable
	numVerdicts
)

func (v verdict) String() string {
	return [...]string{"pending", "written", "conflict", "invalid", "unavailable"}[v]
}

// tally counts the answers of one series' replicas.
type tally struct{ ok, conflict, invalid, failed uint8 }

// decide applies the rules above to t, for replication factor rf and quorum q.
func decide(t tally, rf, q int) verdict {
	ok, conflict, invalid, failed := int(t.ok), int(t.conflict), int(t.invalid), int(t.failed)
	pending := rf - ok - conflict - invalid - failed
	switch {
	case ok >= q:
		return verdictWritten
	case conflict >= q:
		return verdictConflict
	case invalid > rf-q:
		return verdictInvalid
	case invalid+failed > rf-q:
		return verdictUnavailable
	case ok+conflict >= q && ok+pending < q && conflict+pending < q:
		return verdictConflict
	}
	return verdictPending
}

// tracker follows the quorum of every series of one request. It is not safe for concurrent use: the
// router feeds it from one goroutine.
type tracker struct {
	rf, q     int
	tallies   []tally
	verdicts  []verdict
	undecided int
	counts    [numVerdicts]int // series per verdict
}

// reset prepares t for n series written with replication factor rf, reusing its memory.
func (t *tracker) reset(n, rf int) {
	t.rf, t.q = rf, Quorum(rf)
	t.tallies = resize(t.tallies, n)
	t.verdicts = resize(t.verdicts, n)
	clear(t.tallies)
	clear(t.verdicts)
	t.undecided = n
	t.counts = [numVerdicts]int{verdictPending: n}
}

// add records the outcome of one replica of series s. Answers for a decided series are ignored (a
// series is decided once and for all).
func (t *tracker) add(s int, o outcome) {
	if t.verdicts[s] != verdictPending {
		return
	}
	tl := &t.tallies[s]
	switch o {
	case outcomeOK:
		tl.ok++
	case outcomeConflict:
		tl.conflict++
	case outcomeInvalid:
		tl.invalid++
	default:
		tl.failed++
	}
	if v := decide(*tl, t.rf, t.q); v != verdictPending {
		t.verdicts[s] = v
		t.undecided--
		t.counts[verdictPending]--
		t.counts[v]++
	}
}

// done reports whether every series is decided.
func (t *tracker) done() bool { return t.undecided == 0 }

// resize returns s with length n, reusing its capacity.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
