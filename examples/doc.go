// Package examples holds working examples of coinop next to software people
// already run, and the tests that run them exactly as they are written:
//
//   - nginx/ and apache/: web server configurations with coinop behind them
//     (front.conf) and in front of them (behind.conf, with
//     coinop-behind.yaml), serving www/;
//   - pay.sh, pay.py and pay.php: plain clients (curl, Python's standard
//     library, PHP's curl extension) that read a 402 and say how to pay;
//     pay.sh then pays with `coinop sign`;
//   - the HTML 402 page a browser gets, loaded in headless Chromium, and
//     paid from with its Pay button by a wallet the test injects (driven by
//     playwright-core through ../interop/browser.mjs).
//
// The configurations are templates: {{LISTEN}}, {{UPSTREAM}}, {{ROOT}} and
// the other {{NAME}} placeholders are filled in by the tests with free
// loopback ports, temporary directories and the values of a `coinop dev`
// chain. docs/webservers.md and docs/clients.md explain them.
//
// The tests need Debian's nginx, apache2, php-cli, php-curl, python3,
// chromium and curl (scripts/deps/webservers.sh installs them), and node with
// interop's npm packages (scripts/deps/interop.sh). Without one, its tests
// are skipped, unless COINOP_CI=1, when they fail.
package examples
