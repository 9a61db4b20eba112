// Package lnd speaks to an lnd node over its REST API with net/http: the
// invoices a seller issues and looks up, the payments a buyer makes, the
// channel balance. It needs no lnd library: lnd's REST gateway takes
// JSON, with 64-bit integers as strings and bytes as base64.
//
// The connection is pinned to the node's tls.cert (the only certificate
// accepted, whatever the system trusts), and every call carries the
// macaroon file's bytes, hex, in Grpc-Metadata-macaroon: an invoice
// macaroon suffices for a seller, a buyer needs one that may pay.
package lnd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop/lightning"
)

// Config says how to reach one lnd node.
type Config struct {
	// URL is the node's REST address: "https://127.0.0.1:8080".
	URL string
	// MacaroonFile is the macaroon the calls carry (invoice.macaroon for a
	// seller, admin.macaroon for a buyer).
	MacaroonFile string
	// TLSCertFile is the node's tls.cert, to which the connection is
	// pinned. Required for https URLs.
	TLSCertFile string
	// Timeout bounds each call but payments. If zero, 10 seconds.
	Timeout time.Duration
	// PayTimeout bounds a payment. If zero, 60 seconds.
	PayTimeout time.Duration
}

// Client is an lnd node over REST. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	macaroon string // hex
	hc       *http.Client
	cfg      Config
}

var (
	_ lightning.Invoicer = (*Client)(nil)
	_ lightning.Payer    = (*Client)(nil)
)

// New reads the macaroon and the certificate and returns a client. It does
// not call the node: an unreachable node shows on the first call.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("lnd: URL %q: want https://host:port", cfg.URL)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.PayTimeout == 0 {
		cfg.PayTimeout = 60 * time.Second
	}
	c := &Client{base: u, cfg: cfg}
	if cfg.MacaroonFile != "" {
		b, err := os.ReadFile(cfg.MacaroonFile)
		if err != nil {
			return nil, fmt.Errorf("lnd: macaroon: %w", err)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("lnd: macaroon %s is empty", cfg.MacaroonFile)
		}
		c.macaroon = hex.EncodeToString(b)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a node is reached directly, never through the environment's proxy
	tr.MaxIdleConnsPerHost = 64
	if u.Scheme == "https" {
		if cfg.TLSCertFile == "" {
			return nil, errors.New("lnd: an https URL needs the node's tls.cert (TLSCertFile)")
		}
		pinned, err := readCert(cfg.TLSCertFile)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = pinnedTLS(pinned)
	}
	c.hc = &http.Client{Transport: tr}
	return c, nil
}

// readCert reads the first certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lnd: tls cert: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("lnd: tls cert %s: no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("lnd: tls cert %s: %w", path, err)
	}
	return cert, nil
}

// pinnedTLS accepts exactly the pinned certificate. lnd's tls.cert is
// self-signed, so it is its own root; the name in the URL must be one the
// certificate lists (lnd's --tlsextraip / --tlsextradomain).
func pinnedTLS(pinned *x509.Certificate) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(pinned)
	return &tls.Config{
		RootCAs:    roots,
		MinVersion: tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned.Raw) {
				return errors.New("lnd: the node's certificate is not the pinned tls.cert")
			}
			return nil
		},
	}
}

// Error is an answer lnd gave that is not a success.
type Error struct {
	Status  int    // the HTTP status
	Code    int    // lnd's gRPC code
	Message string // lnd's message
}

func (e *Error) Error() string {
	return fmt.Sprintf("lnd: %d (code %d): %s", e.Status, e.Code, e.Message)
}

// Call makes one REST call: in (if not nil) is sent as JSON, the answer is
// decoded into out (if not nil). Transport failures and answers a node in
// trouble gives (5xx, a refused macaroon) wrap lightning.ErrUnavailable.
func (c *Client) Call(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := c.do(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", lightning.ErrUnavailable, method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return answerError(resp.StatusCode, body)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("lnd: %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	ref, err := url.Parse(path) // a path with its query: "/v1/newaddress?type=…"
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.ResolveReference(ref).String(), rd)
	if err != nil {
		return nil, err
	}
	if c.macaroon != "" {
		req.Header.Set("Grpc-Metadata-macaroon", c.macaroon)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", lightning.ErrUnavailable, method, path, err)
	}
	return resp, nil
}

// answerError turns a non-200 answer into an error: unavailable unless it
// is the caller's fault (a 4xx other than a refused macaroon).
func answerError(status int, body []byte) error {
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	json.Unmarshal(body, &e)
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
	}
	le := &Error{Status: status, Code: e.Code, Message: e.Message}
	switch {
	case status == http.StatusNotFound || e.Code == 5 || strings.Contains(e.Message, "unable to locate invoice"):
		return fmt.Errorf("%w: %w", lightning.ErrNotFound, le)
	case status >= 500 || status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("%w: %w", lightning.ErrUnavailable, le)
	}
	return le
}

// Info is what GetInfo reports.
type Info struct {
	IdentityPubkey string `json:"identity_pubkey"`
	Alias          string `json:"alias"`
	BlockHeight    int64  `json:"block_height"`
	SyncedToChain  bool   `json:"synced_to_chain"`
	SyncedToGraph  bool   `json:"synced_to_graph"`
	Chains         []struct {
		Chain   string `json:"chain"`
		Network string `json:"network"`
	} `json:"chains"`
}

// GetInfo asks the node who it is and whether it is synced.
func (c *Client) GetInfo(ctx context.Context) (*Info, error) {
	var info Info
	if err := c.Call(ctx, http.MethodGet, "/v1/getinfo", nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Probe asks the node whether it answers with this macaroon and
// certificate. With a macaroon that may read node info it returns
// GetInfo's answer; with one that may not (invoice.macaroon) it looks up
// an invoice no node issued, whose "not found" proves the same, and
// returns nil Info.
func (c *Client) Probe(ctx context.Context) (*Info, error) {
	info, err := c.GetInfo(ctx)
	var le *Error
	if err == nil || !errors.As(err, &le) || !strings.Contains(le.Message, "permission denied") {
		return info, err
	}
	if _, err := c.LookupInvoice(ctx, lightning.Hash{}); !errors.Is(err, lightning.ErrNotFound) {
		if err == nil {
			err = errors.New("lnd: answered a lookup of the zero payment hash with an invoice")
		}
		return nil, err
	}
	return nil, nil
}

// int64s is an lnd 64-bit integer: a JSON string (or, leniently, a number).
type int64s int64

func (v *int64s) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	*v = int64s(n)
	return err
}

// AddInvoice implements lightning.Invoicer.
func (c *Client) AddInvoice(ctx context.Context, req lightning.InvoiceRequest) (*lightning.Invoice, error) {
	if req.AmountMsat <= 0 {
		return nil, errors.New("lnd: an invoice needs a positive amount")
	}
	in := map[string]string{"value_msat": strconv.FormatInt(req.AmountMsat, 10), "memo": req.Memo}
	if req.Expiry > 0 {
		in["expiry"] = strconv.FormatInt(int64(req.Expiry/time.Second), 10)
	}
	var out struct {
		RHash          string `json:"r_hash"`
		PaymentRequest string `json:"payment_request"`
	}
	if err := c.Call(ctx, http.MethodPost, "/v1/invoices", in, &out); err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(out.RHash)
	if err != nil || len(raw) != 32 || out.PaymentRequest == "" {
		return nil, fmt.Errorf("lnd: add invoice: unexpected answer (r_hash %q)", out.RHash)
	}
	inv := &lightning.Invoice{PaymentRequest: out.PaymentRequest, AmountMsat: req.AmountMsat, State: lightning.InvoiceOpen, Expiry: req.Expiry}
	copy(inv.Hash[:], raw)
	return inv, nil
}

// LookupInvoice implements lightning.Invoicer.
func (c *Client) LookupInvoice(ctx context.Context, h lightning.Hash) (*lightning.Invoice, error) {
	var out struct {
		PaymentRequest string `json:"payment_request"`
		ValueMsat      int64s `json:"value_msat"`
		AmtPaidMsat    int64s `json:"amt_paid_msat"`
		State          string `json:"state"`
		CreationDate   int64s `json:"creation_date"`
		Expiry         int64s `json:"expiry"`
		RHash          string `json:"r_hash"`
	}
	if err := c.Call(ctx, http.MethodGet, "/v1/invoice/"+h.String(), nil, &out); err != nil {
		return nil, err
	}
	if raw, err := base64.StdEncoding.DecodeString(out.RHash); err != nil || !bytes.Equal(raw, h[:]) {
		// A node answering for another invoice is a node not to trust.
		return nil, fmt.Errorf("%w: lnd answered a lookup of %s with invoice %q", lightning.ErrUnavailable, h, out.RHash)
	}
	return &lightning.Invoice{
		Hash: h, PaymentRequest: out.PaymentRequest, AmountMsat: int64(out.ValueMsat), PaidMsat: int64(out.AmtPaidMsat),
		State: lightning.InvoiceState(out.State), Created: time.Unix(int64(out.CreationDate), 0),
		Expiry: time.Duration(out.Expiry) * time.Second,
	}, nil
}

// PayInvoice implements lightning.Payer through lnd's router
// (/v2/router/send), waiting for the payment's final state.
func (c *Client) PayInvoice(ctx context.Context, invoice string, maxFeeMsat int64) (*lightning.Payment, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PayTimeout+5*time.Second)
	defer cancel()
	in := map[string]any{
		"payment_request":     invoice,
		"timeout_seconds":     int(c.cfg.PayTimeout / time.Second),
		"fee_limit_msat":      strconv.FormatInt(maxFeeMsat, 10),
		"no_inflight_updates": true,
	}
	resp, err := c.do(ctx, http.MethodPost, "/v2/router/send", in)
	if err != nil {
		if notSent(err) {
			return nil, fmt.Errorf("%w: not sent: %w", lightning.ErrPaymentFailed, err)
		}
		return nil, err // it may have reached the node
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, answerError(resp.StatusCode, body)
	}
	// The answer is a stream of JSON objects, one per update.
	dec := json.NewDecoder(bufio.NewReader(io.LimitReader(resp.Body, 16<<20)))
	for {
		var msg struct {
			Result *struct {
				PaymentHash     string `json:"payment_hash"`
				PaymentPreimage string `json:"payment_preimage"`
				ValueMsat       int64s `json:"value_msat"`
				FeeMsat         int64s `json:"fee_msat"`
				Status          string `json:"status"`
				FailureReason   string `json:"failure_reason"`
			} `json:"result"`
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			// The stream ended without a final state: the payment may
			// still be in flight; the caller must not assume it failed.
			return nil, fmt.Errorf("%w: payment stream ended before a final state: %v", lightning.ErrUnavailable, err)
		}
		if msg.Error != nil {
			return nil, fmt.Errorf("%w: %s", lightning.ErrPaymentFailed, msg.Error.Message)
		}
		r := msg.Result
		if r == nil {
			continue
		}
		switch r.Status {
		case "SUCCEEDED":
			p := &lightning.Payment{AmountMsat: int64(r.ValueMsat), FeeMsat: int64(r.FeeMsat)}
			if h, err := hex.DecodeString(r.PaymentHash); err == nil && len(h) == 32 {
				copy(p.Hash[:], h)
			}
			pre, err := hex.DecodeString(r.PaymentPreimage)
			if err != nil || len(pre) != 32 {
				return nil, fmt.Errorf("lnd: payment succeeded without a preimage (%q)", r.PaymentPreimage)
			}
			copy(p.Preimage[:], pre)
			return p, nil
		case "FAILED":
			return nil, fmt.Errorf("%w: %s", lightning.ErrPaymentFailed, r.FailureReason)
		}
	}
}

// notSent reports whether a request failed before the node could have
// read it: no connection, or a TLS handshake the pinned certificate
// refused.
func notSent(err error) bool {
	var op *net.OpError
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	return errors.As(err, &op) && op.Op == "dial" || errors.As(err, &verify) || errors.As(err, &unknown) ||
		strings.Contains(err.Error(), "not the pinned tls.cert")
}

// Balance implements lightning.Payer: the channel balance.
func (c *Client) Balance(ctx context.Context) (lightning.Balance, error) {
	var out struct {
		Local struct {
			Msat int64s `json:"msat"`
		} `json:"local_balance"`
		Remote struct {
			Msat int64s `json:"msat"`
		} `json:"remote_balance"`
	}
	if err := c.Call(ctx, http.MethodGet, "/v1/balance/channels", nil, &out); err != nil {
		return lightning.Balance{}, err
	}
	return lightning.Balance{LocalMsat: int64(out.Local.Msat), RemoteMsat: int64(out.Remote.Msat)}, nil
}
