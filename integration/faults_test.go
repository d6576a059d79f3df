package integration

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// Faults while traffic flows. Each test runs an exchange between dgram
// sockets on virtual hosts, breaks something in the middle of it, and
// checks that it ends in the documented way: the events each socket gets
// (and their order), what the counters say happened to every datagram,
// and that nothing is left behind (no goroutine, no file descriptor) once
// everything is closed. The Loop's Run is bounded by faultTimeout: a hang
// fails the test instead of blocking the suite.
//
// The traffic is bounded and event-driven (a client sends a burst, the
// server echoes every datagram, the client sends the next burst when the
// echoes are back), so that the loop keeps serving I/O: a send callback
// chain that never waits would starve it, in Node as here.

const faultTimeout = 20 * time.Second

// faultChecks fails the test if, once everything the test registered is
// closed, a goroutine started during the test or a file descriptor it
// opened is left. Call it first: cleanups run last-registered first.
func faultChecks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	var before fdTable
	if _, err := os.Stat(procFD); err == nil {
		before = openFDs(t)
	}
	t.Cleanup(func() {
		if before != nil {
			if left := openFDs(t).newSince(before); len(left) > 0 {
				t.Errorf("descriptors left open: %v", left)
			}
		}
		goleak.VerifyNone(t, ignore)
	})
}

// runFaultLoop runs loop until it has nothing left to do, and returns
// what Run returned; a loop still running after faultTimeout fails the
// test.
func runFaultLoop(t *testing.T, ctx context.Context, loop *dgram.Loop) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(faultTimeout):
		t.Fatalf("Loop.Run still running after %v: a hang", faultTimeout)
		return nil
	}
}

// peer is a dgram socket whose events are recorded, in order, on the loop.
type peer struct {
	*dgram.Socket
	name   string
	events []string // "message", "error: <message>", "close"
	msgs   int
	errs   []*dgram.Error
}

func newPeer(t *testing.T, loop *dgram.Loop, h *stack.Host, name string, port int) *peer {
	t.Helper()
	s, err := loop.CreateSocketWith(dgram.SocketOptions{Type: dgram.UDP4, Network: h}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{Socket: s, name: name}
	s.OnMessage(func([]byte, dgram.RemoteInfo) {
		p.msgs++
		if n := len(p.events); n == 0 || p.events[n-1] != "message" {
			p.events = append(p.events, "message") // runs of messages as one
		}
	})
	s.OnError(func(err error) {
		var de *dgram.Error
		if !errors.As(err, &de) {
			t.Errorf("%s: 'error' %v is not a *dgram.Error", name, err)
			return
		}
		p.errs = append(p.errs, de)
		p.events = append(p.events, "error: "+de.Message)
	})
	s.OnClose(func() { p.events = append(p.events, "close") })
	if err := s.Bind(port, "", nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// echo makes p send every datagram back; a failed echo is recorded in
// sendErrs (a send with a callback reports there, not as 'error').
func (p *peer) echo(sendErrs *[]string) {
	p.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
		p.Send(msg, rinfo.Port, rinfo.Address, func(_ int, err error) {
			if err != nil {
				*sendErrs = append(*sendErrs, err.Error())
			}
		})
	})
}

// closeAll closes the peers that are still open.
func closeAll(peers ...*peer) {
	for _, p := range peers {
		p.Close(nil) // ERR_SOCKET_DGRAM_NOT_RUNNING when closed already
	}
}

// bursts makes p send bursts of size datagrams to addr:port, the next
// burst once every echo of the last is back. Each echo, after(n) is called
// first with the number of echoes so far; when it returns true, the next
// burst is left to the test, which calls the returned function.
func (p *peer) bursts(size, port int, addr string, after func(echoes int) (hold bool)) (burst func()) {
	echoes := 0
	burst = func() {
		for range size {
			p.Send(make([]byte, 100), port, addr, nil)
		}
	}
	p.OnMessage(func([]byte, dgram.RemoteInfo) {
		echoes++
		if !after(echoes) && echoes%size == 0 {
			burst()
		}
	})
	p.OnListening(burst)
	return burst
}

func wantEvents(t *testing.T, p *peer, want ...string) {
	t.Helper()
	if !slices.Equal(p.events, want) {
		t.Errorf("%s: events %q, want %q", p.name, p.events, want)
	}
}

// A port taken down in the middle of an exchange loses the datagrams sent
// meanwhile, each counted as a link-down drop at that port (and recorded
// by its tap); UDP sockets notice nothing, as on Linux. Up again, the
// exchange resumes where it was.
func TestFaultLinkDownUp(t *testing.T) {
	faultChecks(t)
	l := newTestLAN(t, 1500, 1500)
	loop := dgram.NewLoop(nil)
	server := newPeer(t, loop, l.hosts[1], "server", 41234)
	client := newPeer(t, loop, l.hosts[0], "client", 0)
	var sendErrs []string
	server.echo(&sendErrs)
	const lost = 10
	var burst func()
	burst = client.bursts(5, 41234, "10.0.0.2", func(echoes int) bool {
		switch echoes {
		case 20:
			l.ports[1].SetLinkUp(false)
			for i := range lost {
				client.Send(make([]byte, 100), 41234, "10.0.0.2", func(_ int, err error) {
					if err != nil {
						t.Errorf("send while the link is down = %v, want no error (UDP)", err)
					}
					if i == lost-1 {
						l.ports[1].SetLinkUp(true)
						burst()
					}
				})
			}
			return true
		case 40:
			closeAll(client, server)
			return true
		}
		return false
	})
	if err := runFaultLoop(t, context.Background(), loop); err != nil {
		t.Fatalf("Run = %v", err)
	}
	wantEvents(t, server, "message", "close")
	wantEvents(t, client, "message", "close")
	if server.msgs != 40 || len(sendErrs) != 0 {
		t.Errorf("server got %d datagrams (send errors %q), want 40", server.msgs, sendErrs)
	}
	if d := l.ports[1].Counters().Drops; d[wire.DropLinkDown] != lost || len(d) != 1 {
		t.Errorf("server port drops %v, want %d link-down", d, lost)
	}
	if n := countFrames(l.rec, capture.All(capture.Link("h1"), capture.Dropped(wire.DropLinkDown))); n != lost {
		t.Errorf("tap recorded %d link-down drops, want %d", n, lost)
	}
}

// A Switch port removed in the middle of an exchange: the host behind it
// is cut off. Frames to it are flooded (its MAC is no longer known) and
// filtered by the other ports; what it sends is dropped as detached. Its
// sockets stay open and close normally.
func TestFaultPortRemoved(t *testing.T) {
	faultChecks(t)
	l := newTestLAN(t, 1500, 1500, 1500)
	loop := dgram.NewLoop(nil)
	server := newPeer(t, loop, l.hosts[1], "server", 41234)
	client := newPeer(t, loop, l.hosts[0], "client", 0)
	var sendErrs []string
	server.echo(&sendErrs)
	const cutOff = 10
	var filteredBefore uint64
	client.bursts(5, 41234, "10.0.0.2", func(echoes int) bool {
		if echoes != 20 {
			return false
		}
		filteredBefore = l.ports[2].Counters().Filtered
		l.ports[1].Remove()
		for range cutOff {
			client.Send(make([]byte, 100), 41234, "10.0.0.2", nil)
		}
		// The server's own send goes nowhere either.
		server.Send([]byte("anyone?"), 9, "10.0.0.1", func(_ int, err error) {
			if err != nil {
				t.Errorf("send from the cut-off host = %v, want no error (UDP)", err)
			}
			closeAll(client, server)
		})
		return true
	})
	if err := runFaultLoop(t, context.Background(), loop); err != nil {
		t.Fatalf("Run = %v", err)
	}
	wantEvents(t, server, "message", "close")
	wantEvents(t, client, "message", "close")
	if server.msgs != 20 || len(sendErrs) != 0 {
		t.Errorf("server got %d datagrams (send errors %q), want the 20 sent before the cut", server.msgs, sendErrs)
	}
	if n := l.ports[2].Counters().Filtered - filteredBefore; n != cutOff {
		t.Errorf("the bystander's port filtered %d flooded frames, want %d", n, cutOff)
	}
	if d := l.ports[1].Counters().Drops; d[wire.DropDetached] != 1 {
		t.Errorf("removed port drops %v, want 1 detached", d)
	}
}

// A host closed (from another goroutine) while its socket is receiving:
// the socket gets one 'error', "recvmsg ENETDOWN", after its last
// 'message', and its sends fail with ENETDOWN; closing it emits 'close'.
// The peer on the other host notices nothing.
func TestFaultHostClosed(t *testing.T) {
	faultChecks(t)
	l := newTestLAN(t, 1500, 1500)
	loop := dgram.NewLoop(nil)
	server := newPeer(t, loop, l.hosts[1], "server", 41234)
	client := newPeer(t, loop, l.hosts[0], "client", 40000)
	var sendErrs []string
	server.echo(&sendErrs)
	server.OnError(func(error) { closeAll(server, client) })
	reached := make(chan struct{})
	client.bursts(8, 41234, "10.0.0.2", func(echoes int) bool {
		if echoes == 100 {
			close(reached)
		}
		return false
	})
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-reached
		l.hosts[1].Close() // while the client's next burst flows
	}()
	if err := runFaultLoop(t, context.Background(), loop); err != nil {
		t.Fatalf("Run = %v", err)
	}
	<-closed
	wantEvents(t, server, "message", "error: recvmsg ENETDOWN", "close")
	wantEvents(t, client, "message", "close")
	if len(server.errs) == 1 {
		if e := server.errs[0]; e.Code != "ENETDOWN" || e.Syscall != "recvmsg" {
			t.Errorf("server 'error' %+v, want code ENETDOWN, syscall recvmsg", e)
		}
	}
	if server.msgs < 100 {
		t.Errorf("server got %d datagrams, want at least 100", server.msgs)
	}
	for _, e := range sendErrs {
		if e != "send ENETDOWN 10.0.0.1:40000" {
			t.Errorf("echo failed with %q, want send ENETDOWN", e)
		}
	}
}

// A socket closed inside its own 'message' listener gets no further
// 'message' (the burst's other datagrams were sent already), and 'close'
// once; calls on it then fail as on a closed socket. Every datagram of
// the burst is accounted for: read, held unread by the closed conn, or
// refused for want of a listener.
func TestFaultCloseInMessage(t *testing.T) {
	faultChecks(t)
	l := newTestLAN(t, 1500, 1500)
	loop := dgram.NewLoop(nil)
	server := newPeer(t, loop, l.hosts[1], "server", 41234)
	client := newPeer(t, loop, l.hosts[0], "client", 0)
	var afterClose error
	const burst = 50
	server.OnMessage(func(msg []byte, rinfo dgram.RemoteInfo) {
		if server.msgs == 1 { // the warm-up: echo it
			server.Send(msg, rinfo.Port, rinfo.Address, nil)
			return
		}
		if err := server.Close(nil); err != nil {
			t.Errorf("Close in 'message' = %v", err)
		}
		afterClose = server.Send([]byte("x"), 9, "10.0.0.1", nil)
		loop.Post(func() { client.Close(nil) })
	})
	// A warm-up exchange first, so that ARP has resolved and every
	// datagram of the burst reaches the server's host within its Send.
	client.OnListening(func() { client.Send([]byte("warm-up"), 41234, "10.0.0.2", nil) })
	client.OnMessage(func([]byte, dgram.RemoteInfo) {
		for range burst {
			client.Send(make([]byte, 100), 41234, "10.0.0.2", nil)
		}
	})
	if err := runFaultLoop(t, context.Background(), loop); err != nil {
		t.Fatalf("Run = %v", err)
	}
	wantEvents(t, server, "message", "close")
	wantEvents(t, client, "message", "close")
	var de *dgram.Error
	if !errors.As(afterClose, &de) || de.Code != "ERR_SOCKET_DGRAM_NOT_RUNNING" {
		t.Errorf("Send after Close = %v, want ERR_SOCKET_DGRAM_NOT_RUNNING", afterClose)
	}
	st := l.hosts[1].Stats().UDP
	if got := uint64(server.msgs) + st.ClosedUnread + st.NoListener + st.BufferFull; server.msgs != 2 || got != burst+1 {
		t.Errorf("server read %d, closed unread %d, no listener %d, buffer full %d: %d of %d datagrams accounted for (want 2 read)",
			server.msgs, st.ClosedUnread, st.NoListener, st.BufferFull, got, burst+1)
		t.Logf("ledgers: client %v, server %v", l.hosts[0].Stats().Drops, l.hosts[1].Stats().Drops)
	}
}

// A Loop whose context is cancelled while its socket is receiving closes
// it ('close', no 'error'), runs what is queued and returns
// context.Canceled. The sender, on its own Loop, notices nothing.
func TestFaultLoopCancelled(t *testing.T) {
	faultChecks(t)
	l := newTestLAN(t, 1500, 1500)
	serverLoop, clientLoop := dgram.NewLoop(nil), dgram.NewLoop(nil)
	server := newPeer(t, serverLoop, l.hosts[1], "server", 41234)
	client := newPeer(t, clientLoop, l.hosts[0], "client", 0)
	var sendErrs []string
	server.echo(&sendErrs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelOnce bool
	server.OnMessage(func([]byte, dgram.RemoteInfo) {
		if server.msgs == 100 && !cancelOnce {
			cancelOnce = true
			go cancel() // from elsewhere, while traffic flows
		}
	})
	client.bursts(8, 41234, "10.0.0.2", func(int) bool { return false })

	// The client starts once the server listens (its bind runs on its loop).
	listening := make(chan struct{})
	server.OnListening(func() { close(listening) })
	clientDone := make(chan error, 1)
	go func() {
		<-listening
		ctx, cancel := context.WithTimeout(context.Background(), faultTimeout)
		defer cancel()
		clientDone <- clientLoop.Run(ctx)
	}()
	if err := runFaultLoop(t, ctx, serverLoop); !errors.Is(err, context.Canceled) {
		t.Errorf("server Run = %v, want context.Canceled", err)
	}
	wantEvents(t, server, "message", "close")
	// The client waits for echoes that will not come: close it.
	clientLoop.Post(func() { client.Close(nil) })
	if err := <-clientDone; err != nil {
		t.Errorf("client Run = %v", err)
	}
	wantEvents(t, client, "message", "close")
	if len(sendErrs) != 0 {
		t.Errorf("echo errors %q", sendErrs)
	}
}

// countFrames counts the recorded frames m matches.
func countFrames(r *capture.Recorder, m capture.Matcher) int {
	n := 0
	for _, f := range r.Frames() {
		if m.Match(f) {
			n++
		}
	}
	return n
}
