// Package interop holds coinop's peer tests: they pay and get paid by the
// official x402 TypeScript packages (@x402/core, @x402/evm, @x402/fetch,
// @x402/express, and the legacy v1 client x402-fetch) on anvil, with
// coinop's EIP-3009 token deployed by coinop's own code, and assert HTTP
// statuses and the exact token balance changes on chain. See
// docs/interop.md.
//
// The Node scripts next to this file are the peers' side; browser.mjs and
// browser-lightning.mjs (with page.mjs) are the browser's, for
// examples/browser_pay_test.go and browser_lightning_test.go. The npm packages
// and anvil are pinned in package.json and package-lock.json and installed
// by scripts/deps/interop.sh (`npm ci`). Without them the tests skip, or
// fail when COINOP_CI=1. They run on Linux: anvil comes as a Linux binary.
package interop
