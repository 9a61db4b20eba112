package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"
)

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// secondsFlag is curl's -m: a number of seconds, decimals allowed ("2.5").
// Go durations ("5s") are refused, as curl refuses them, so that a command
// line means the same under both.
type secondsFlag time.Duration

func (s *secondsFlag) String() string {
	return strconv.FormatFloat(time.Duration(*s).Seconds(), 'f', -1, 64)
}

func (s *secondsFlag) Set(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return errors.New("expected a proper numerical parameter")
	}
	if f < 0 {
		return errors.New("expected a positive numerical parameter")
	}
	*s = secondsFlag(f * float64(time.Second))
	return nil
}

// curlOptions are the curl flags coinop curl understands, with curl's
// meaning; the short and the long name set the same value.
type curlOptions struct {
	pay                              payFlags
	method, output, writeOut         string
	headers, data, json              listFlag
	include, head, location, verbose bool
	fail, showError                  bool
	maxTime                          secondsFlag
}

func (o *curlOptions) register(fs *flag.FlagSet) {
	o.pay.register(fs)
	both := func(short, long string, register func(name string)) { register(short); register(long) }
	both("X", "request", func(n string) {
		fs.StringVar(&o.method, n, "", "request method (default GET, HEAD with -I, POST with -d or --json)")
	})
	both("H", "header", func(n string) {
		fs.Var(&o.headers, n, "request header 'Name: value' (repeatable); 'Name:' removes it, 'Name;' sends it empty")
	})
	both("d", "data", func(n string) {
		fs.Var(&o.data, n, "form body, sent with POST; @FILE reads a file without its newlines, @- stdin (repeatable, joined with &)")
	})
	fs.Var(&o.json, "json", "JSON body, sent with POST and JSON Content-Type and Accept; @FILE, @- as -d (repeatable, concatenated)")
	both("i", "include", func(n string) {
		fs.BoolVar(&o.include, n, false, "write the response status line and headers before the body")
	})
	both("I", "head", func(n string) {
		fs.BoolVar(&o.head, n, false, "send HEAD and write only the status line and headers; never pays")
	})
	both("L", "location", func(n string) { fs.BoolVar(&o.location, n, false, "follow redirects (at most 50)") })
	both("v", "verbose", func(n string) { fs.BoolVar(&o.verbose, n, false, "write the requests and responses' heads to stderr") })
	both("f", "fail", func(n string) {
		fs.BoolVar(&o.fail, n, false, "on a status >= 400 write no body and exit 22 (without it such a response is written and the exit is 0)")
	})
	both("S", "show-error", func(n string) { fs.BoolVar(&o.showError, n, false, "with -s, still write an error message on failure") })
	fs.BoolVar(&o.pay.silent, "silent", false, "the same as -s")
	both("o", "output", func(n string) { fs.StringVar(&o.output, n, "", "write the body to FILE instead of stdout") })
	both("w", "write-out", func(n string) {
		fs.StringVar(&o.writeOut, n, "", "write FORMAT to stdout when done: %{http_code} %{time_total} %{size_download} %{url_effective} %{content_type} %{num_redirects} %{exitcode}, \\n")
	})
	both("m", "max-time", func(n string) {
		fs.Var(&o.maxTime, n, "most SECONDS the whole operation may take (decimals allowed); default no limit")
	})
}

// curlError is a failure with curl's exit code and message, written as
// curl writes it: "(7) Failed to connect to …".
type curlError struct {
	code int
	msg  string
}

func (e *curlError) Error() string { return fmt.Sprintf("(%d) %s", e.code, e.msg) }

// transferStats are what -w reports.
type transferStats struct {
	status    int
	size      int64
	url       string
	mediaType string
	redirects int
	exit      int
	start     time.Time
	end       time.Time
}

func runCurl(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("curl", env)
	var o curlOptions
	o.register(fs)
	rawURL, err := parseURLArg(fs, env, args)
	if err != nil {
		return err
	}
	stats := &transferStats{start: time.Now(), url: rawURL}
	err = curl(ctx, &o, rawURL, env, stats)
	stats.end = time.Now()
	var ce *curlError
	var ee *exitError
	switch {
	case errors.As(err, &ce):
		stats.exit = ce.code
	case errors.As(err, &ee):
		stats.exit = ee.code
		err = ee.err
	case err != nil:
		stats.exit = 1
	}
	if o.writeOut != "" {
		writeOut(env.Stdout, env.Stderr, o.writeOut, stats)
	}
	if err == nil {
		return nil
	}
	if o.pay.silent && !o.showError {
		return &exitError{stats.exit, errors.New("")}
	}
	return &exitError{stats.exit, err}
}

// curl makes the request o describes, pays a 402 through the payer and
// writes the response as curl would.
func curl(ctx context.Context, o *curlOptions, rawURL string, env Env, stats *transferStats) error {
	body, contentType, err := requestBody(o, env)
	if err != nil {
		return &curlError{26, err.Error()}
	}
	method := o.method
	switch {
	case method != "":
	case o.head:
		method = http.MethodHead
	case body != nil:
		method = http.MethodPost
	default:
		method = http.MethodGet
	}
	if o.maxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(o.maxTime))
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return &curlError{3, "URL using bad/illegal format or missing URL"}
	}
	req.Header.Set("User-Agent", "coinop-curl")
	req.Header.Set("Accept", "*/*")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if len(o.json) > 0 {
		req.Header.Set("Accept", "application/json")
	}
	for _, h := range o.headers {
		if err := setHeader(req, h); err != nil {
			return &exitError{2, err}
		}
	}

	max, err := o.pay.maxUnits()
	if err != nil {
		return err
	}
	base := curlTransport()
	var rt http.RoundTripper = base
	if o.verbose {
		rt = &verboseTransport{base: base, w: env.Stderr}
	}
	// -I shows a 402's terms; it never spends money on a head.
	hc := &http.Client{Transport: o.pay.transport(rt, max, env, o.head), CheckRedirect: func(next *http.Request, via []*http.Request) error {
		if !o.location {
			return http.ErrUseLastResponse
		}
		if len(via) > 50 {
			return &curlError{47, "Maximum (50) redirects followed"}
		}
		stats.redirects = len(via)
		if o.include || o.head {
			writeHead(env.Stdout, next.Response)
		}
		return nil
	}}
	resp, err := hc.Do(req)
	if err != nil {
		return transferError(err, time.Duration(o.maxTime))
	}
	defer resp.Body.Close()
	stats.status, stats.url = resp.StatusCode, resp.Request.URL.String()
	stats.mediaType = resp.Header.Get("Content-Type")
	if !o.pay.silent {
		reportSettlement(env.Stderr, resp)
	}
	if o.include || o.head {
		writeHead(env.Stdout, resp)
	}
	if o.fail && resp.StatusCode >= 400 {
		return &curlError{22, fmt.Sprintf("The requested URL returned error: %d", resp.StatusCode)}
	}
	out := env.Stdout
	if o.output != "" {
		f, err := os.Create(o.output)
		if err != nil {
			return &curlError{23, fmt.Sprintf("Failure writing output to destination: %v", err)}
		}
		defer f.Close()
		out = f
		if !o.pay.silent && isTerminal(env.Stderr) {
			p := &progress{out: env.Stderr, total: resp.ContentLength, start: time.Now()}
			defer p.done()
			out = io.MultiWriter(f, p)
		}
	}
	n, err := io.Copy(outputWriter{out}, resp.Body)
	stats.size = n
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return &curlError{23, "Failure writing output to destination"}
		}
		return transferError(err, time.Duration(o.maxTime))
	}
	if f, ok := out.(*os.File); ok {
		if err := f.Close(); err != nil {
			return &curlError{23, fmt.Sprintf("Failure writing output to destination: %v", err)}
		}
	}
	return nil
}

// writeError marks a failure of the output (curl's 23), not of the
// transfer.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// outputWriter marks its writer's errors as writeErrors.
type outputWriter struct{ w io.Writer }

func (o outputWriter) Write(b []byte) (int, error) {
	n, err := o.w.Write(b)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// requestBody joins -d parts with & (form) or --json parts as they are,
// and names the Content-Type curl would send with them.
func requestBody(o *curlOptions, env Env) ([]byte, string, error) {
	if len(o.data) == 0 && len(o.json) == 0 {
		return nil, "", nil
	}
	var parts []string
	for _, d := range o.data {
		s, err := readData(d, env)
		if err != nil {
			return nil, "", err
		}
		if strings.HasPrefix(d, "@") {
			s = strings.NewReplacer("\r", "", "\n", "").Replace(s)
		}
		parts = append(parts, s)
	}
	body := strings.Join(parts, "&")
	for _, j := range o.json {
		s, err := readData(j, env)
		if err != nil {
			return nil, "", err
		}
		body += s
	}
	if len(o.json) > 0 {
		return []byte(body), "application/json", nil
	}
	return []byte(body), "application/x-www-form-urlencoded", nil
}

func readData(d string, env Env) (string, error) {
	name, ok := strings.CutPrefix(d, "@")
	if !ok {
		return d, nil
	}
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(env.Stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	return string(b), err
}

// setHeader applies one -H: "Name: value" sets, "Name:" removes (curl's
// way to drop a default header), "Name;" sends it empty.
func setHeader(req *http.Request, h string) error {
	if name, ok := strings.CutSuffix(strings.TrimSpace(h), ";"); ok && !strings.Contains(name, ":") {
		req.Header[http.CanonicalHeaderKey(name)] = []string{""}
		return nil
	}
	k, v, ok := strings.Cut(h, ":")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !ok || k == "" {
		return fmt.Errorf("-H %q: want 'Name: value'", h)
	}
	switch {
	case v == "":
		req.Header.Del(k)
	case strings.EqualFold(k, "Host"):
		req.Host = v
	default:
		req.Header.Set(k, v)
	}
	return nil
}

// curlTransport is http.DefaultTransport without transparent gzip: like
// curl without --compressed, the body is written as it arrived.
func curlTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DisableCompression = true
	return t
}

// writeHead writes a response's status line and headers as they came, the
// way curl -i does (header order is not kept by net/http: sorted by name).
func writeHead(w io.Writer, resp *http.Response) {
	fmt.Fprintf(w, "%s %s\r\n", resp.Proto, resp.Status)
	h := resp.Header.Clone()
	if len(resp.TransferEncoding) > 0 {
		h["Transfer-Encoding"] = resp.TransferEncoding
	}
	writeHeaders(w, "", "\r\n", h)
	fmt.Fprint(w, "\r\n")
}

// writeOut expands a -w format as curl does: %{variable}, %% and the
// escapes \n \r \t \\. An unknown variable is named on stderr and writes
// nothing.
func writeOut(w, errw io.Writer, format string, s *transferStats) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c == '\\' && i+1 < len(format) && strings.IndexByte(`nrt\`, format[i+1]) >= 0:
			b.WriteByte(map[byte]byte{'n': '\n', 'r': '\r', 't': '\t', '\\': '\\'}[format[i+1]])
			i++
		case c == '%' && strings.HasPrefix(format[i:], "%%"):
			b.WriteByte('%')
			i++
		case c == '%' && strings.HasPrefix(format[i:], "%{") && strings.IndexByte(format[i:], '}') > 0:
			end := i + strings.IndexByte(format[i:], '}')
			name := format[i+2 : end]
			if v, ok := s.variable(name); ok {
				b.WriteString(v)
			} else {
				fmt.Fprintf(errw, "coinop curl: unknown --write-out variable: '%s'\n", name)
			}
			i = end
		default:
			b.WriteByte(c)
		}
	}
	io.WriteString(w, b.String())
}

func (s *transferStats) variable(name string) (string, bool) {
	switch name {
	case "http_code", "response_code":
		return fmt.Sprintf("%03d", s.status), true
	case "time_total":
		return fmt.Sprintf("%.6f", s.end.Sub(s.start).Seconds()), true
	case "size_download":
		return strconv.FormatInt(s.size, 10), true
	case "url_effective":
		return s.url, true
	case "content_type":
		return s.mediaType, true
	case "num_redirects":
		return strconv.Itoa(s.redirects), true
	case "exitcode":
		return strconv.Itoa(s.exit), true
	}
	return "", false
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress writes a one-line download progress to a terminal.
type progress struct {
	out   io.Writer
	total int64
	n     int64
	start time.Time
	last  time.Time
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond {
		p.last = now
		p.print()
	}
	return len(b), nil
}

func (p *progress) print() {
	rate := float64(p.n) / max(time.Since(p.start).Seconds(), 0.001)
	if p.total > 0 {
		fmt.Fprintf(p.out, "\r%s / %s  %3d%%  %s/s   ", size(p.n), size(p.total), p.n*100/p.total, size(int64(rate)))
	} else {
		fmt.Fprintf(p.out, "\r%s  %s/s   ", size(p.n), size(int64(rate)))
	}
}

func (p *progress) done() {
	p.print()
	fmt.Fprintln(p.out)
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// parseURLArg parses flags around exactly one URL, curl-style. A URL
// without a scheme is http; one that does not parse, or has no host, is
// curl's exit 3; a scheme other than http and https is curl's exit 1.
func parseURLArg(fs *flag.FlagSet, env Env, args []string) (string, error) {
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return "", err
	}
	if len(pos) == 0 {
		return "", &exitError{2, errors.New("no URL specified; try 'coinop " + fs.Name() + " --help'")}
	}
	if len(pos) > 1 {
		return "", &exitError{2, fmt.Errorf("want one URL, got %d (%s)", len(pos), strings.Join(pos, " "))}
	}
	raw := pos[0]
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", &exitError{3, errors.New("(3) URL using bad/illegal format or missing URL")}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", &exitError{1, fmt.Errorf("(1) Protocol %q not supported", u.Scheme)}
	}
	if u.Path == "" && u.RawQuery == "" {
		// curl requests / for a bare host, and reports that URL.
		u.Path = "/"
	}
	return u.String(), nil
}
