package integration

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/wire"
)

// consTolerateKnownGaps, when true, makes TestConservation ignore the
// issues the known gaps cause (consKnownGaps) and fail only on new ones,
// for a tree that must pass while those gaps are open; their
// reproductions in conservation_repro_test.go still fail unless skipped.
const consTolerateKnownGaps = false

// TestConservation is the conservation test: for seeded random scenarios
// (cons_gen_test.go), every datagram sent has exactly one outcome per
// socket it was meant for, delivered (as often as the links duplicated
// it) or dropped with a counted reason, and every link end's frame
// counters balance (cons_check_test.go). 200 seeds run in `go test`;
// DGRAMLAB_SOAK=1 runs 20,000 (make soak), DGRAMLAB_SEEDS=N the first N.
// DGRAMLAB_SEED=N runs seed N alone, with every issue it finds. The
// summary of a failing run counts issues by kind, with a seed and the
// scenario of each, and names the reproduction of the known gap behind it
// (conservation_repro_test.go), or says NEW.
func TestConservation(t *testing.T) {
	first, n := uint64(1), uint64(200)
	if os.Getenv("DGRAMLAB_SOAK") != "" {
		n = 20000
	}
	if v := os.Getenv("DGRAMLAB_SEEDS"); v != "" {
		var err error
		if n, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("DGRAMLAB_SEEDS=%q: %v", v, err)
		}
	}
	one := false
	if v := os.Getenv("DGRAMLAB_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("DGRAMLAB_SEED=%q: %v", v, err)
		}
		first, n, one = s, 1, true
	}
	start := time.Now()
	sum := newConsSummary()
	cov := &consCoverage{link: map[wire.DropReason]int{}, host: map[wire.DropReason]int{}}
	failed := 0
	for seed := first; seed < first+n; seed++ {
		s := genScenario(seed)
		rec := runScenario(t, s)
		issues := checkRun(s, rec)
		if consTolerateKnownGaps && !one {
			issues = slices.DeleteFunc(issues, func(is consIssue) bool { return knownGap(is.cat) != "" })
		}
		cov.add(rec)
		if len(issues) == 0 {
			continue
		}
		failed++
		sum.add(seed, s.String(), issues)
		if one {
			t.Logf("scenario: %s", s)
			for _, is := range issues {
				t.Errorf("%s: %s", is.cat, is.msg)
			}
		}
	}
	t.Logf("%d seeds from %d in %v; %s", n, first, time.Since(start).Round(time.Millisecond), cov)
	if failed > 0 && !one {
		t.Errorf("%d of %d seeds lose or double-count datagrams or frames (rerun one with DGRAMLAB_SEED=N):\n%s", failed, n, sum)
	}
}

// TestConservationDebug dumps one seed's record (DGRAMLAB_DEBUG=N).
func TestConservationDebug(t *testing.T) {
	v := os.Getenv("DGRAMLAB_DEBUG")
	if v == "" {
		t.Skip("set DGRAMLAB_DEBUG=seed to dump a scenario's record")
	}
	seed, _ := strconv.ParseUint(v, 10, 64)
	s := genScenario(seed)
	rec := runScenario(t, s)
	t.Logf("scenario: %s", s)
	for i, e := range rec.ends {
		t.Logf("end %d %s host %d nic %d seg %d counters %+v", i, e.name, e.host, e.nic, e.seg, rec.finalCounters[i])
	}
	for _, ev := range rec.taps {
		c := &consChecker{r: rec}
		info, _ := parseIPv4(c.ipPart(ev.end, ev.data))
		id, _ := payloadID(c.ipPart(ev.end, ev.data))
		t.Logf("tap %v %s %v drop=%v len=%d eth=% x ip=%v->%v id=%d frag=%v off=%d dg=%v", ev.at, rec.ends[ev.end].name, ev.dir, ev.drop, len(ev.data), ev.data[:min(14, len(ev.data))], info.src, info.dst, info.id, info.frag, info.offset, id)
	}
	for _, d := range rec.linkDrops {
		t.Logf("linkdrop %v %s %v %v len=%d", d.at, rec.ends[d.end].name, d.dir, d.reason, len(d.data))
	}
	for _, d := range rec.hostDrops {
		info, _ := parseIPv4(d.data)
		t.Logf("hostdrop %v h%d nic%d %v %v len=%d %v->%v id=%d frag=%v off=%d ip=% x", d.at, d.host, d.nic, d.dir, d.reason, len(d.data), info.src, info.dst, info.id, info.frag, info.offset, d.data[:min(28, len(d.data))])
	}
	for _, sd := range rec.sent {
		var what string
		if sd.send >= 0 {
			d := s.sends[sd.send]
			what = fmt.Sprintf("%s h%d->%v %dB", sendKindNames[d.kind], s.socks[d.sock].host, d.dst, d.size)
		}
		t.Logf("sent %v %v send=%d inj=%d err=%v %s", sd.at, sd.id, sd.send, sd.inj, sd.err, what)
	}
	for _, d := range rec.delivered {
		t.Logf("delivered %v sock %d %v", d.at, d.sock, d.id)
	}
	for h, st := range rec.finalStats {
		t.Logf("h%d stats %+v (settled: %v)", h, st, rec.hostStats[h].Drops)
	}
	t.Logf("closed %v", rec.closedAt)
	for i, k := range s.socks {
		t.Logf("sock %d %+v", i, k)
	}
	for _, is := range checkRun(s, rec) {
		t.Logf("ISSUE %s: %s", is.cat, is.msg)
	}
}

// consCoverage counts what the scenarios did, so that a run shows it
// exercised every kind of drop.
type consCoverage struct {
	sent, failed, delivered, frames int
	link, host                      map[wire.DropReason]int
}

func (c *consCoverage) add(r *consRecord) {
	for _, sd := range r.sent {
		if sd.err != nil {
			c.failed++
		} else {
			c.sent++
		}
	}
	c.delivered += len(r.delivered)
	c.frames += len(r.taps)
	for _, d := range r.linkDrops {
		c.link[d.reason]++
	}
	for _, d := range r.hostDrops {
		c.host[d.reason]++
	}
}

func (c *consCoverage) String() string {
	return fmt.Sprintf("%d datagrams and frames sent (%d sends refused), %d deliveries, %d tap records; link drops %v; host drops %v",
		c.sent, c.failed, c.delivered, c.frames, c.link, c.host)
}

// TestConservationCheckerCatches proves the checker is not vacuous: a run's
// record with one delivery, drop or frame taken away or doubled must show
// more issues than the record itself.
func TestConservationCheckerCatches(t *testing.T) {
	const seed = 5
	s := genScenario(seed)
	rec := runScenario(t, s)
	base := len(checkRun(s, rec))
	hostDrop := -1
	for i, d := range rec.hostDrops {
		if d.reason == wire.DropNoListener || d.reason == wire.DropBufferFull {
			hostDrop = i
			break
		}
	}
	linkDrop := -1
	for i, d := range rec.linkDrops {
		if d.reason == wire.DropLoss || d.reason == wire.DropMTU {
			linkDrop = i
			break
		}
	}
	if len(rec.delivered) == 0 || hostDrop < 0 || linkDrop < 0 {
		t.Fatalf("seed %d: %d deliveries, host drop %d, link drop %d: pick a seed that has all three", seed, len(rec.delivered), hostDrop, linkDrop)
	}
	mutations := []struct {
		name string
		fn   func(r *consRecord)
	}{
		{"a delivery lost", func(r *consRecord) { r.delivered = r.delivered[1:] }},
		{"a delivery doubled", func(r *consRecord) { r.delivered = append(r.delivered, r.delivered[0]) }},
		{"a host drop not reported", func(r *consRecord) { r.hostDrops = slices.Delete(r.hostDrops, hostDrop, hostDrop+1) }},
		{"a host drop reported twice", func(r *consRecord) { r.hostDrops = append(r.hostDrops, r.hostDrops[hostDrop]) }},
		{"a link drop not reported", func(r *consRecord) { r.linkDrops = slices.Delete(r.linkDrops, linkDrop, linkDrop+1) }},
		{"a link drop reported twice", func(r *consRecord) { r.linkDrops = append(r.linkDrops, r.linkDrops[linkDrop]) }},
		{"an arrival lost", func(r *consRecord) {
			for i, ev := range r.taps {
				if ev.dir == wire.Inbound && ev.drop == 0 && len(ev.data) > 100 {
					r.taps = slices.Delete(r.taps, i, i+1)
					return
				}
			}
		}},
	}
	for _, m := range mutations {
		r := &consRecord{
			start: rec.start, ends: rec.ends, sent: rec.sent, closedAt: rec.closedAt, injRx: rec.injRx,
			counters: rec.counters, hostStats: rec.hostStats, finalCounters: rec.finalCounters, finalStats: rec.finalStats,
			delivered: slices.Clone(rec.delivered), hostDrops: slices.Clone(rec.hostDrops),
			linkDrops: slices.Clone(rec.linkDrops), taps: slices.Clone(rec.taps),
		}
		m.fn(r)
		if got := len(checkRun(s, r)); got <= base {
			t.Errorf("%s: the checker finds %d issues, as many as in the record itself (%d)", m.name, got, base)
		}
	}
}
