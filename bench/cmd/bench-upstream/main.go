// Command bench-upstream is the service behind every proxy in the bench: it
// answers each request with the same 1 KiB JSON document, except that paths
// under /refuse answer 409, which makes a paywall release the payment instead
// of settling it (the bench's verification-only workload).
//
//	bench-upstream -listen 127.0.0.1:0    # prints "listening on ADDR"
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to serve on")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	body := document(1024)
	length := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Content-Type"] = []string{"application/json"}
		hd["Content-Length"] = []string{length}
		if strings.HasPrefix(r.URL.Path, "/refuse") {
			w.WriteHeader(http.StatusConflict)
		}
		w.Write(body)
	})
	fmt.Fprintf(os.Stdout, "listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Fatal(srv.Serve(ln))
}

// document is a JSON object of exactly n bytes (n ≥ 16).
func document(n int) []byte {
	head := `{"data":"`
	tail := "\"}\n"
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}
