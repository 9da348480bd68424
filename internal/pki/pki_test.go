package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"

	"k8s.io/client-go/util/keyutil"

	"github.com/octohq/octo/internal/config"
)

func newTestPKI(t *testing.T, dir string) *PKI {
	t.Helper()
	cfg := config.Default(dir)
	cfg.NodeName = "node-a"
	return New(cfg)
}

func TestEnsureCreatesThenReuses(t *testing.T) {
	dir := t.TempDir()
	p := newTestPKI(t, dir)
	changed, err := p.Ensure()
	if err != nil || !changed {
		t.Fatalf("first Ensure: changed=%v err=%v", changed, err)
	}
	before := map[string][]byte{}
	for _, f := range []string{"ca.crt", "apiserver.crt", "admin.crt", "kubelet.crt", ServingName + ".crt", "sa.key"} {
		b, err := os.ReadFile(p.Path(f))
		if err != nil {
			t.Fatal(err)
		}
		before[f] = b
	}
	changed, err = newTestPKI(t, dir).Ensure()
	if err != nil || changed {
		t.Fatalf("second Ensure: changed=%v err=%v, want reuse", changed, err)
	}
	for f, b := range before {
		after, _ := os.ReadFile(p.Path(f))
		if !bytes.Equal(b, after) {
			t.Errorf("%s was regenerated on reuse", f)
		}
	}
}

func TestKeysArePrivate(t *testing.T) {
	p := newTestPKI(t, t.TempDir())
	if _, err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.key", "apiserver.key", "sa.key", "admin.kubeconfig", "kubelet.kubeconfig"} {
		st, err := os.Stat(p.Path(f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, st.Mode().Perm())
		}
	}
}

func TestServingCertificateNamesAndRenewalOnChange(t *testing.T) {
	dir := t.TempDir()
	p := newTestPKI(t, dir)
	if _, err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	cert := readCert(t, p.Path("apiserver.crt"))
	for _, want := range []string{"127.0.0.1", config.KubernetesServiceIP, config.BridgeIP} {
		if cert.VerifyHostname(want) != nil {
			t.Errorf("apiserver certificate does not cover %s", want)
		}
	}
	if cert.VerifyHostname("kubernetes.default.svc") != nil {
		t.Error("apiserver certificate does not cover kubernetes.default.svc")
	}
	ca := readCert(t, p.Path("ca.crt"))
	if err := cert.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("apiserver cert not signed by CA: %v", err)
	}

	// A renamed node changes the kubelet identity: only that is reissued.
	cfg := config.Default(dir)
	cfg.NodeName = "node-b"
	changed, err := New(cfg).Ensure()
	if err != nil || !changed {
		t.Fatalf("Ensure after rename: changed=%v err=%v", changed, err)
	}
	if got := readCert(t, p.Path("kubelet.crt")).Subject.CommonName; got != "system:node:node-b" {
		t.Errorf("kubelet CN = %q", got)
	}
	if !readCert(t, p.Path("ca.crt")).Equal(ca) {
		t.Error("CA changed although it was valid")
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestServingAndServiceAccountKeys: the node's components serve with one
// certificate of the cluster CA for the loopback address and the node's
// name, and service account tokens are signed with an ECDSA key the API
// server and the controller-manager read.
func TestServingAndServiceAccountKeys(t *testing.T) {
	p := newTestPKI(t, t.TempDir())
	if _, err := p.Ensure(); err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, p.Path("ca.crt"))
	c := readCert(t, p.Path(ServingName+".crt"))
	if err := c.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("serving certificate not signed by the cluster CA: %v", err)
	}
	if err := c.VerifyHostname("node-a"); err != nil {
		t.Errorf("serving certificate: %v", err)
	}
	if err := c.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("serving certificate: %v", err)
	}
	key, err := keyutil.PrivateKeyFromFile(p.Path("sa.key"))
	if err != nil {
		t.Fatalf("service account key: %v", err)
	}
	if _, ok := key.(*ecdsa.PrivateKey); !ok {
		t.Errorf("service account key is %T, want ECDSA", key)
	}
	if _, err := keyutil.PublicKeysFromFile(p.Path("sa.pub")); err != nil {
		t.Errorf("service account public key: %v", err)
	}
}
