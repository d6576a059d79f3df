package dgram

import (
	"net/netip"
	"testing"
)

// B31: inet_aton's numeric forms, as glibc's getaddrinfo read them for
// Node v20 (dns.lookup with family 4 on Linux, measured): the cases that
// resolved there parse; the others went on to a name lookup.
func TestParseInetAton(t *testing.T) {
	for _, c := range []struct {
		in, want string // want "" = not numeric
	}{
		{"127.1", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"127.2", "127.0.0.2"},
		{"0177.0.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"127.256", "127.0.1.0"},
		{"0", "0.0.0.0"},
		{"0X7F.0.0.01", "127.0.0.1"},
		{"127.0.0.1 ", ""},
		{" 127.1", ""},
		{"1.2.3.4.5", ""},
		{"1.2.3.0x100", ""},
		{"08.1.1.1", ""},
		{"127.1.", ""},
		{"1..2", ""},
		{"0x", ""},
		{"", ""},
		{"4294967296", ""},
		{"256.1", ""},
		{"1.16777216", ""},
		{"localhost", ""},
		{"::1", ""},
	} {
		a, ok := parseInetAton(c.in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != c.want {
			t.Errorf("parseInetAton(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzParseInetAton(f *testing.F) {
	for _, s := range []string{"127.1", "0x7f.1", "1.2.3.4", "08.1", "0x", "4294967295"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := parseInetAton(s)
		if !ok {
			return
		}
		if !a.Is4() {
			t.Fatalf("%q parsed to %v", s, a)
		}
		// Every dotted quad netip accepts means the same address here.
		if b, err := netip.ParseAddr(s); err == nil && b.Is4() && b != a {
			t.Fatalf("%q: netip %v, inet_aton %v", s, b, a)
		}
	})
}
