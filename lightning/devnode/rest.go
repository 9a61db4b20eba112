package devnode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/coinop/coinop/lightning"
)

// Server is a Node served over lnd's REST API on loopback.
type Server struct {
	// URL is the REST address: https://127.0.0.1:port.
	URL string
	// MacaroonFile and TLSCertFile are what a client of package
	// lightning/lnd is configured with.
	MacaroonFile string
	TLSCertFile  string

	srv *http.Server
}

// Listen serves n on addr (a loopback address; "127.0.0.1:0" picks a
// port) with a fresh self-signed certificate and macaroon, written to dir
// as tls.cert and dev.macaroon (0600).
func (n *Node) Listen(addr, dir string) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, errors.New("devnode: listens on loopback addresses only")
	}
	mac := make([]byte, 32)
	if _, err := io.ReadFull(n.cfg.Rand, mac); err != nil {
		return nil, err
	}
	certPEM, cert, err := n.selfSigned(host)
	if err != nil {
		return nil, err
	}
	s := &Server{MacaroonFile: filepath.Join(dir, "dev.macaroon"), TLSCertFile: filepath.Join(dir, "tls.cert")}
	if err := writePrivate(s.MacaroonFile, mac); err != nil {
		return nil, err
	}
	if err := writePrivate(s.TLSCertFile, certPEM); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.URL = "https://" + ln.Addr().String()
	s.srv = &http.Server{
		Handler:           n.Handler(mac),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	go s.srv.Serve(tls.NewListener(ln, s.srv.TLSConfig))
	return s, nil
}

// Close stops serving.
func (s *Server) Close() error { return s.srv.Close() }

func writePrivate(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

// selfSigned makes a certificate for host, its own root, as lnd's is.
func (n *Node) selfSigned(host string) ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), n.cfg.Rand)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	now := n.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{Organization: []string{"coinop dev node"}, CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP(host), net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(n.cfg.Rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Handler serves the part of lnd's REST API coinop uses, to callers whose
// Grpc-Metadata-macaroon is mac, hex.
func (n *Node) Handler(mac []byte) http.Handler {
	want := []byte(hex.EncodeToString(mac))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/getinfo", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"identity_pubkey": hex.EncodeToString(n.Pubkey()), "alias": "coinop-dev",
			"synced_to_chain": true, "synced_to_graph": true, "chains": []map[string]string{{"chain": "bitcoin", "network": "regtest"}}})
	})
	mux.HandleFunc("POST /v1/invoices", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			ValueMsat string `json:"value_msat"`
			Value     string `json:"value"`
			Memo      string `json:"memo"`
			Expiry    string `json:"expiry"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
			fail(w, http.StatusBadRequest, 3, "bad request")
			return
		}
		msat, _ := strconv.ParseInt(in.ValueMsat, 10, 64)
		if sat, _ := strconv.ParseInt(in.Value, 10, 64); msat == 0 && sat > 0 {
			msat = sat * 1000
		}
		exp, _ := strconv.ParseInt(in.Expiry, 10, 64)
		inv, err := n.AddInvoice(r.Context(), lightning.InvoiceRequest{AmountMsat: msat, Memo: in.Memo, Expiry: time.Duration(exp) * time.Second})
		if err != nil {
			fail(w, http.StatusBadRequest, 3, err.Error())
			return
		}
		reply(w, map[string]string{"r_hash": base64.StdEncoding.EncodeToString(inv.Hash[:]), "payment_request": inv.PaymentRequest})
	})
	mux.HandleFunc("GET /v1/invoice/{hash}", func(w http.ResponseWriter, r *http.Request) {
		h, err := lightning.ParseHash(r.PathValue("hash"))
		if err != nil {
			fail(w, http.StatusBadRequest, 3, "bad payment hash")
			return
		}
		inv, err := n.LookupInvoice(r.Context(), h)
		if err != nil {
			fail(w, http.StatusNotFound, 5, "unable to locate invoice")
			return
		}
		reply(w, map[string]any{
			"r_hash": base64.StdEncoding.EncodeToString(inv.Hash[:]), "payment_request": inv.PaymentRequest,
			"value_msat": strconv.FormatInt(inv.AmountMsat, 10), "amt_paid_msat": strconv.FormatInt(inv.PaidMsat, 10),
			"state": string(inv.State), "settled": inv.State == lightning.InvoiceSettled,
			"creation_date": strconv.FormatInt(inv.Created.Unix(), 10), "expiry": strconv.FormatInt(int64(inv.Expiry/time.Second), 10),
		})
	})
	mux.HandleFunc("POST /v2/router/send", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			PaymentRequest string `json:"payment_request"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
			fail(w, http.StatusBadRequest, 3, "bad request")
			return
		}
		p, err := n.PayInvoice(r.Context(), in.PaymentRequest, 0)
		if err != nil {
			reply(w, map[string]any{"result": map[string]string{"status": "FAILED", "failure_reason": "FAILURE_REASON_NO_ROUTE"}})
			return
		}
		reply(w, map[string]any{"result": map[string]string{
			"status": "SUCCEEDED", "payment_hash": p.Hash.String(), "payment_preimage": p.Preimage.String(),
			"value_msat": strconv.FormatInt(p.AmountMsat, 10), "fee_msat": "0",
		}})
	})
	mux.HandleFunc("GET /v1/balance/channels", func(w http.ResponseWriter, r *http.Request) {
		b, _ := n.Balance(r.Context())
		reply(w, map[string]any{
			"local_balance":  map[string]string{"sat": strconv.FormatInt(b.LocalMsat/1000, 10), "msat": strconv.FormatInt(b.LocalMsat, 10)},
			"remote_balance": map[string]string{"sat": strconv.FormatInt(b.RemoteMsat/1000, 10), "msat": strconv.FormatInt(b.RemoteMsat, 10)},
		})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := []byte(r.Header.Get("Grpc-Metadata-macaroon")); subtle.ConstantTimeCompare(got, want) != 1 {
			fail(w, http.StatusUnauthorized, 2, "verification failed: signature mismatch after caveat verification")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}
