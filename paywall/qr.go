package paywall

import (
	"html/template"
	"strconv"
	"strings"

	"github.com/skip2/go-qrcode"
)

// qrModule is the size of one QR module in CSS pixels, for the SVG's
// intrinsic size (the page's styles may scale it).
const qrModule = 4

// qrSVG renders text as a QR code (error correction level M) in inline
// SVG: dark modules on a light background with the 4-module quiet zone
// the standard asks for, all the modules in one <path> (each row's runs of
// dark modules as 1-unit-wide strokes), and label as the image's
// accessible name. It renders on the server, so the code shows with
// JavaScript off.
func qrSVG(text, label string) (template.HTML, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", err
	}
	bm := q.Bitmap() // with the quiet zone
	n := strconv.Itoa(len(bm))
	px := strconv.Itoa(len(bm) * qrModule)
	var b strings.Builder
	b.Grow(len(bm) * len(bm) / 2)
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ` + n + ` ` + n + `" width="` + px + `" height="` + px +
		`" role="img" aria-label="` + template.HTMLEscapeString(label) + `" shape-rendering="crispEdges"><rect width="` + n + `" height="` + n +
		`" fill="#fff"/><path stroke="#000" d="`)
	for y, row := range bm {
		// Within a row, m moves relative to the end of the last run.
		at := -1
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			w := 1
			for x+w < len(row) && row[x+w] {
				w++
			}
			if at < 0 {
				b.WriteString("M" + strconv.Itoa(x) + " " + strconv.Itoa(y) + ".5")
			} else {
				b.WriteString("m" + strconv.Itoa(x-at) + " 0")
			}
			b.WriteString("h" + strconv.Itoa(w))
			at = x + w
			x += w
		}
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String()), nil
}
