package dgram_test

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Cancelling Run's context ends it even while the loop never runs out of
// work: here a socket floods itself, each send's callback sending the next
// (a next-tick chain that, as in Node, starves I/O), and another goroutine
// cancels once 100 datagrams are out. The socket is closed with its 'close'
// event and Run returns context.Canceled. (Run used to look at its context
// only when idle, so this ran forever.)
func TestLoopCancelUnderLoad(t *testing.T) {
	forEachEnv(t, func(t *testing.T, x *harness) {
		s := x.sock("udp4")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sent := 0
		hundred := make(chan struct{})
		go func() { <-hundred; cancel() }()
		var send func()
		send = func() {
			a, _ := s.Address()
			s.Send([]byte("flood"), a.Port, "127.0.0.1", func(int, error) {
				if sent++; sent == 100 {
					close(hundred)
				}
				send()
			})
		}
		closed := false
		s.OnClose(func() { closed = true })
		s.Bind(0, "127.0.0.1", func() { send() })
		deadline, stop := context.WithTimeout(context.Background(), 20*time.Second)
		defer stop()
		done := make(chan error, 1)
		go func() { done <- x.loop.Run(ctx) }()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
		case <-deadline.Done():
			t.Fatal("Run did not return after its context was cancelled under load")
		}
		if !closed || sent < 100 {
			t.Fatalf("closed=%v after %d sends", closed, sent)
		}
	})
}
