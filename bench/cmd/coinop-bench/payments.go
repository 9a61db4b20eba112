package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"runtime"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/coinop/coinop/client"
	"github.com/coinop/coinop/eip3009"
)

// presign asks url for its 402 and signs n distinct payments for it with the
// payer's key, through the same client code coinop's buyers use, so the
// measured run spends no time signing. Each payment is one EIP-3009
// authorization with its own random nonce, valid for the offer's
// maxTimeoutSeconds.
func presign(ctx context.Context, url string, payer *ecdsa.PrivateKey, n int) (header string, values []string, err error) {
	key, err := eip3009.NewKey(crypto.FromECDSA(payer))
	if err != nil {
		return "", nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPaymentRequired {
		return "", nil, fmt.Errorf("%s answered %d, not 402: %.200s", url, resp.StatusCode, body)
	}
	tr := &client.Transport{Key: key, Policy: client.Policy{MaxAmount: big.NewInt(1_000_000)}}
	// Pay puts the body it reads back on the response it is given: each
	// call gets a response of its own.
	the402 := func() *http.Response {
		r := *resp
		r.Body = io.NopCloser(bytes.NewReader(body))
		return &r
	}
	first, err := tr.Pay(url, the402())
	if err != nil {
		return "", nil, err
	}
	values = make([]string, n)
	workers := runtime.GOMAXPROCS(0)
	var (
		wg   sync.WaitGroup
		once sync.Once
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				p, perr := tr.Pay(url, the402())
				if perr != nil {
					once.Do(func() { err = perr })
					return
				}
				values[i] = p.Value
			}
		})
	}
	wg.Wait()
	return first.Header, values, err
}

// feed hands out pre-signed payments, each once.
func feed(header string, values []string) func(i int64) (string, string, bool) {
	return func(i int64) (string, string, bool) {
		if i >= int64(len(values)) {
			return "", "", false
		}
		return header, values[i], true
	}
}

// buyCredits buys the credits plan url's 402 offers, once, with the payer's
// key through the buyer's credits method, and returns the bearer token.
func buyCredits(ctx context.Context, url string, payer *ecdsa.PrivateKey) (string, error) {
	key, err := eip3009.NewKey(crypto.FromECDSA(payer))
	if err != nil {
		return "", err
	}
	x := &client.X402{Key: key}
	wallet := &client.Credits{Pay: []client.Method{x}}
	hc := &http.Client{Transport: &client.Transport{Methods: []client.Method{wallet}, Policy: client.Policy{MaxAmount: big.NewInt(1_000_000)}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h, ok := wallet.Store.Get(strings.TrimSuffix(url, "/credits"))
	if resp.StatusCode != http.StatusOK || !ok || h.Token == "" {
		return "", fmt.Errorf("buying credits at %s: %d, holding %+v", url, resp.StatusCode, h)
	}
	return h.Token, nil
}
