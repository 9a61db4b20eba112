// Package adversarial attacks coinop's own enforcement point the way a
// client that wants paid content for free would, and checks that it holds.
//
// Its tests (go test ./adversarial) send every request target of
// testdata/paths.txt, byte for byte over raw TCP, to an in-process `coinop
// serve` gateway on the embedded dev chain, in front of real upstreams that
// serve files: Go's http.FileServer, Python's http.server, nginx, PHP's
// built-in server and Apache httpd (with path info accepted). The property,
// for every target and upstream: the gateway refuses (4xx, including 402),
// or the answer is the file the route decision named on a free route; the
// paid file's content never appears in an unpaid response. The same holds
// for other methods on the paid file, method- and URL-override headers, and
// a request smuggled in a GET body. Upstreams that are not installed are
// skipped, or fail the test when COINOP_CI=1.
package adversarial
