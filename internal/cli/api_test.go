package cli

import (
	"bytes"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestAPIServerTimeouts(t *testing.T) {
	srv := apiServer("127.0.0.1:0", http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("timeouts: header %v, read %v, write %v, idle %v", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
}

// The cluster roles refuse to start without what they need, and say what.
func TestClusterRolesSayWhatIsMissing(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("OCTO_API_TOKEN", "a-token-long-enough-for-octo")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"operators", "--s3-endpoint", "s3:9000"}, "--registry"},
		{[]string{"operators", "--s3-endpoint", "s3:9000", "--registry", "r:5000"}, "--pod-api"},
		{[]string{"operators", "--registry", "r:5000"}, "--s3-endpoint"},
		{[]string{"api", "--account-id", "0123456789abcdef0123456789abcdef", "--s3-endpoint", "s3:9000", "--pod-api-listen", ":8788"}, "--pod-api-key-file"},
		{[]string{"api", "--account-id", "0123456789abcdef0123456789abcdef", "--s3-endpoint", "s3:9000",
			"--pod-api-listen", ":8788", "--pod-api-key-file", filepath.Join(t.TempDir(), "missing")}, "pod API key"},
		{[]string{"api", "--account-id", "0123456789abcdef0123456789abcdef", "--s3-endpoint", "s3:9000",
			"--tails", "--owner", "http://owner"}, "--owner excludes"},
		{[]string{"api", "--account-id", "0123456789abcdef0123456789abcdef", "--s3-endpoint", "s3:9000", "--owner", "owner:80"}, "want a URL"},
	} {
		var out bytes.Buffer
		root := newRoot(&out, &out)
		root.SetArgs(c.args)
		err := root.Execute()
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != ExitPrecondition || !strings.Contains(err.Error(), c.want) {
			t.Errorf("octo %s: %v, want exit %d naming %s", strings.Join(c.args, " "), err, ExitPrecondition, c.want)
		}
	}
}
