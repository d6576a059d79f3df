package dgram_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
)

// fuzzPorts, fuzzAddrs, ... are the argument values the fuzzer picks from
// by index: valid, edge and invalid ones.
var (
	fuzzPorts  = []int{0, 7000, 7001, -1, 65535, 65536, 1 << 40}
	fuzzAddrs  = []string{"", "127.0.0.1", "::1", "0.0.0.0", "::", "localhost", "peer.test", "nonexistent.invalid", "10.9.9.9", "not an ip", "::ffff:127.0.0.1", "255.255.255.255", "fe80::1%lo"}
	fuzzGroups = []string{"224.0.0.114", "ff02::114", "127.0.0.1", "", "bogus", "239.1.2.3"}
	fuzzInts   = []int{0, 1, 64, 255, 256, -1, 1 << 20, 1 << 33}
)

// fuzzTrace records what happened to the sockets of one fuzz input and
// checks the invariants as events arrive (on the loop goroutine).
type fuzzTrace struct {
	t      *testing.T
	log    []string
	state  [2]struct{ listening, closed bool }
	called map[int]bool
	nextCB int
}

func (tr *fuzzTrace) fail(format string, args ...any) {
	tr.t.Helper()
	tr.t.Fatalf("%s\ntrace:\n  %s", fmt.Sprintf(format, args...), strings.Join(tr.log, "\n  "))
}

func (tr *fuzzTrace) event(i int, ev string) {
	tr.t.Helper()
	tr.log = append(tr.log, fmt.Sprintf("s%d %s", i, ev))
	st := &tr.state[i]
	if st.closed {
		tr.fail("s%d: %q after 'close'", i, ev)
	}
	switch ev {
	case "listening":
		if st.listening {
			tr.fail("s%d: second 'listening'", i)
		}
		st.listening = true
	case "message", "connect":
		if !st.listening {
			tr.fail("s%d: %q before 'listening'", i, ev)
		}
	case "close":
		st.closed = true
	}
}

// checkErr fails unless err is nil or a *dgram.Error with a code.
func (tr *fuzzTrace) checkErr(what string, err error) {
	tr.t.Helper()
	if err == nil {
		return
	}
	var de *dgram.Error
	if !errors.As(err, &de) || de.Code == "" {
		tr.fail("%s returned %T %v, want a *dgram.Error with a Code", what, err, err)
	}
	tr.log = append(tr.log, fmt.Sprintf("  %s: %s", what, de.Code))
}

// once returns an id for a callback and a function that fails the test if
// the callback runs twice.
func (tr *fuzzTrace) once(what string) func() {
	id := tr.nextCB
	tr.nextCB++
	return func() {
		tr.t.Helper()
		tr.log = append(tr.log, fmt.Sprintf("  cb %s#%d", what, id))
		if tr.called[id] {
			tr.fail("callback %s#%d called twice", what, id)
		}
		tr.called[id] = true
	}
}

// fuzzArgs reads small arguments from the input.
type fuzzArgs struct{ b []byte }

func (a *fuzzArgs) byte() byte {
	if len(a.b) == 0 {
		return 0
	}
	c := a.b[0]
	a.b = a.b[1:]
	return c
}

func pick[T any](a *fuzzArgs, xs []T) T { return xs[int(a.byte())%len(xs)] }

const fuzzMaxOps = 64

// FuzzSocketCalls drives one or two sockets on a virtual host with a
// sequence of calls decoded from the input (an op byte and argument bytes
// each), made one per loop turn so events interleave with calls.
// Invariants: no panic or hang, Run returns nil or a *dgram.Error, every
// error carries a Code, each socket's events are in a legal order and no
// callback runs twice.
func FuzzSocketCalls(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0})                               // udp4: bind 7000 on all
	f.Add([]byte{1, 0, 0, 1, 0, 2, 1, 1, 1, 2, 1, 0, 7, 0}) // two sockets, send to the other, close
	f.Add([]byte{0, 2, 0, 0, 0, 1, 1, 1, 5, 1, 1, 1, 2, 1}) // connect then send
	f.Add([]byte{2, 2, 5, 1, 6, 2, 1, 0, 1, 3, 7, 7})       // bad ports, names, no error listener
	f.Add([]byte{0, 0, 0, 1, 14, 0, 0, 0, 15, 0, 0, 0, 16, 0, 1, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 9, 1, 10, 3, 11, 4, 12, 1, 13, 2, 18, 1, 19, 7, 20, 0, 20, 1})
	f.Add([]byte{1, 1, 3, 0, 0, 1, 2, 9, 9, 9, 4, 0, 1, 1, 7, 0, 7, 0, 0, 0, 2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		a := &fuzzArgs{b: data}
		cfg := a.byte()
		h, err := stack.NewHost(stack.HostOptions{Name: "fuzz", Hosts: map[string][]netip.Addr{
			"peer.test": {netip.MustParseAddr("127.0.0.1")},
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		loop := dgram.NewLoop(h)
		tr := &fuzzTrace{t: t, called: map[int]bool{}}

		n := 1 + int(cfg&1)
		var socks []*dgram.Socket
		var cancels []context.CancelFunc // each socket's Context (Node's signal)
		for i := range n {
			typ := "udp4"
			if cfg>>(1+i)&1 != 0 {
				typ = "udp6"
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cancels = append(cancels, cancel)
			s, err := loop.CreateSocketWith(dgram.SocketOptions{Type: typ, Context: ctx}, func([]byte, dgram.RemoteInfo) { tr.event(i, "message") })
			if err != nil {
				t.Fatalf("CreateSocket(%s) = %v", typ, err)
			}
			s.OnListening(func() { tr.event(i, "listening") })
			s.OnConnect(func() { tr.event(i, "connect") })
			s.OnClose(func() { tr.event(i, "close") })
			if cfg>>(3+i)&1 == 0 { // else an 'error' may end Run
				s.OnError(func(err error) {
					tr.event(i, "error")
					tr.checkErr("'error' event", err)
				})
			}
			socks = append(socks, s)
		}
		port := func(self int) int {
			if a.byte()%2 == 0 {
				if ai, err := socks[(self+1)%n].Address(); err == nil {
					return ai.Port
				}
			}
			return pick(a, fuzzPorts)
		}
		sendCB := func(i int, what string) func(int, error) {
			once := tr.once(what)
			return func(_ int, err error) {
				once()
				tr.checkErr(fmt.Sprintf("s%d %s callback", i, what), err)
			}
		}

		closeAll := func() {
			for i, s := range socks {
				s.OnError(func(err error) { tr.checkErr(fmt.Sprintf("s%d late 'error'", i), err) })
				s.Close(nil)
			}
		}
		ops := 0
		var step func()
		step = func() {
			if len(a.b) == 0 || ops >= fuzzMaxOps {
				// The program ends: close everything so Run can return.
				closeAll()
				return
			}
			ops++
			op := a.byte()
			i := int(a.byte()) % n
			s := socks[i]
			name := func(call string) string { return fmt.Sprintf("s%d %s", i, call) }
			switch op % 22 {
			case 0:
				once := tr.once("bind")
				tr.checkErr(name("Bind"), s.Bind(pick(a, fuzzPorts), pick(a, fuzzAddrs), once))
			case 1:
				once := tr.once("bindWith")
				tr.checkErr(name("BindWith"), s.BindWith(dgram.BindOptions{Port: pick(a, fuzzPorts), Address: pick(a, fuzzAddrs), Exclusive: a.byte()&1 == 1}, once))
			case 2:
				msg := make([]byte, int(a.byte())*8)
				tr.checkErr(name("Send"), s.Send(msg, port(i), pick(a, fuzzAddrs), sendCB(i, "send")))
			case 3:
				msg := make([]byte, int(a.byte()))
				off, length := int(int8(a.byte())), int(int8(a.byte()))
				tr.checkErr(name("SendRange"), s.SendRange(msg, off, length, port(i), pick(a, fuzzAddrs), sendCB(i, "sendRange")))
			case 4:
				bufs := make([][]byte, int(a.byte())%4)
				for k := range bufs {
					bufs[k] = make([]byte, int(a.byte()))
				}
				tr.checkErr(name("SendBuffers"), s.SendBuffers(bufs, port(i), pick(a, fuzzAddrs), sendCB(i, "sendBuffers")))
			case 5:
				once := tr.once("connect")
				tr.checkErr(name("Connect"), s.Connect(port(i), pick(a, fuzzAddrs), func(err error) {
					once()
					tr.checkErr(name("Connect callback"), err)
				}))
			case 6:
				tr.checkErr(name("Disconnect"), s.Disconnect())
			case 7:
				var cb func()
				if a.byte()&1 == 1 {
					cb = tr.once("close")
				}
				tr.checkErr(name("Close"), s.Close(cb))
			case 8:
				_, err := s.Address()
				tr.checkErr(name("Address"), err)
				_, err = s.RemoteAddress()
				tr.checkErr(name("RemoteAddress"), err)
			case 9:
				tr.checkErr(name("SetBroadcast"), s.SetBroadcast(a.byte()&1 == 1))
			case 10:
				tr.checkErr(name("SetTTL"), s.SetTTL(pick(a, fuzzInts)))
			case 11:
				tr.checkErr(name("SetMulticastTTL"), s.SetMulticastTTL(pick(a, fuzzInts)))
			case 12:
				tr.checkErr(name("SetMulticastLoopback"), s.SetMulticastLoopback(a.byte()&1 == 1))
			case 13:
				tr.checkErr(name("SetMulticastInterface"), s.SetMulticastInterface(pick(a, fuzzAddrs)))
			case 14:
				tr.checkErr(name("AddMembership"), s.AddMembership(pick(a, fuzzGroups), pick(a, fuzzAddrs)))
			case 15:
				tr.checkErr(name("DropMembership"), s.DropMembership(pick(a, fuzzGroups), pick(a, fuzzAddrs)))
			case 16:
				tr.checkErr(name("AddSourceSpecificMembership"), s.AddSourceSpecificMembership(pick(a, fuzzAddrs), pick(a, fuzzGroups), pick(a, fuzzAddrs)))
			case 17:
				tr.checkErr(name("DropSourceSpecificMembership"), s.DropSourceSpecificMembership(pick(a, fuzzAddrs), pick(a, fuzzGroups), pick(a, fuzzAddrs)))
			case 18:
				_, err := s.GetRecvBufferSize()
				tr.checkErr(name("GetRecvBufferSize"), err)
				tr.checkErr(name("SetRecvBufferSize"), s.SetRecvBufferSize(pick(a, fuzzInts)))
			case 19:
				_, err := s.GetSendBufferSize()
				tr.checkErr(name("GetSendBufferSize"), err)
				tr.checkErr(name("SetSendBufferSize"), s.SetSendBufferSize(pick(a, fuzzInts)))
			case 20:
				if a.byte()&1 == 1 {
					s.Unref()
				} else {
					s.Ref()
				}
			case 21:
				// Abort: on the loop, or from another goroutine.
				if a.byte()&1 == 1 {
					cancels[i]()
				} else {
					go cancels[i]()
				}
			}
			loop.Post(step)
		}
		loop.Post(step)

		run := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := loop.Run(ctx)
			if ctx.Err() != nil {
				tr.fail("Run did not return within 10s")
			}
			return err
		}
		fatal := false
		if err := run(); err != nil {
			// An 'error' with no listener: Run destroyed every socket
			// without further events, so any event from now on is wrong.
			tr.checkErr("Run", err)
			fatal = true
			for i := range tr.state {
				tr.state[i].closed = true
			}
		}
		// Run may have ended early on an unhandled 'error': close what is
		// left (with an 'error' listener, so closing cannot fail) and drain.
		closeAll()
		if err := run(); err != nil {
			tr.fail("second Run = %v", err)
		}
		for i, st := range tr.state {
			if i < n && !fatal && !st.closed {
				tr.fail("s%d: no 'close' after Close", i)
			}
		}
	})
}
