package capture

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dgramlab/dgramlab/wire"
)

func TestRecorderWaitSeesEarlierFrames(t *testing.T) {
	var rec Recorder // the zero value works
	fs := scenario(t)
	for _, f := range fs {
		rec.Record(f)
	}
	got, err := rec.Wait(context.Background(), Dropped(wire.DropMTU))
	if err != nil || got.Link != "sw0/port2" {
		t.Fatalf("Wait(dropped mtu) = %v, %v; want the sw0/port2 drop", got, err)
	}
	many, err := rec.WaitCount(context.Background(), All(Link("h1/eth0"), OnWire()), 3)
	if err != nil || len(many) != 3 || !many[0].Time.Equal(fs[0].Time) {
		t.Fatalf("WaitCount(h1/eth0, 3) = %v, %v; want the first 3 h1/eth0 frames", many, err)
	}
	if rec.Len() != len(fs) || len(rec.Frames()) != len(fs) {
		t.Errorf("Len() = %d, len(Frames()) = %d, want %d", rec.Len(), len(rec.Frames()), len(fs))
	}
}

func TestRecorderWaitBlocksUntilRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := NewRecorder()
		fs := scenario(t)
		var got []Frame
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			got, err = rec.WaitCount(context.Background(), Dropped(0), 2)
		}()
		synctest.Wait() // the waiter is parked
		for _, f := range fs[:len(fs)-1] {
			rec.Record(f)
		}
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("WaitCount returned after one matching frame, want it to wait for two")
		default:
		}
		rec.Record(fs[len(fs)-1])
		<-done
		if err != nil || len(got) != 2 || got[1].Drop != wire.DropQueueFull {
			t.Errorf("WaitCount = %v, %v; want the two drops", got, err)
		}
	})
}

func TestRecorderWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := NewRecorder()
		for _, f := range scenario(t)[:3] {
			rec.Record(f)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := rec.WaitCount(ctx, All(Dir(wire.Inbound), DstPort(9000)), 2)
		var we *WaitError
		if !errors.As(err, &we) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitCount = %v, want a *WaitError wrapping DeadlineExceeded", err)
		}
		if we.Want != 2 || we.Got != 1 || len(we.Frames) != 3 {
			t.Errorf("WaitError = want %d got %d frames %d; want 2, 1, 3", we.Want, we.Got, len(we.Frames))
		}
		if !strings.Contains(err.Error(), "inbound and dst port 9000") {
			t.Errorf("error %q does not describe the matcher", err)
		}
	})
}

func TestRecorderReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := NewRecorder()
		fs := scenario(t)
		rec.Record(fs[1])
		var got []Frame
		done := make(chan struct{})
		go func() {
			defer close(done)
			got, _ = rec.WaitCount(context.Background(), DstPort(9000), 2)
		}()
		synctest.Wait()
		rec.Reset() // the frame seen before no longer counts
		rec.Record(fs[2])
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("WaitCount counted a frame from before Reset")
		default:
		}
		rec.Record(fs[1])
		<-done
		if len(got) != 2 || got[0].Link != "h2/eth0" {
			t.Errorf("WaitCount after Reset = %v", got)
		}
	})
}

func TestRecorderConcurrent(t *testing.T) {
	rec := NewRecorder()
	fs := scenario(t)
	const writers = 8
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for _, f := range fs {
				rec.Record(f)
			}
		})
	}
	got, err := rec.WaitCount(waitCtx(t), Any(), 0)
	if err != nil || len(got) != 0 {
		t.Errorf("WaitCount(n=0) = %v, %v", got, err)
	}
	got, err = rec.WaitCount(waitCtx(t), Dropped(wire.DropMTU), writers)
	wg.Wait()
	if err != nil || len(got) != writers {
		t.Errorf("WaitCount = %d frames, %v; want %d", len(got), err, writers)
	}
	if rec.Len() != writers*len(fs) {
		t.Errorf("Len() = %d, want %d", rec.Len(), writers*len(fs))
	}
}

func TestRecorderWaitNilArguments(t *testing.T) {
	rec := NewRecorder()
	var nilCtx context.Context
	if _, err := rec.Wait(nilCtx, Dir(wire.Inbound)); err == nil {
		t.Error("Wait(nil ctx) succeeded")
	}
	if _, err := rec.WaitCount(context.Background(), nil, 1); err == nil {
		t.Error("WaitCount(nil matcher) succeeded")
	}
}
