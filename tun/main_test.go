package tun_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/dgramlab/dgramlab/tun"
	"go.uber.org/goleak"
)

// helperEnv makes the test binary act as a helper process (see
// TestOpenWithoutPermission) instead of running tests.
const helperEnv = "DGRAMLAB_TUN_HELPER"

// TestMain runs the tests with a goroutine-leak check, or the helper.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "open" {
		_, err := tun.Open(tun.Options{Name: "dgl0", Create: true})
		fmt.Println(err)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
