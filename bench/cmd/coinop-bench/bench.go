package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coinop/coinop/bench/loadgen"
	"github.com/coinop/coinop/bench/report"
)

// bench is one run: the binaries it built, the targets it started, and
// what it measured.
type bench struct {
	opts options
	root string
	w    *world

	coinopBin, upstreamBin, self string

	upstream   string // base URLs
	nginx      string
	nginxAuth  string // nginx asking coinop's forward-auth check (auth_request)
	coinop     string
	coinopAuth string // host:port of coinop's forward-auth listener
	ts         string // the TS stack with viem's receipt polling
	tsSeq      string // the same with 25 ms polling, for sequential payments
	upstreamP  *proc
	nginxP     *proc
	nginxAuthP *proc
	coinopP    *proc
	tsProcs    []*proc
	tsSeqProcs []*proc
	chain      *chain // coinop's
	tsChain    *chain // the TS stack's (anvil); may be chain itself
	notes      []string
	versions   map[string]string
	asyncRoute bool
	// creditsToken is the bearer token of the pack bought before the
	// credits rows; "" when the purchase failed (the rows are skipped).
	creditsToken string
}

// build compiles the gateway and the upstream from this checkout, with the
// default (cgo) settings a release build uses.
func (b *bench) build(ctx context.Context) error {
	b.coinopBin = filepath.Join(b.w.dir, "coinop")
	b.upstreamBin = filepath.Join(b.w.dir, "bench-upstream")
	for _, t := range []struct{ out, pkg string }{{b.coinopBin, "./cmd/coinop"}, {b.upstreamBin, "./bench/cmd/bench-upstream"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.out, t.pkg)
		cmd.Dir = b.root
		if t.out == b.coinopBin && b.opts.coinopSrc != "" {
			cmd.Dir = b.opts.coinopSrc
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", t.pkg, err, out)
		}
		if err := dropCache(t.out); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b.self = self
	log.Printf("built coinop and bench-upstream")
	return nil
}

// dropCache writes a freshly built binary to disk and drops it from the page
// cache. Pages the linker just wrote can sit in the cache as large folios
// that a process maps whole, so a binary run straight after its build shows
// tens of MB more resident memory than the same binary started later; this
// makes the peak RSS column describe a deployed binary.
func dropCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return err
	}
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// setup starts the upstream, the chain(s), coinop, nginx and the TS stack.
// A target whose tools are missing is skipped with a note.
func (b *bench) setup(ctx context.Context) error {
	b.versions = map[string]string{}
	p, err := b.w.start("upstream", b.upstreamBin, []string{"GOMAXPROCS=" + fmt.Sprint(runtime.NumCPU())}, "-listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	line, err := p.waitLine(ctx, "listening on ", 10*time.Second)
	if err != nil {
		return err
	}
	b.upstream, b.upstreamP = "http://"+strings.TrimPrefix(line, "listening on "), p

	anvil := anvilPath(b.root)
	if anvil != "" {
		if out, err := exec.Command(anvil, "--version").Output(); err == nil {
			b.versions["anvil"] = strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "anvil Version: ")
		}
	}
	switch b.opts.chainKind {
	case "anvil":
		if anvil == "" {
			return fmt.Errorf("anvil is not installed: run bench/deps.sh (or -chain devchain)")
		}
		b.chain, err = startAnvil(ctx, b.w, anvil)
	case "devchain":
		b.chain, err = startDevchain(ctx, b.w, b.self)
	default:
		return fmt.Errorf("-chain %q: want anvil or devchain", b.opts.chainKind)
	}
	if err != nil {
		return err
	}
	log.Printf("%s at %s, token %s", b.chain.Kind, b.chain.RPC, b.chain.Token.Hex())

	if err := b.startCoinop(ctx); err != nil {
		return err
	}
	if b.creditsToken, err = buyCredits(ctx, b.coinop+"/credits", b.chain.Payer); err != nil {
		b.notes = append(b.notes, "credits rows skipped: "+err.Error())
		log.Printf("credits rows skipped: %v", err)
	}
	if err := b.startNginx(ctx); err != nil {
		b.notes = append(b.notes, "nginx rows skipped: "+err.Error())
		log.Printf("nginx skipped: %v", err)
	} else if err := b.startNginxAuth(ctx); err != nil {
		b.notes = append(b.notes, "nginx + coinop auth rows skipped: "+err.Error())
		log.Printf("nginx + coinop auth skipped: %v", err)
	}
	if err := b.startTS(ctx, anvil); err != nil {
		b.notes = append(b.notes, "x402 TypeScript rows skipped: "+err.Error())
		log.Printf("x402 TS stack skipped: %v", err)
	}
	return nil
}

// coinopConfig is the gateway's config: a free route, a priced route that
// settles before it serves (sync), one that serves first and settles in
// the background through the batch settler (async), and a priced route
// whose upstream answers 409 so the payment is verified, journaled and
// released but never settled, and a route charged to prepaid credits (one
// credit a call, from a pack bought once before the rows). Its
// forward-auth listener answers the nginx + coinop auth rows from the same
// routes.
const coinopConfig = `listen: "127.0.0.1:0"
auth:
  listen: "{{auth}}"
upstream: "{{upstream}}"
store: "{{dir}}/coinop.db"
data_dir: "{{dir}}"
unmatched: deny
pay_to: "{{payTo}}"
networks:
  - id: "eip155:{{chainID}}"
    rpc: "{{rpc}}"
    settlement_key_env: COINOP_BENCH_SETTLEMENT_KEY
    receipt_timeout: 30s
    batch_settler: "{{batchSettler}}"
    assets:
      - symbol: USDC
        address: "{{token}}"
        decimals: 6
        eip712_name: "USD Coin"
        eip712_version: "2"
        # One payer signs every bench payment: let a whole run be served
        # ahead of its settlement.
        async_exposure: "1000000 USDC"
rails:
  - name: usdc
    kind: x402
    max_timeout: 1h
  - name: credits
    kind: credits
    plans:
      - name: bench     # more credits than any run spends
        credits: 1000000000
        accept: [{rail: usdc, price: "0.05 USDC"}]
routes:
  - match: "GET /free"
    free: true
  - match: "GET /paid"
    accept: [{rail: usdc, price: "0.001 USDC"}]
    description: "bench document"
    mime_type: application/json
  - match: "GET /paid-async"
    accept: [{rail: usdc, price: "0.001 USDC"}]
    description: "bench document, settled after it is served"
    mime_type: application/json
    settlement: async
  - match: "GET /refuse"
    accept: [{rail: usdc, price: "0.001 USDC"}]
    description: "bench document whose upstream refuses (409): verified, never settled"
    mime_type: application/json
  - match: "GET /credits"
    accept: [{rail: credits, price: "1"}]
    description: "bench document on prepaid credits"
    mime_type: application/json
`

func (b *bench) startCoinop(ctx context.Context) error {
	payTo := addrOf(mustKey())
	authPort, err := freePort()
	if err != nil {
		return err
	}
	b.coinopAuth = fmt.Sprintf("127.0.0.1:%d", authPort)
	cfg := strings.NewReplacer("{{upstream}}", b.upstream, "{{auth}}", b.coinopAuth, "{{dir}}", b.w.dir, "{{payTo}}", payTo.Hex(),
		"{{chainID}}", fmt.Sprint(b.chain.ChainID), "{{rpc}}", b.chain.RPC, "{{token}}", b.chain.Token.Hex(), "{{batchSettler}}", b.chain.BatchSettler.Hex()).Replace(coinopConfig)
	path := filepath.Join(b.w.dir, "coinop.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	env := []string{"COINOP_BENCH_SETTLEMENT_KEY=" + keyHex(b.chain.Settler)}
	if b.opts.coinopEnv != "" {
		env = append(env, strings.Split(b.opts.coinopEnv, ",")...)
	}
	p, err := b.w.start("coinop", b.coinopBin, env, "serve", "-c", path)
	if err != nil {
		return err
	}
	line, err := p.waitLine(ctx, "coinop ready", 30*time.Second)
	if err != nil {
		return err
	}
	b.coinop, b.coinopP = line[strings.LastIndex(line, " ")+1:], p
	log.Printf("coinop at %s", b.coinop)
	return nil
}

// nginxConfig is a plain reverse proxy with upstream keep-alive, one worker
// per core, no access log.
const nginxConfig = `worker_processes {{workers}};
daemon off;
pid {{dir}}/nginx.pid;
error_log {{dir}}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{dir}}/nginx-body;
  proxy_temp_path {{dir}}/nginx-proxy;
  fastcgi_temp_path {{dir}}/nginx-fastcgi;
  uwsgi_temp_path {{dir}}/nginx-uwsgi;
  scgi_temp_path {{dir}}/nginx-scgi;
  upstream backend { server {{upstream}}; keepalive 256; }
  server {
    listen 127.0.0.1:{{port}};
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`

// nginxAuthConfig is nginxConfig asking coinop's forward-auth check about
// every request first, as examples/nginx-auth-request.conf does (the
// refusal fetch, the receipt and payer headers included), with keep-alive
// to the check too.
const nginxAuthConfig = `worker_processes {{workers}};
daemon off;
pid {{dir}}/nginx-auth.pid;
error_log {{dir}}/nginx-auth-error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{dir}}/nginx-auth-body;
  proxy_temp_path {{dir}}/nginx-auth-proxy;
  fastcgi_temp_path {{dir}}/nginx-auth-fastcgi;
  uwsgi_temp_path {{dir}}/nginx-auth-uwsgi;
  scgi_temp_path {{dir}}/nginx-auth-scgi;
  upstream backend { server {{upstream}}; keepalive 256; }
  upstream coinop_auth { server {{auth}}; keepalive 256; }
  server {
    listen 127.0.0.1:{{port}};
    keepalive_requests 1000000;
    auth_request /.coinop/check;
    auth_request_set $coinop_refusal $upstream_http_x_coinop_refusal;
    auth_request_set $coinop_payer $upstream_http_x_coinop_payer;
    auth_request_set $coinop_payment $upstream_http_x_coinop_payment;
    auth_request_set $coinop_receipt $upstream_http_payment_response;
    error_page 401 403 500 = @coinop_refusal;
    add_header PAYMENT-RESPONSE $coinop_receipt always;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header X-Coinop-Payer $coinop_payer;
    proxy_set_header X-Coinop-Payment $coinop_payment;
    proxy_set_header PAYMENT-SIGNATURE "";
    proxy_set_header X-PAYMENT "";
    location / {
      proxy_pass http://backend;
    }
    location = /.coinop/check {
      internal;
      auth_request off;
      proxy_pass http://coinop_auth;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Coinop-Refusal keep;
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
      proxy_read_timeout 90s;
    }
    location @coinop_refusal {
      auth_request off;
      proxy_pass http://coinop_auth/refusal/$coinop_refusal;
      proxy_method GET;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_headers off;
      proxy_pass_request_body off;
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
    }
  }
}
`

func (b *bench) startNginx(ctx context.Context) (err error) {
	b.nginx, b.nginxP, err = b.runNginx(ctx, "nginx", nginxConfig)
	return err
}

func (b *bench) startNginxAuth(ctx context.Context) (err error) {
	b.nginxAuth, b.nginxAuthP, err = b.runNginx(ctx, "nginx-auth", nginxAuthConfig)
	return err
}

// runNginx starts nginx with the config template text as name.
func (b *bench) runNginx(ctx context.Context, name, text string) (string, *proc, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			return "", nil, fmt.Errorf("nginx is not installed (bench/deps.sh installs nginx-light)")
		}
		bin = "/usr/sbin/nginx"
	}
	if out, err := exec.Command(bin, "-v").CombinedOutput(); err == nil {
		b.versions["nginx"] = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cfg := strings.NewReplacer("{{workers}}", fmt.Sprint(runtime.NumCPU()), "{{dir}}", b.w.dir, "{{auth}}", b.coinopAuth,
		"{{upstream}}", strings.TrimPrefix(b.upstream, "http://"), "{{port}}", fmt.Sprint(port)).Replace(text)
	path := filepath.Join(b.w.dir, name+".conf")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", nil, err
	}
	p, err := b.w.start(name, bin, nil, "-c", path, "-p", b.w.dir)
	if err != nil {
		return "", nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	return url, p, waitHTTP(ctx, url+"/free", 10*time.Second)
}

// startTS starts the official facilitator and express server on anvil:
// coinop's chain when that is anvil, else a second anvil of its own.
func (b *bench) startTS(ctx context.Context, anvil string) error {
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("node is not installed")
	}
	dir := filepath.Join(b.root, "bench", "ts")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@x402", "express")); err != nil {
		return fmt.Errorf("bench/ts has no node_modules: run bench/deps.sh")
	}
	if out, err := exec.Command(node, "--version").Output(); err == nil {
		b.versions["node"] = strings.TrimSpace(string(out))
	}
	b.tsChain = b.chain
	if b.chain.Kind != "anvil" {
		if anvil == "" {
			return fmt.Errorf("anvil is not installed")
		}
		if b.tsChain, err = startAnvil(ctx, b.w, anvil); err != nil {
			return err
		}
	}
	env := []string{
		"BENCH_RPC=" + b.tsChain.RPC, "BENCH_CHAIN_ID=" + fmt.Sprint(b.tsChain.ChainID),
		"BENCH_TOKEN=" + b.tsChain.Token.Hex(), "BENCH_PAY_TO=" + addrOf(mustKey()).Hex(),
	}
	if b.ts, b.tsProcs, err = b.startTSPair(ctx, node, dir, "ts", append(env, "BENCH_FACILITATOR_KEY="+keyHex(b.tsChain.Facilitator))); err != nil {
		return err
	}
	seqKey := mustKey()
	if err := fund(ctx, b.tsChain, seqKey); err != nil {
		return err
	}
	if b.tsSeq, b.tsSeqProcs, err = b.startTSPair(ctx, node, dir, "ts-seq", append(env, "BENCH_FACILITATOR_KEY="+keyHex(seqKey), "BENCH_POLL_MS=25")); err != nil {
		return err
	}
	log.Printf("x402 TS stack at %s (and %s)", b.ts, b.tsSeq)
	return nil
}

// startTSPair starts one official facilitator and one express server using it.
func (b *bench) startTSPair(ctx context.Context, node, dir, name string, env []string) (string, []*proc, error) {
	f, err := b.w.start(name+"-facilitator", node, env, filepath.Join(dir, "facilitator.mjs"))
	if err != nil {
		return "", nil, err
	}
	line, err := f.waitLine(ctx, "listening on ", 60*time.Second)
	if err != nil {
		return "", nil, err
	}
	env = append(env, "BENCH_FACILITATOR_URL=http://"+strings.TrimPrefix(line, "listening on "))
	s, err := b.w.start(name+"-server", node, env, filepath.Join(dir, "server.mjs"))
	if err != nil {
		return "", nil, err
	}
	if line, err = s.waitLine(ctx, "listening on ", 60*time.Second); err != nil {
		return "", nil, err
	}
	url := "http://" + strings.TrimPrefix(line, "listening on ")
	return url, []*proc{f, s}, waitHTTP(ctx, url+"/free", 10*time.Second)
}

// waitHTTP polls url until it answers.
func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// workload is one row to measure.
type workload struct {
	id, name, target string
	url              string
	expect           int
	conc             int
	paid             bool
	bearer           string  // a credits token sent with every request
	procs            []*proc // the measured target
	chain            *chain  // whose CPU is reported separately; nil if none
	settles          bool    // leave time for settlements to drain afterwards
	stopAfter        bool    // stop the target after its row (its work goes on in the background)
}

func pids(ps ...*proc) loadgen.Procs {
	var out loadgen.Procs
	for _, p := range ps {
		if p != nil {
			out = append(out, p.pid())
		}
	}
	return out
}

// workloads lists the rows in the order they run: cheap ones first.
func (b *bench) workloads() []workload {
	c, big := b.opts.conc, b.opts.bigConc
	var ws []workload
	add := func(w workload) {
		if w.url != "" && w.procs[0] != nil {
			ws = append(ws, w)
		}
	}
	up := b.upstream
	add(workload{id: "direct", name: "upstream, direct", target: "upstream", url: up + "/free", expect: 200, conc: c, procs: []*proc{b.upstreamP}})
	if b.nginx != "" {
		add(workload{id: "nginx", name: "nginx proxy, free", target: "nginx", url: b.nginx + "/free", expect: 200, conc: c, procs: []*proc{b.nginxP}})
	}
	if b.nginxAuth != "" {
		both := []*proc{b.nginxAuthP, b.coinopP}
		add(workload{id: "nginx-auth-free", name: "nginx + coinop auth, free route", target: "nginx+coinop", url: b.nginxAuth + "/free", expect: 200, conc: c, procs: both})
		add(workload{id: "nginx-auth-challenge", name: "nginx + coinop auth, 402 challenge", target: "nginx+coinop", url: b.nginxAuth + "/paid", expect: 402, conc: c, procs: both})
		if b.creditsToken != "" {
			add(workload{id: "nginx-auth-credits", name: "nginx + coinop auth, credits", target: "nginx+coinop", url: b.nginxAuth + "/credits", expect: 200, conc: c, bearer: b.creditsToken, procs: both})
		}
	}
	add(workload{id: "free", name: "coinop, free route", target: "coinop", url: b.coinop + "/free", expect: 200, conc: c, procs: []*proc{b.coinopP}})
	if b.creditsToken != "" {
		add(workload{id: "credits", name: "coinop, credits", target: "coinop", url: b.coinop + "/credits", expect: 200, conc: c, bearer: b.creditsToken, procs: []*proc{b.coinopP}})
	}
	add(workload{id: "challenge", name: "coinop, 402 challenge", target: "coinop", url: b.coinop + "/paid", expect: 402, conc: c, procs: []*proc{b.coinopP}, chain: b.chain})
	if b.ts != "" {
		add(workload{id: "ts-free", name: "x402 TS express, free route", target: "x402-ts", url: b.ts + "/free", expect: 200, conc: c, procs: b.tsProcs})
		add(workload{id: "ts-challenge", name: "x402 TS express, 402 challenge", target: "x402-ts", url: b.ts + "/paid", expect: 402, conc: c, procs: b.tsProcs})
	}
	add(workload{id: "verify", name: "coinop, paid, verification only", target: "coinop", url: b.coinop + "/refuse", expect: 409, conc: c, paid: true, procs: []*proc{b.coinopP}, chain: b.chain})
	add(workload{id: "sync", name: "coinop, paid, sync settlement", target: "coinop", url: b.coinop + "/paid", expect: 200, conc: c, paid: true, procs: []*proc{b.coinopP}, chain: b.chain, settles: true})
	add(workload{id: "sync-seq", name: "coinop, paid, sync settlement", target: "coinop", url: b.coinop + "/paid", expect: 200, conc: 1, paid: true, procs: []*proc{b.coinopP}, chain: b.chain, settles: true})
	if b.nginxAuth != "" {
		add(workload{id: "nginx-auth-sync", name: "nginx + coinop auth, paid, x402 upfront", target: "nginx+coinop", url: b.nginxAuth + "/paid", expect: 200, conc: c, paid: true, procs: []*proc{b.nginxAuthP, b.coinopP}, chain: b.chain, settles: true})
	}
	if b.ts != "" {
		add(workload{id: "ts-paid", name: "x402 TS express + facilitator, paid", target: "x402-ts", url: b.ts + "/paid", expect: 200, conc: c, paid: true, procs: b.tsProcs, chain: b.tsChain, settles: true})
		add(workload{id: "ts-paid-seq", name: "x402 TS express + facilitator, paid", target: "x402-ts", url: b.tsSeq + "/paid", expect: 200, conc: 1, paid: true, procs: b.tsSeqProcs, chain: b.tsChain, settles: true})
	}
	add(workload{id: "free-big", name: "coinop, free route", target: "coinop", url: b.coinop + "/free", expect: 200, conc: big, procs: []*proc{b.coinopP}})
	add(workload{id: "verify-big", name: "coinop, paid, verification only", target: "coinop", url: b.coinop + "/refuse", expect: 409, conc: big, paid: true, procs: []*proc{b.coinopP}, chain: b.chain})
	// Last: its settlements go on in the background after the row.
	add(workload{id: "async", name: "coinop, paid, async (batched)", target: "coinop", url: b.coinop + "/paid-async", expect: 200, conc: c, paid: true, procs: []*proc{b.coinopP}, chain: b.chain, stopAfter: true})
	if b.opts.only != "" {
		var keep []workload
		for _, w := range ws {
			for _, f := range strings.Split(b.opts.only, ",") {
				if f = strings.TrimSpace(f); f != "" && (strings.Contains(w.id, f) || strings.Contains(w.name, f) || w.target == f) {
					keep = append(keep, w)
					break
				}
			}
		}
		ws = keep
	}
	return ws
}

// measure runs every workload and collects the report.
func (b *bench) measure(ctx context.Context) (*report.Report, error) {
	rep := &report.Report{Duration: b.opts.duration, Machine: machine(b), Notes: b.notes}
	for _, wl := range b.workloads() {
		row, err := b.measureOne(ctx, wl)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", wl.id, err)
		}
		log.Printf("%-12s c=%-4d %8.1f req/s  p50 %6.2f ms  p99 %7.2f ms  cpu %6.0f µs/req  rss %5.1f MB  %v %s",
			row.ID, row.Concurrency, row.Throughput, row.P50, row.P99, row.CPUPerReq, float64(row.PeakRSS)/(1<<20), row.Statuses, row.FirstBad)
		rep.Rows = append(rep.Rows, *row)
	}
	ms, err := b.goMeasures(ctx)
	if err != nil {
		return nil, err
	}
	rep.Measures = ms
	rep.Machine.Load += " before, " + loadAverage() + " after"
	rep.Checks = checks(rep)
	return rep, nil
}

func (b *bench) measureOne(ctx context.Context, wl workload) (*report.Row, error) {
	cfg := loadgen.Config{URL: wl.url, Concurrency: wl.conc, Duration: b.opts.duration, Warmup: b.opts.warmup, Expect: wl.expect}
	var signed int
	if wl.paid {
		n := b.opts.payments
		if wl.conc == 1 {
			n = min(n, 5000)
		}
		header, values, err := presign(ctx, wl.url, b.chainFor(wl).Payer, n)
		if err != nil {
			return nil, fmt.Errorf("pre-sign: %w", err)
		}
		cfg.Header, signed = feed(header, values), n
	}
	if wl.bearer != "" {
		cfg.Header = func(int64) (string, string, bool) { return "Authorization", "Bearer " + wl.bearer, true }
	}
	target := pids(wl.procs...)
	var chainP loadgen.Procs
	if wl.chain != nil {
		chainP = pids(wl.chain.Proc)
	}
	target.ResetPeak()
	before, err := target.Usage()
	if err != nil {
		return nil, err
	}
	chainBefore, _ := chainP.Usage()
	var res *loadgen.Result
	done := make(chan struct{})
	// Usage is sampled when the measured window closes, not after the
	// warm-up: the loadgen reports only measured requests, so the CPU
	// window must match. The warm-up's CPU is subtracted by sampling once
	// it is over.
	go func() {
		defer close(done)
		time.Sleep(b.opts.warmup)
		before, _ = target.Usage()
		chainBefore, _ = chainP.Usage()
	}()
	stopPerf := b.perf(ctx, wl, target)
	var mem map[string]int64
	cfg.OnWindowEnd = func() { mem = target.Status("RssAnon", "RssFile", "Threads") }
	res, err = loadgen.Run(ctx, cfg)
	stopPerf()
	if err != nil {
		return nil, err
	}
	<-done
	after, err := target.Usage()
	if err != nil {
		return nil, err
	}
	chainAfter, _ := chainP.Usage()
	row := &report.Row{
		ID: wl.id, Name: wl.name, Target: wl.target, Concurrency: wl.conc,
		Requests: res.Requests, OK: res.OK, Errors: res.Errors, Expect: wl.expect, Seconds: res.Elapsed.Seconds(),
		Throughput: res.Throughput(), P50: msOf(res.Percentile(0.50)), P99: msOf(res.Percentile(0.99)),
		PeakRSS: after.PeakRSS, Statuses: res.Statuses, FirstBad: res.FirstBad,
		EndedEarly: wl.paid && res.Elapsed < b.opts.duration-50*time.Millisecond,
	}
	if res.Requests > 0 {
		row.CPUPerReq = float64((after.CPU - before.CPU).Microseconds()) / float64(res.Requests)
		if wl.chain != nil {
			row.ChainCPU = float64((chainAfter.CPU - chainBefore.CPU).Microseconds()) / float64(res.Requests)
		}
	}
	_ = signed
	log.Printf("%-12s at the end of the window: anonymous %.1f MB, file %.1f MB, %d threads",
		wl.id, float64(mem["RssAnon"])/(1<<20), float64(mem["RssFile"])/(1<<20), mem["Threads"])
	if wl.stopAfter {
		for _, p := range wl.procs {
			p.stop()
		}
	}
	if wl.settles {
		time.Sleep(2 * time.Second) // settlements of cancelled requests finish
	} else {
		time.Sleep(300 * time.Millisecond)
	}
	return row, nil
}

// perf records the target's first process with perf(1) during the measured
// window of the rows named by -perf; the returned func waits for it.
func (b *bench) perf(ctx context.Context, wl workload, target loadgen.Procs) func() {
	wanted := false
	for _, id := range strings.Split(b.opts.perf, ",") {
		wanted = wanted || strings.TrimSpace(id) == wl.id
	}
	if !wanted || len(target) == 0 {
		return func() {}
	}
	out := filepath.Join(b.w.dir, "perf-"+wl.id+".data")
	secs := fmt.Sprintf("%.1f", b.opts.duration.Seconds()-0.2)
	cmd := exec.CommandContext(ctx, "perf", "record", "-F", "999", "-g", "-o", out, "-p", fmt.Sprint(target[0]), "--", "sleep", secs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(b.opts.warmup)
		if outp, err := cmd.CombinedOutput(); err != nil {
			log.Printf("perf: %v\n%s", err, outp)
			return
		}
		log.Printf("perf profile of %s: perf report -i %s", wl.id, out)
	}()
	return func() { <-done }
}

func (b *bench) chainFor(wl workload) *chain {
	if wl.target == "x402-ts" {
		return b.tsChain
	}
	return b.chain
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// write saves results.md, results.png and results.json and replaces the
// README's results section.
func (b *bench) write(rep *report.Report, args []string) error {
	rep.Command = strings.TrimSpace("go run ./bench/cmd/coinop-bench " + strings.Join(args, " "))
	out := b.opts.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(b.root, out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	md := rep.Markdown()
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var png bytes.Buffer
	if err := rep.WriteChart(&png); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "results.png"), png.Bytes(), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s/results.{md,png,json}", out)
	if b.opts.readme == "" {
		return nil
	}
	return replaceSection(filepath.Join(b.root, b.opts.readme), md)
}

// Markers of the README section the bench rewrites.
const (
	beginMarker = "<!-- bench results: written by coinop-bench -->"
	endMarker   = "<!-- end of bench results -->"
)

func replaceSection(path, md string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no results section (%s … %s)", path, beginMarker, endMarker)
	}
	s = s[:i+len(beginMarker)] + "\n" + md + "\n" + s[j:]
	log.Printf("updated %s", path)
	return os.WriteFile(path, []byte(s), 0o644)
}
