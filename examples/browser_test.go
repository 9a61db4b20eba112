//go:build unix

package examples_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"image"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coinop/coinop/x402"
)

// chromium runs headless Chromium once with a fresh profile, bounded in
// time, and returns its standard output. The flags keep it from reaching
// anything but the page.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := tool(t, "chromium", "/usr/bin/chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	flags := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
		"--user-data-dir=" + t.TempDir(),
	}
	cmd := exec.CommandContext(ctx, bin, append(flags, args...)...)
	stdout, stderr, err := runGroup(cmd)
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// runGroup runs cmd in a process group of its own, which is killed whole
// when cmd's context ends and again once cmd exited: a browser's helper
// processes go with it. It returns the standard output and error.
func runGroup(cmd *exec.Cmd) (stdout, stderr []byte, err error) {
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers left behind
	}
	return out.Bytes(), errOut.Bytes(), err
}

// TestBrowserPaywallPage loads a priced URL of `coinop dev` in headless
// Chromium: the browser gets a readable HTML 402 page that says what it
// costs and how to pay, with the machine-readable headers still present.
func TestBrowserPaywallPage(t *testing.T) {
	d := startDev(t)
	url := d.gateway + "/weather"

	t.Run("the HTML 402 keeps the payment headers", func(t *testing.T) {
		resp, body := get(t, url, "", "Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		if resp.StatusCode != http.StatusPaymentRequired || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s %s\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
		}
		var pr x402.PaymentRequired
		if err := x402.DecodeHeader(resp.Header.Get(x402.HeaderPaymentRequired), &pr); err != nil || len(pr.Accepts) != 1 || pr.Accepts[0].Amount != "1000" {
			t.Fatalf("PAYMENT-REQUIRED %+v %v", pr, err)
		}
		if resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "PAYMENT-REQUIRED") {
			t.Errorf("headers %v", resp.Header)
		}
		// A URL with shell metacharacters is quoted in the commands.
		_, withQuery := get(t, url+"?units=c&days=2", "", "Accept", "text/html")
		if want := "coinop curl &#39;" + url + "?units=c&amp;days=2&#39;\n"; !strings.Contains(string(withQuery), want) {
			t.Errorf("the page has no %q:\n%s", want, withQuery)
		}
		// Self-contained: nothing loaded from anywhere (no src, no link but
		// the empty icon), and its one script runs by hash.
		html := string(body)
		if strings.Contains(html, "src=") || strings.Count(html, "href=") != strings.Count(html, `href="data:,"`) {
			t.Errorf("the page is not self-contained:\n%s", body)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(html, -1)
		if len(scripts) != 1 || !strings.Contains(csp, "default-src 'none'") {
			t.Fatalf("%d scripts; CSP %q", len(scripts), csp)
		}
		sum := sha256.Sum256([]byte(scripts[0][1]))
		if want := "script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
			t.Errorf("CSP %q does not allow the page's script (%s)", csp, want)
		}
	})

	t.Run("Chromium renders the page", func(t *testing.T) {
		dom := string(chromium(t, "--dump-dom", url))
		for _, want := range []string{
			"<title>402 Payment Required — 0.001 USDC</title>",
			`<p class="price" id="price">0.001 USDC</p>`,
			"GET /weather costs 0.001 USDC",
			"coinop curl " + url,
			`curl -H "PAYMENT-SIGNATURE: $(coinop sign ` + url + `)" ` + url,
			d.state.Network, d.state.Token, d.state.Payee,
			"<code>PAYMENT-REQUIRED</code>",
		} {
			if !strings.Contains(dom, want) {
				t.Errorf("the page has no %q", want)
			}
		}
		if t.Failed() {
			t.Logf("DOM:\n%s", dom)
		}
	})

	t.Run("Chromium's screenshot shows it", func(t *testing.T) {
		shot := filepath.Join(t.ArtifactDir(), "402.png")
		chromium(t, "--screenshot="+shot, "--window-size=1000,800", url)
		f, err := os.Open(shot)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("screenshot is not a PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 600 || b.Dx() > 2000 || b.Dy() > 1600 {
			t.Fatalf("screenshot is %v, want about 1000x800", b)
		}
		ink, accent, colors := inspect(img)
		t.Logf("screenshot %v: %.2f%% dark pixels, %d accent pixels, %d colors", img.Bounds().Size(), 100*ink, accent, colors)
		// Text covers a few per cent of a page like this one; a blank or
		// error page has none or next to none, and no accent bar.
		if ink < 0.01 || ink > 0.5 || accent < 200 || colors < 16 {
			t.Errorf("screenshot does not look like the page: %.2f%% dark pixels, %d accent pixels, %d colors (saved in %s)",
				100*ink, accent, colors, shot)
		}
	})
}

// inspect measures a screenshot: the share of dark (text) pixels, the
// number of pixels in the page's amber accent, and the number of distinct
// colors (up to 1000).
func inspect(img image.Image) (ink float64, accent, colors int) {
	b := img.Bounds()
	seen := map[[3]uint32]bool{}
	dark := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if len(seen) < 1000 {
				seen[[3]uint32{r, g, bl}] = true
			}
			if (r*299+g*587+bl*114)/1000 < 100 {
				dark++
			}
			if r > 150 && g > 80 && g < 150 && bl < 60 {
				accent++
			}
		}
	}
	return float64(dark) / float64(b.Dx()*b.Dy()), accent, len(seen)
}
