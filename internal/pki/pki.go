// Package pki creates and reuses the certificates, keys and kubeconfigs of the
// embedded Kubernetes cluster.
//
// Everything is written once into a directory of the data dir and reused by
// later starts, so clients keep working across `octo down` / `octo up`. Files
// holding private keys are mode 0600.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/octohq/octo/internal/config"
)

// validity of generated certificates; certificates are renewed on start when
// less than renewBefore of it is left.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
)

// Client identities the cluster components authenticate with.
var clients = []Identity{
	{Name: "admin", CommonName: "octo-admin", Organization: []string{"system:masters"}},
	{Name: "controller-manager", CommonName: "system:kube-controller-manager"},
	{Name: "scheduler", CommonName: "system:kube-scheduler"},
	{Name: "kube-proxy", CommonName: "system:kube-proxy"},
	{Name: "apiserver-kubelet-client", CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
}

// Identity is the subject of a client certificate.
type Identity struct {
	Name         string // file name stem and kubeconfig user
	CommonName   string // Kubernetes user name
	Organization []string
}

// PKI is the set of files of one cluster, rooted at Dir.
type PKI struct {
	Dir       string
	NodeName  string
	APIServer string // https URL of the API server for kubeconfigs
	// ServingIPs and ServingNames go into the API server's certificate.
	ServingIPs   []net.IP
	ServingNames []string
}

// New describes the PKI of cfg; call Ensure to create or reuse its files.
func New(cfg config.Config) *PKI {
	return &PKI{
		Dir:       cfg.Path("pki"),
		NodeName:  cfg.NodeName,
		APIServer: "https://" + config.Addr(cfg.APIServerPort),
		ServingIPs: []net.IP{
			net.ParseIP(config.Host), net.ParseIP(config.KubernetesServiceIP), net.ParseIP(config.BridgeIP),
		},
		ServingNames: []string{
			"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local", cfg.NodeName,
		},
	}
}

// ServingName is the file stem of the serving certificate the node's
// components (scheduler, controller-manager, kubelet) share.
const ServingName = "serving"

// Path is the absolute path of a PKI file such as "ca.crt".
func (p *PKI) Path(name string) string { return filepath.Join(p.Dir, name) }

// KubeconfigPath is the kubeconfig of a client identity (see Identity.Name)
// or of the kubelet ("kubelet").
func (p *PKI) KubeconfigPath(name string) string { return p.Path(name + ".kubeconfig") }

// Ensure creates every missing or expiring file and keeps the valid ones.
// It reports whether anything was (re)generated.
func (p *PKI) Ensure() (changed bool, err error) {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return false, fmt.Errorf("create pki dir: %w", err)
	}
	ca, caKey, caNew, err := p.ensureCA()
	if err != nil {
		return false, err
	}
	changed = caNew
	leaves := []struct {
		name string
		tmpl *x509.Certificate
	}{
		{"apiserver", &x509.Certificate{
			Subject:     pkix.Name{CommonName: "kube-apiserver"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			IPAddresses: p.ServingIPs, DNSNames: p.ServingNames,
		}},
		// The scheduler, the controller-manager and the kubelet serve their
		// health and the kubelet API with it: without one, each makes a
		// self-signed RSA pair at every start.
		{ServingName, &x509.Certificate{
			Subject:     pkix.Name{CommonName: "octo-node-components"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			IPAddresses: p.ServingIPs, DNSNames: []string{"localhost", p.NodeName},
		}},
	}
	for _, id := range append(clients, p.kubeletIdentity()) {
		leaves = append(leaves, struct {
			name string
			tmpl *x509.Certificate
		}{id.Name, &x509.Certificate{
			Subject:     pkix.Name{CommonName: id.CommonName, Organization: id.Organization},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}})
	}
	for _, l := range leaves {
		made, err := p.ensureLeaf(l.name, l.tmpl, ca, caKey, caNew)
		if err != nil {
			return false, err
		}
		changed = changed || made
	}
	if err := p.ensureServiceAccountKey(); err != nil {
		return false, err
	}
	for _, id := range append(clients, p.kubeletIdentity()) {
		if err := p.writeKubeconfig(id.Name, p.KubeconfigPath(id.Name)); err != nil {
			return false, err
		}
	}
	return changed, nil
}

func (p *PKI) kubeletIdentity() Identity {
	return Identity{Name: "kubelet", CommonName: "system:node:" + p.NodeName, Organization: []string{"system:nodes"}}
}

// ensureCA loads the CA or creates it when missing.
func (p *PKI) ensureCA() (*x509.Certificate, crypto.Signer, bool, error) {
	cert, key, err := loadPair(p.Path("ca.crt"), p.Path("ca.key"))
	if err == nil && time.Until(cert.NotAfter) > renewBefore {
		return cert, key, false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false, fmt.Errorf("load cluster CA: %w", err)
	}
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "octo-ca"},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	cert, err = sign(tmpl, newKey.Public(), nil, newKey, caValidity)
	if err != nil {
		return nil, nil, false, fmt.Errorf("sign CA: %w", err)
	}
	if err := writePair(p.Path("ca.crt"), p.Path("ca.key"), cert, newKey); err != nil {
		return nil, nil, false, err
	}
	return cert, newKey, true, nil
}

// ensureLeaf keeps name.crt when it is signed by ca, not expiring and still
// carries the requested subject and SANs; otherwise it issues a new one.
func (p *PKI) ensureLeaf(name string, tmpl *x509.Certificate, ca *x509.Certificate, caKey crypto.Signer, force bool) (bool, error) {
	crtPath, keyPath := p.Path(name+".crt"), p.Path(name+".key")
	if !force {
		cert, _, err := loadPair(crtPath, keyPath)
		if err == nil && cert.CheckSignatureFrom(ca) == nil && time.Until(cert.NotAfter) > renewBefore && sameIdentity(cert, tmpl) {
			return false, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, fmt.Errorf("generate %s key: %w", name, err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	cert, err := sign(tmpl, key.Public(), ca, caKey, leafValidity)
	if err != nil {
		return false, fmt.Errorf("sign %s certificate: %w", name, err)
	}
	return true, writePair(crtPath, keyPath, cert, key)
}

// sameIdentity reports whether cert was issued for the subject and SANs of tmpl.
func sameIdentity(cert, tmpl *x509.Certificate) bool {
	if cert.Subject.CommonName != tmpl.Subject.CommonName || fmt.Sprint(cert.Subject.Organization) != fmt.Sprint(tmpl.Subject.Organization) {
		return false
	}
	if len(cert.IPAddresses) != len(tmpl.IPAddresses) || fmt.Sprint(cert.DNSNames) != fmt.Sprint(tmpl.DNSNames) {
		return false
	}
	for i := range cert.IPAddresses {
		if !cert.IPAddresses[i].Equal(tmpl.IPAddresses[i]) {
			return false
		}
	}
	return true
}

// ensureServiceAccountKey creates the key pair that signs service account
// tokens: ECDSA P-256 (ES256), a few milliseconds to generate where an RSA
// key costs a third of a second of a cold start. A data dir made before
// keeps its RSA key.
func (p *PKI) ensureServiceAccountKey() error {
	if _, err := os.Stat(p.Path("sa.key")); err == nil {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("encode service account public key: %w", err)
	}
	if err := config.WriteFileAtomic(p.Path("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return err
	}
	privDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode service account key: %w", err)
	}
	return config.WriteFileAtomic(p.Path("sa.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: privDER}), 0o600)
}

// WriteAdminKubeconfig writes the admin kubeconfig (context "octo") to path.
func (p *PKI) WriteAdminKubeconfig(path string) error { return p.writeKubeconfig("admin", path) }

// Kubeconfig returns the kubeconfig of a client identity, named "octo" for
// cluster, user and context, with certificates embedded.
func (p *PKI) Kubeconfig(name string) (*clientcmdapi.Config, error) {
	ca, err := os.ReadFile(p.Path("ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	crt, err := os.ReadFile(p.Path(name + ".crt"))
	if err != nil {
		return nil, fmt.Errorf("read %s certificate: %w", name, err)
	}
	key, err := os.ReadFile(p.Path(name + ".key"))
	if err != nil {
		return nil, fmt.Errorf("read %s key: %w", name, err)
	}
	c := clientcmdapi.NewConfig()
	c.Clusters["octo"] = &clientcmdapi.Cluster{Server: p.APIServer, CertificateAuthorityData: ca}
	c.AuthInfos["octo"] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	c.Contexts["octo"] = &clientcmdapi.Context{Cluster: "octo", AuthInfo: "octo"}
	c.CurrentContext = "octo"
	return c, nil
}

func (p *PKI) writeKubeconfig(name, path string) error {
	c, err := p.Kubeconfig(name)
	if err != nil {
		return err
	}
	b, err := clientcmd.Write(*c)
	if err != nil {
		return fmt.Errorf("encode %s kubeconfig: %w", name, err)
	}
	return config.WriteFileAtomic(path, b, 0o600)
}

func sign(tmpl *x509.Certificate, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(validity)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func writePair(crtPath, keyPath string, cert *x509.Certificate, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", keyPath, err)
	}
	if err := config.WriteFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return config.WriteFileAtomic(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
}

func loadPair(crtPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	crtPEM, err := os.ReadFile(crtPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(crtPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("%s or %s is not PEM", crtPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", crtPath, err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", keyPath, err)
	}
	return cert, key, nil
}
