package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/dgramlab/dgramlab/capture"
	"github.com/dgramlab/dgramlab/stack"
	"github.com/dgramlab/dgramlab/wire"
)

// quicLAN is a QUIC server host and a client host on one switch, every
// NIC tapped into one recorder.
type quicLAN struct {
	rec              *capture.Recorder
	srvPort, cliPort *stack.Port
	srvConn, cliConn *stack.UDPConn
	srvAddr          netip.AddrPort
}

// newQUICLAN builds the LAN; the server's port enforces srvPortMTU (its
// NIC is told 1500, so nothing fragments the packets before the port).
func newQUICLAN(t *testing.T, srvPortMTU int) *quicLAN {
	t.Helper()
	l := &quicLAN{rec: capture.NewRecorder(), srvAddr: netip.MustParseAddrPort("10.0.0.1:4433")}
	sw := stack.NewSwitch(stack.SwitchOptions{Name: "quic"})
	for i, name := range []string{"server", "client"} {
		h, err := stack.NewHost(stack.HostOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		opts := stack.PortOptions{}
		if i == 0 {
			opts = stack.PortOptions{MTU: srvPortMTU, NICMTU: 1500}
		}
		p, err := sw.NewPort(opts)
		if err != nil {
			t.Fatal(err)
		}
		tap := capture.NewTap(p, capture.TapOptions{Name: name, Sink: l.rec})
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
		if _, err := h.AddNIC(tap, stack.NICOptions{Addresses: []netip.Prefix{addr}}); err != nil {
			t.Fatal(err)
		}
		laddr := "0.0.0.0:0"
		if i == 0 {
			laddr = "0.0.0.0:4433"
		}
		pc, err := h.ListenPacket("udp4", laddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		if i == 0 {
			l.srvPort, l.srvConn = p, pc.(*stack.UDPConn)
		} else {
			l.cliPort, l.cliConn = p, pc.(*stack.UDPConn)
		}
	}
	return l
}

// selfSigned returns a TLS certificate for "server".
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "server"},
		DNSNames:     []string{"server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

const quicALPN = "dgramlab-test"

// serveQUIC accepts one connection and one stream on pc, reads the stream
// to its end and answers with the SHA-256 of what it read. Errors go to
// the returned channel (nil on success).
func serveQUIC(t *testing.T, pc net.PacketConn, cert tls.Certificate) (*quic.Transport, <-chan error) {
	t.Helper()
	tr := &quic.Transport{Conn: pc}
	ln, err := tr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{quicALPN}}, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			defer ln.Close()
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return err
			}
			str, err := conn.AcceptStream(context.Background())
			if err != nil {
				return err
			}
			h := sha256.New()
			if _, err := io.Copy(h, str); err != nil {
				return err
			}
			if _, err := str.Write(h.Sum(nil)); err != nil {
				return err
			}
			str.Close()
			// Wait for the client to close the connection.
			<-conn.Context().Done()
			return nil
		}()
	}()
	return tr, done
}

// TestQUICTransferImpaired: quic-go on the virtual LAN, through
// net.PacketConn. The client's cable loses 2% of the frames and delays
// them 20 ms each way; the handshake completes and 1 MiB goes through
// intact. It runs in a synctest bubble: virtual time, so the seconds of
// delays and retransmissions take no wall-clock time.
func TestQUICTransferImpaired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newQUICLAN(t, 1500)
		if err := l.cliPort.SetImpairments(stack.BothDirections, stack.Impairments{Loss: 0.02, Delay: 20 * time.Millisecond, Seed: 1}); err != nil {
			t.Fatal(err)
		}
		srvTr, served := serveQUIC(t, l.srvConn, selfSigned(t))
		defer srvTr.Close()
		cliTr := &quic.Transport{Conn: l.cliConn}
		defer cliTr.Close()

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		conn, err := cliTr.Dial(ctx, net.UDPAddrFromAddrPort(l.srvAddr), &tls.Config{ServerName: "server", InsecureSkipVerify: true, NextProtos: []string{quicALPN}}, &quic.Config{})
		if err != nil {
			t.Fatalf("Dial = %v", err)
		}
		handshake := time.Since(start)
		str, err := conn.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 1<<20)
		for i := range data {
			data[i] = byte(i * 7)
		}
		if _, err := str.Write(data); err != nil {
			t.Fatalf("Write = %v", err)
		}
		str.Close()
		digest, err := io.ReadAll(str)
		if err != nil {
			t.Fatalf("reading the digest: %v", err)
		}
		want := sha256.Sum256(data)
		if !bytes.Equal(digest, want[:]) {
			t.Fatalf("the server read something else: digest %x, want %x", digest, want)
		}
		elapsed := time.Since(start)
		conn.CloseWithError(0, "done")
		if err := <-served; err != nil {
			t.Fatalf("server: %v", err)
		}
		c := l.cliPort.Counters()
		if c.Drops[wire.DropLoss] == 0 {
			t.Errorf("nothing was lost: %+v", c)
		}
		t.Logf("handshake %v, 1 MiB in %v (virtual time); client cable: %d frames sent, %d received, %d lost",
			handshake, elapsed, c.TxFrames, c.RxFrames, c.Drops[wire.DropLoss])
		if handshake < 80*time.Millisecond {
			t.Errorf("handshake took %v: less than the two 40ms round trips it needs", handshake)
		}
	})
}

// TestQUICFailsBelow1200MTU: QUIC pads the client's first packets to 1200
// bytes; a path whose MTU is 1100 drops them, the dial times out, and the
// capture shows the frames dropped for "mtu".
func TestQUICFailsBelow1200MTU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newQUICLAN(t, 1100)
		srvTr, _ := serveQUIC(t, l.srvConn, selfSigned(t))
		cliTr := &quic.Transport{Conn: l.cliConn}
		defer cliTr.Close()
		_, err := cliTr.Dial(context.Background(), net.UDPAddrFromAddrPort(l.srvAddr),
			&tls.Config{ServerName: "server", InsecureSkipVerify: true, NextProtos: []string{quicALPN}},
			&quic.Config{HandshakeIdleTimeout: 3 * time.Second})
		var idle *quic.IdleTimeoutError
		var hs *quic.HandshakeTimeoutError
		if err == nil || !errors.As(err, &idle) && !errors.As(err, &hs) {
			t.Fatalf("Dial = %v, want a handshake timeout", err)
		}
		srvTr.Close()
		drops := capture.Filter(l.rec.Frames(), capture.All(capture.Dropped(wire.DropMTU), capture.UDP(), capture.DstPort(4433)))
		if len(drops) == 0 {
			t.Fatalf("no mtu drop in the capture")
		}
		for _, f := range drops {
			if f.Len-14 <= 1100 || f.Link != "server" || f.Dir != wire.Inbound {
				t.Errorf("drop %s: %d-byte frame on %s, %v", f.Drop, f.Len, f.Link, f.Dir)
			}
		}
		if c := l.srvPort.Counters(); c.Drops[wire.DropMTU] != uint64(len(drops)) {
			t.Errorf("server port counted %v, the capture shows %d mtu drops", c.Drops, len(drops))
		}
		if hasUDPTo(l.rec, 4433) {
			t.Errorf("a datagram reached the server")
		}
		t.Logf("Dial = %v; %d Initial packets of %d bytes dropped for mtu", err, len(drops), drops[0].Len)
	})
}

// hasUDPTo reports whether a UDP datagram to port was delivered anywhere.
func hasUDPTo(rec *capture.Recorder, port uint16) bool {
	return len(capture.Filter(rec.Frames(), capture.All(capture.OnWire(), capture.Dir(wire.Inbound), capture.UDP(), capture.DstPort(port)))) > 0
}
