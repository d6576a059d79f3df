package dgram_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dgramlab/dgramlab/dgram"
)

// B72, B73, B74: option setters check their range first, then need a bound
// socket (EBADF); bound, they work.
func TestTTLOptions(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		for _, typ := range []string{"udp4", "udp6"} {
			x.events = nil
			s := x.sock(typ)
			calls := func(state string) {
				x.log("%s setTTL(0): %s", state, errString(s.SetTTL(0)))
				x.log("%s setTTL(64): %s", state, errString(s.SetTTL(64)))
				x.log("%s setTTL(256): %s", state, errString(s.SetTTL(256)))
				x.log("%s setMulticastTTL(0): %s", state, errString(s.SetMulticastTTL(0)))
				x.log("%s setMulticastTTL(256): %s", state, errString(s.SetMulticastTTL(256)))
				x.log("%s setMulticastTTL(-1): %s", state, errString(s.SetMulticastTTL(-1)))
				x.log("%s setMulticastLoopback: %s", state, errString(s.SetMulticastLoopback(true)))
			}
			calls("unbound")
			s.Bind(0, "", func() {
				calls("bound")
				s.Close(nil)
				x.log("closed setTTL(64): %s", errString(s.SetTTL(64)))
			})
			x.mustRun()
			x.want(
				"unbound setTTL(0): EINVAL setTTL EINVAL errno=-22 syscall=setTTL",
				"unbound setTTL(64): EBADF setTTL EBADF errno=-9 syscall=setTTL",
				"unbound setTTL(256): EINVAL setTTL EINVAL errno=-22 syscall=setTTL",
				"unbound setMulticastTTL(0): EBADF setMulticastTTL EBADF errno=-9 syscall=setMulticastTTL",
				"unbound setMulticastTTL(256): EINVAL setMulticastTTL EINVAL errno=-22 syscall=setMulticastTTL",
				"unbound setMulticastTTL(-1): EINVAL setMulticastTTL EINVAL errno=-22 syscall=setMulticastTTL",
				"unbound setMulticastLoopback: EBADF setMulticastLoopback EBADF errno=-9 syscall=setMulticastLoopback",
				"bound setTTL(0): EINVAL setTTL EINVAL errno=-22 syscall=setTTL",
				"bound setTTL(64): <nil>",
				"bound setTTL(256): EINVAL setTTL EINVAL errno=-22 syscall=setTTL",
				"bound setMulticastTTL(0): <nil>",
				"bound setMulticastTTL(256): EINVAL setMulticastTTL EINVAL errno=-22 syscall=setMulticastTTL",
				"bound setMulticastTTL(-1): EINVAL setMulticastTTL EINVAL errno=-22 syscall=setMulticastTTL",
				"bound setMulticastLoopback: <nil>",
				"closed setTTL(64): ERR_SOCKET_DGRAM_NOT_RUNNING Not running",
			)
		}
	})
}

// B75: setMulticastInterface parses first (EINVAL), then needs a bound
// socket (EBADF), then the system says what it thinks of the interface.
func TestSetMulticastInterface(t *testing.T) {
	const (
		ok       = "<nil>"
		inval    = "EINVAL setMulticastInterface EINVAL errno=-22 syscall=setMulticastInterface"
		badf     = "EBADF setMulticastInterface EBADF errno=-9 syscall=setMulticastInterface"
		notavail = "EADDRNOTAVAIL setMulticastInterface EADDRNOTAVAIL errno=-99 syscall=setMulticastInterface"
		noproto  = "ENOPROTOOPT setMulticastInterface ENOPROTOOPT errno=-92 syscall=setMulticastInterface"
	)
	cases := []struct{ iface, udp4, udp6 string }{
		{"127.0.0.1", ok, ok},
		{"0.0.0.0", ok, ok},
		{"192.0.2.99", notavail, notavail},
		{"abc", inval, inval},
		{"", inval, inval},
		{"::1", noproto, ok},
		{"::%lo", noproto, ok},
		{"::", noproto, ok},
		{"::%nonexistent", noproto, ok},
	}
	forEachEnv(t, func(t *testing.T, x *harness) {
		for _, typ := range []string{"udp4", "udp6"} {
			s := x.sock(typ)
			for _, c := range cases {
				want := badf
				if c.udp4 == inval {
					want = inval
				}
				if got := errString(s.SetMulticastInterface(c.iface)); got != want {
					t.Errorf("%s unbound SetMulticastInterface(%q) = %s, want %s", typ, c.iface, got, want)
				}
			}
			s.Bind(0, "", func() {
				for _, c := range cases {
					want := c.udp4
					if typ == "udp6" {
						want = c.udp6
					}
					if got := errString(s.SetMulticastInterface(c.iface)); got != want {
						t.Errorf("%s SetMulticastInterface(%q) = %s, want %s", typ, c.iface, got, want)
					}
				}
				s.Close(nil)
			})
			x.mustRun()
		}
	})
}

// B76: membership errors, as Node reports them on Linux.
func TestMembership(t *testing.T) {
	const ok = "<nil>"
	type call struct {
		name string
		fn   func(s *dgram.Socket) error
		want string // "CODE" for "<syscall> CODE", or "<nil>"
	}
	add := func(g, i string) func(*dgram.Socket) error {
		return func(s *dgram.Socket) error { return s.AddMembership(g, i) }
	}
	drop := func(g, i string) func(*dgram.Socket) error {
		return func(s *dgram.Socket) error { return s.DropMembership(g, i) }
	}
	addSSM := func(src, g, i string) func(*dgram.Socket) error {
		return func(s *dgram.Socket) error { return s.AddSourceSpecificMembership(src, g, i) }
	}
	dropSSM := func(src, g, i string) func(*dgram.Socket) error {
		return func(s *dgram.Socket) error { return s.DropSourceSpecificMembership(src, g, i) }
	}
	lo := "127.0.0.1"
	common := []call{
		{"add()", add("", ""), "ERR_MISSING_ARGS"},
		{"add(10.0.0.1)", add("10.0.0.1", lo), "EINVAL"},
		{"add(abc)", add("abc", ""), "EINVAL"},
		{"add(239.1.2.3, 192.0.2.99)", add("239.1.2.3", "192.0.2.99"), "ENODEV"},
		{"add(239.1.2.3, abc)", add("239.1.2.3", "abc"), "EINVAL"},
		{"add(239.1.2.3, ::1)", add("239.1.2.3", "::1"), "EINVAL"},
		{"add(239.1.2.3, lo)", add("239.1.2.3", lo), ok},
		{"add(239.1.2.3, lo) twice", add("239.1.2.3", lo), "EADDRINUSE"},
		{"drop(239.1.2.3, lo)", drop("239.1.2.3", lo), ok},
		{"drop(239.1.2.3, lo) again", drop("239.1.2.3", lo), "EADDRNOTAVAIL"},
		{"drop(239.9.9.9, lo)", drop("239.9.9.9", lo), "EADDRNOTAVAIL"},
		{"drop(10.0.0.1, lo)", drop("10.0.0.1", lo), "EADDRNOTAVAIL"},
		{"drop()", drop("", ""), "ERR_MISSING_ARGS"},
		{"add(ff02::fb, 127.0.0.1)", add("ff02::fb", lo), "EINVAL"},
		{"addSSM(127.0.0.1, 10.0.0.1)", addSSM(lo, "10.0.0.1", lo), "EINVAL"},
		{"addSSM(abc, 232.1.1.1)", addSSM("abc", "232.1.1.1", lo), "EINVAL"},
		{"addSSM(127.0.0.1, 232.1.1.1, 192.0.2.99)", addSSM(lo, "232.1.1.1", "192.0.2.99"), "ENODEV"},
		{"addSSM(127.0.0.1, 232.1.1.1)", addSSM(lo, "232.1.1.1", lo), ok},
		{"addSSM(127.0.0.1, 232.1.1.1) twice", addSSM(lo, "232.1.1.1", lo), "EADDRNOTAVAIL"},
		{"addSSM(127.0.0.2, 232.1.1.1)", addSSM("127.0.0.2", "232.1.1.1", lo), ok},
		{"add(232.1.1.1) after SSM", add("232.1.1.1", lo), "EADDRINUSE"},
		{"dropSSM(127.0.0.3, 232.1.1.1)", dropSSM("127.0.0.3", "232.1.1.1", lo), "EADDRNOTAVAIL"},
		{"dropSSM(127.0.0.1, 232.1.1.1)", dropSSM(lo, "232.1.1.1", lo), ok},
		{"dropSSM(127.0.0.2, 232.1.1.1)", dropSSM("127.0.0.2", "232.1.1.1", lo), ok},
		{"dropSSM(127.0.0.2, 232.1.1.1) again", dropSSM("127.0.0.2", "232.1.1.1", lo), "EINVAL"},
		{"add(232.2.2.2) then addSSM", func(s *dgram.Socket) error {
			if err := s.AddMembership("232.2.2.2", lo); err != nil {
				return err
			}
			return s.AddSourceSpecificMembership(lo, "232.2.2.2", lo)
		}, ok},
		{"addSSM(127.0.0.1, ff3e::1)", addSSM(lo, "ff3e::1", ""), "EINVAL"},
	}
	perType := map[string][]call{
		"udp4": {
			{"add(ff02::1:3)", add("ff02::1:3", ""), "ENOPROTOOPT"},
			{"add(::1)", add("::1", ""), "ENOPROTOOPT"},
			{"add(ff02::fb, ::%lo)", add("ff02::fb", "::%lo"), "ENOPROTOOPT"},
			{"drop(ff02::fb, ::%lo)", drop("ff02::fb", "::%lo"), "ENOPROTOOPT"},
			{"addSSM(::1, ff3e::1)", addSSM("::1", "ff3e::1", "::%lo"), "ENOPROTOOPT"},
		},
		"udp6": {
			{"add(::1)", add("::1", "::%lo"), "EINVAL"},
			{"add(ff02::fb, ::%lo)", add("ff02::fb", "::%lo"), ok},
			{"add(ff02::fb, ::1%lo)", add("ff02::fb", "::1%lo"), "EADDRINUSE"},
			{"drop(ff02::fb, ::%lo)", drop("ff02::fb", "::%lo"), ok},
			{"drop(ff02::fb, ::%lo) again", drop("ff02::fb", "::%lo"), "EADDRNOTAVAIL"},
			{"addSSM(::1, ff3e::1)", addSSM("::1", "ff3e::1", "::%lo"), ok},
			{"addSSM(::1, ff3e::1) twice", addSSM("::1", "ff3e::1", "::%lo"), "EADDRNOTAVAIL"},
			{"dropSSM(::1, ff3e::1)", dropSSM("::1", "ff3e::1", "::%lo"), ok},
			{"dropSSM(::1, ff3e::1) again", dropSSM("::1", "ff3e::1", "::%lo"), "EINVAL"},
		},
	}
	forEachEnv(t, func(t *testing.T, x *harness) {
		for _, typ := range []string{"udp4", "udp6"} {
			s := x.sock(typ)
			s.Bind(0, "", func() {
				for _, c := range append(common, perType[typ]...) {
					got := errString(c.fn(s))
					want := c.want
					switch {
					case want == "ERR_MISSING_ARGS":
						want = `ERR_MISSING_ARGS The "multicastAddress" argument must be specified`
					case want != ok:
						// The syscall is the method's name.
						name := map[string]string{"add(": "addMembership", "drop": "dropMembership", "addS": "addSourceSpecificMembership", "dropS": "dropSourceSpecificMembership"}
						sys := name[c.name[:4]]
						if c.name[:5] == "dropS" {
							sys = name["dropS"]
						}
						want = fmt.Sprintf("%s %s %s", want, sys, want)
					}
					if len(got) > len(want) && want != ok && got[:len(want)] == want {
						got = want // errno=… syscall=… suffix
					}
					if got != want {
						t.Errorf("%s %s = %s, want %s", typ, c.name, got, want)
					}
				}
				s.Close(nil)
				x.log("closed: %s", errString(s.AddMembership("239.1.2.3", "")))
			})
			x.mustRun()
		}
		x.want("closed: ERR_SOCKET_DGRAM_NOT_RUNNING Not running", "closed: ERR_SOCKET_DGRAM_NOT_RUNNING Not running")
	})
}

// B77: a membership call on an unbound socket binds it behind the scenes:
// Address works, no 'listening'; any bind then fails with EINVAL.
func TestMembershipBindsUnbound(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		s.OnListening(func() { x.log("listening") })
		s.OnError(func(err error) { x.log("error %s", errString(err)) })
		x.log("addMembership: %v", s.AddMembership("239.1.2.3", "127.0.0.1"))
		a, err := s.Address()
		x.log("address: %s %v %v", a.Address, a.Port > 0, err)
		x.log("setTTL: %v", s.SetTTL(5))
		n, err := s.GetRecvBufferSize()
		x.log("recv buffer: %d %v", n, err)
		s.Send([]byte("x"), 9, "127.0.0.1", func(int, error) { x.log("send cb must not run") })
		x.loop.Post(func() {
			x.log("bind: %v", s.Bind(21100, "", nil))
			x.loop.Post(func() {
				a2, _ := s.Address()
				x.log("same address: %v", a2 == a)
				s.Close(nil)
			})
		})
		x.mustRun()
		x.want(
			"addMembership: <nil>",
			"address: 0.0.0.0 true <nil>",
			"setTTL: <nil>",
			"recv buffer: 212992 <nil>",
			"error EINVAL bind EINVAL 0.0.0.0 errno=-22 syscall=bind",
			"bind: <nil>",
			"error EINVAL bind EINVAL 0.0.0.0:21100 errno=-22 syscall=bind",
			"same address: true",
		)
	})
}

// B77: the hidden bind of a membership call is dual-stack even on an
// IPv6Only socket (libuv's deferred bind sets no flags): the port is held
// for udp4 too, so a udp4 bind to it fails with EADDRINUSE (measured on
// Node v20).
func TestMembershipBindIsDualStack(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s, _ := x.loop.CreateSocketWith(dgram.SocketOptions{Type: "udp6", IPv6Only: true}, nil)
		if err := s.AddMembership("ff02::1", "::%lo"); err != nil {
			t.Fatalf("AddMembership = %v", err)
		}
		a, err := s.Address()
		if err != nil {
			t.Fatal(err)
		}
		v4 := x.sock("udp4")
		v4.OnError(func(err error) {
			x.log("%s", strings.ReplaceAll(errString(err), fmt.Sprint(a.Port), "P"))
			v4.Close(nil)
			s.Close(nil)
		})
		v4.Bind(a.Port, "0.0.0.0", func() { x.log("udp4 bound: the hidden bind was IPv6-only"); v4.Close(nil); s.Close(nil) })
		x.mustRun()
		x.want("EADDRINUSE bind EADDRINUSE 0.0.0.0:P errno=-98 syscall=bind")
	})
}

// B77: a source-specific membership call whose source or group does not
// parse fails with EINVAL before libuv's deferred bind, so the socket stays
// unbound (measured on Node v20: address() then throws EBADF, and bind
// works).
func TestBadSourceMembershipLeavesUnbound(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		for _, c := range [][2]string{{"abc", "232.1.1.1"}, {"10.0.0.1", "abc"}} {
			s := x.sock("udp4")
			x.log("ssm: %s", errString(s.AddSourceSpecificMembership(c[0], c[1], "")))
			_, err := s.Address()
			x.log("address: %s", errString(err))
			s.Bind(0, "", func() { x.log("bound"); s.Close(nil) })
		}
		x.mustRun()
		x.want(
			"ssm: EINVAL addSourceSpecificMembership EINVAL errno=-22 syscall=addSourceSpecificMembership",
			"address: EBADF getsockname EBADF errno=-9 syscall=getsockname",
			"ssm: EINVAL addSourceSpecificMembership EINVAL errno=-22 syscall=addSourceSpecificMembership",
			"address: EBADF getsockname EBADF errno=-9 syscall=getsockname",
			"bound", "bound",
		)
	})
}

// B78: multicast on the loopback interface: join on 127.0.0.1, send with
// setMulticastInterface("127.0.0.1"); delivered once, with or without
// multicast loopback.
func TestMulticastOnLoopback(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		r := x.sock("udp4")
		var s *dgram.Socket
		r.OnMessage(func(msg []byte, ri dgram.RemoteInfo) {
			x.log("got %q from %s", msg, ri.Address)
			if string(msg) == "noloop" {
				r.Close(nil)
				s.Close(nil)
			}
		})
		r.Bind(0, "", func() {
			if err := r.AddMembership("239.1.2.3", "127.0.0.1"); err != nil {
				t.Fatal(err)
			}
			p := port(t, r)
			s = x.sock("udp4")
			s.Bind(0, "", func() {
				x.log("setMulticastInterface: %v", s.SetMulticastInterface("127.0.0.1"))
				s.Send([]byte("loop"), p, "239.1.2.3", func(n int, err error) {
					x.log("sent %d %v", n, err)
					s.SetMulticastLoopback(false)
					s.Send([]byte("noloop"), p, "239.1.2.3", nil)
				})
			})
		})
		x.mustRun()
		x.want(
			"setMulticastInterface: <nil>",
			"sent 4 <nil>",
			`got "loop" from 127.0.0.1`,
			`got "noloop" from 127.0.0.1`,
		)
	})
}
