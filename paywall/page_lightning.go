package paywall

import (
	"encoding/hex"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop"
	"github.com/coinop/coinop/lightning/bolt11"
)

// lightningView is the page's Lightning section: the BOLT11 invoice of
// the 402's L402 challenge as a QR code and as text, when it expires, and
// the token that, with the payment's preimage, pays the request.
type lightningView struct {
	// Price is the offer's, for people ("20 sat").
	Price string
	// Invoice is the BOLT11 invoice, lower case, as the rail issued it.
	Invoice string
	// URI is "lightning:" + Invoice, for the link wallets open.
	URI template.URL
	// QR is the inline SVG of "LIGHTNING:" + the invoice upper-cased: all
	// of it is in QR's alphanumeric set, which packs it densely.
	QR template.HTML
	// Expires is when the invoice can no longer be paid.
	Expires time.Time
	// Token is the L402 macaroon, standard base64.
	Token string
	// HowTo is the offer's how-to sentence.
	HowTo string
	// Others counts the Payment scheme's Lightning offers, listed with
	// the other offers (each has an invoice of its own in its challenge).
	Others int
	// Terms is what the page's script pays with; nil when it cannot pay
	// (a request other than a GET).
	Terms *lightningTerms
}

// lightningTerms is what the page's script reads to pay the invoice with
// WebLN or a pasted preimage and send the request again with
// `Authorization: L402 <token>:<preimage>`.
type lightningTerms struct {
	Invoice     string `json:"invoice"`
	Token       string `json:"token"`
	PaymentHash string `json:"paymentHash"` // hex: the preimage's SHA-256
	Price       string `json:"price"`
	AmountMsat  int64  `json:"amountMsat"`
	// Issued and Expires are the invoice's timestamp and end, Unix
	// seconds; the script counts down their difference from when the page
	// loaded, so a browser clock that is off does not matter.
	Issued  int64 `json:"issued"`
	Expires int64 `json:"expires"`
}

// lightningOf builds the Lightning section from the first L402 offer whose
// terms hold an invoice and a token, and whose invoice is what the offer
// says: a valid BOLT11 invoice (signature included) of the offer's network,
// for the offer's amount, with the payment hash the terms name. Nil when
// no offer is such: the page then only lists the offers.
func lightningOf(offers []coinop.Offer, get bool) *lightningView {
	var v *lightningView
	others := 0
	for _, o := range offers {
		if o.Protocol == "mpp" && strings.HasPrefix(o.Network, "lightning:") {
			others++
		}
		if v != nil || o.Protocol != "l402" {
			continue
		}
		v = lightningOffer(o)
	}
	if v == nil {
		return nil
	}
	v.Others = others
	if !get {
		v.Terms = nil
	}
	return v
}

func lightningOffer(o coinop.Offer) *lightningView {
	invoice, _ := o.Terms["invoice"].(string)
	token, _ := o.Terms["token"].(string)
	hash, _ := o.Terms["paymentHash"].(string)
	if invoice == "" || !bech32Text(invoice) || token == "" || !base64Text(token) {
		return nil
	}
	inv, err := bolt11.Decode(invoice)
	if err != nil {
		return nil
	}
	net, ok := strings.CutPrefix(o.Network, "lightning:")
	hashHex := hex.EncodeToString(inv.Hash[:])
	if !ok || bolt11.Prefixes[net] != inv.Network || strconv.FormatInt(inv.AmountMsat, 10) != o.Amount ||
		(hash != "" && !strings.EqualFold(hash, hashHex)) {
		return nil
	}
	qr, err := qrSVG("LIGHTNING:"+strings.ToUpper(invoice), "QR code of the Lightning invoice for "+o.Price)
	if err != nil {
		return nil
	}
	expires := inv.Timestamp.Add(inv.Expiry)
	return &lightningView{
		Price: o.Price, Invoice: invoice, URI: template.URL("lightning:" + invoice), QR: qr, Expires: expires.UTC(), Token: token, HowTo: o.HowTo,
		Terms: &lightningTerms{Invoice: invoice, Token: token, PaymentHash: hashHex, Price: o.Price, AmountMsat: inv.AmountMsat,
			Issued: inv.Timestamp.Unix(), Expires: expires.Unix()},
	}
}

// bech32Text reports whether s is made of lower-case bech32 characters
// only, and so safe in a URL and in the page as it is.
func bech32Text(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// base64Text reports whether s is made of standard base64 characters.
func base64Text(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return len(s) <= 16<<10
}
