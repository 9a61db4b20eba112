package l402

// Reason codes of L402 refusals, in the problem document's "reason"
// member. Part of the API: they never change meaning.
const (
	// The Authorization header is not `L402|LSAT <macaroons>:<preimage>`.
	ReasonMalformed = "l402_malformed_credential"
	// Several Authorization headers carry different L402 credentials.
	ReasonAmbiguous = "l402_ambiguous_credential"
	// A macaroon does not decode (base64 or binary).
	ReasonBadMacaroon = "l402_invalid_macaroon"
	// The macaroon's identifier is not version 0 of 66 bytes.
	ReasonUnknownVersion = "l402_unknown_token_version"
	// The preimage does not hash to the token's payment hash.
	ReasonPreimageMismatch = "l402_preimage_mismatch"
	// Several macaroons name different payment hashes.
	ReasonTokensDisagree = "l402_tokens_disagree"
	// No root key is known for the token: never minted here, or expired
	// and forgotten.
	ReasonUnknownToken = "l402_unknown_token"
	// The macaroon's signature chain does not verify.
	ReasonBadSignature = "l402_invalid_signature"
	// A caveat is not condition=value.
	ReasonBadCaveat = "l402_malformed_caveat"
	// The token's valid_until caveat has passed.
	ReasonExpired = "l402_token_expired"
	// The token is for another service.
	ReasonWrongService = "l402_wrong_service"
	// The token is for another route.
	ReasonWrongRoute = "l402_wrong_route"
	// The token is for another HTTP method.
	ReasonWrongMethod = "l402_wrong_method"
	// The node does not know the token's invoice.
	ReasonInvoiceUnknown = "l402_invoice_unknown"
	// The token's invoice is not paid (open, canceled or held).
	ReasonInvoiceNotSettled = "l402_invoice_not_settled"
	// The invoice was paid less than the price.
	ReasonUnderpaid = "l402_invoice_underpaid"
	// Two first requests of a pass at once: the other one collected it;
	// this one may try again, at no charge (503, Retry-After).
	ReasonPassCollected = "l402_pass_collected_concurrently"
	// The Lightning node cannot be asked right now (503, Retry-After).
	ReasonNodeUnavailable = "l402_node_unavailable"
)
