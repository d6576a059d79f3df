package dgram

import (
	"context"
	"testing"
)

// The loop watches one channel per distinct Context, and a long-lived
// Context shared by short-lived sockets keeps none of them once closed.
func TestSignalGroups(t *testing.T) {
	l := NewLoop(System())
	shared, cancel := context.WithCancel(context.Background())
	defer cancel()
	own, cancelOwn := context.WithCancel(context.Background())
	defer cancelOwn()
	var socks []*Socket
	for range 1000 {
		s, err := l.CreateSocketWith(SocketOptions{Type: UDP4, Context: shared}, nil)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, s)
	}
	if _, err := l.CreateSocketWith(SocketOptions{Type: UDP4, Context: own}, nil); err != nil {
		t.Fatal(err)
	}
	// A Context that can never be done is not watched at all.
	bg, err := l.CreateSocketWith(SocketOptions{Type: UDP4, Context: context.Background()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bg.Close(nil)
	l.mu.Lock()
	groups, members := len(l.signals), len(l.signalByCh[shared.Done()].socks)
	l.mu.Unlock()
	if groups != 2 || members != 1000 {
		t.Fatalf("%d groups, %d sockets in the shared one; want 2 and 1000", groups, members)
	}
	for _, s := range socks {
		s.Close(nil)
	}
	l.mu.Lock()
	groups = len(l.signals)
	_, sharedLeft := l.signalByCh[shared.Done()]
	l.mu.Unlock()
	if groups != 1 || sharedLeft {
		t.Fatalf("after closing the shared Context's sockets: %d groups (shared still there: %v), want 1", groups, sharedLeft)
	}
	cancelOwn()
	cancel()
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.signals) != 0 || len(l.sockets) != 1 {
		t.Fatalf("after the cancels: %d groups, %d sockets open; want 0 and 1 (the one without a signal)", len(l.signals), len(l.sockets))
	}
}
