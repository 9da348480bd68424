// Package version reports the versions octo was built with. The values are
// stamped by the Makefile with -ldflags -X.
package version

// Stamped at build time; defaults describe an unstamped `go build`.
var (
	// Octo is octo's own version.
	Octo = "dev"
	// Kubernetes is the version of the embedded Kubernetes components.
	Kubernetes = "v1.34.4"
	// Containerd is the version of the embedded containerd.
	Containerd = "v2.2.3"
)
