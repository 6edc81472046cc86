package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

type pkiPaths struct {
	CACert, CAKey           string
	ServingCert, ServingKey string
	SAKey, SAPub            string
}

func newPKIPaths(dir string) pkiPaths {
	p := func(n string) string { return filepath.Join(dir, "pki", n) }
	return pkiPaths{
		CACert: p("ca.crt"), CAKey: p("ca.key"),
		ServingCert: p("apiserver.crt"), ServingKey: p("apiserver.key"),
		SAKey: p("sa.key"), SAPub: p("sa.pub"),
	}
}

// ensurePKI keeps existing material so a restart against the same DIR serves
// the same CA and still accepts service-account tokens issued before it.
func ensurePKI(p pkiPaths) error {
	all := []string{p.CACert, p.CAKey, p.ServingCert, p.ServingKey, p.SAKey, p.SAPub}
	missing := 0
	for _, f := range all {
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			missing++
		}
	}
	if missing == 0 {
		return nil
	}
	if missing != len(all) {
		// Regenerating only some files would leave a serving cert that the
		// on-disk CA does not sign; refuse rather than guess.
		return fmt.Errorf("%s is incomplete (%d of %d files missing); remove it to regenerate", filepath.Dir(p.CACert), missing, len(all))
	}
	if err := os.MkdirAll(filepath.Dir(p.CACert), 0o700); err != nil {
		return err
	}

	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kubenode-testcluster-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// 10.0.0.1 and the kubernetes.default names are what in-cluster
		// clients use (first IP of --service-cluster-ip-range).
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.0.0.1")},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}

	// RSA because every JWT consumer understands RS256.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}

	for _, w := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{p.CACert, "CERTIFICATE", caDER, 0o644},
		{p.CAKey, "EC PRIVATE KEY", mustECDER(caKey), 0o600},
		{p.ServingCert, "CERTIFICATE", srvDER, 0o644},
		{p.ServingKey, "EC PRIVATE KEY", mustECDER(srvKey), 0o600},
		{p.SAKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey), 0o600},
		{p.SAPub, "PUBLIC KEY", saPub, 0o644},
	} {
		if err := writeFileAtomic(w.path, pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der}), w.mode); err != nil {
			return err
		}
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

func mustECDER(k crypto.Signer) []byte {
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		panic(err)
	}
	return der
}

// writeFileAtomic lets readers polling for a file (ready.json above all)
// never observe a partial write.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
