package dgram_test

import (
	"context"
	"testing"

	"github.com/dgramlab/dgramlab/dgram"
	"github.com/dgramlab/dgramlab/stack"
)

// BenchmarkSendMessage measures one 64-byte datagram from Send on one
// socket to 'message' on another, on a virtual host's loopback, with both
// sockets on one loop (each op: a send whose callback sends the next).
func BenchmarkSendMessage(b *testing.B) {
	h, err := stack.NewHost(stack.HostOptions{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	loop := dgram.NewLoop(h)
	rx, _ := loop.CreateSocket("udp4", nil)
	tx, _ := loop.CreateSocket("udp4", nil)
	msg := make([]byte, 64)
	got := 0
	var port int
	rx.OnMessage(func([]byte, dgram.RemoteInfo) {
		if got++; got == b.N {
			rx.Close(nil)
			tx.Close(nil)
			return
		}
		tx.Send(msg, port, "127.0.0.1", nil)
	})
	rx.Bind(0, "127.0.0.1", func() {
		a, _ := rx.Address()
		port = a.Port
		b.ReportAllocs()
		b.ResetTimer()
		tx.Send(msg, port, "127.0.0.1", nil)
	})
	if err := loop.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
}
