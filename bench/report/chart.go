package report

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
)

// Colours by target.
var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colText       = color.RGBA{30, 30, 30, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
	colMuted      = color.RGBA{110, 110, 110, 255}
	targetColours = map[string]color.RGBA{
		"upstream": {150, 150, 150, 255},
		"nginx":    {0, 150, 57, 255},
		"coinop":   {33, 102, 172, 255},
		"x402-ts":  {214, 96, 77, 255},
	}
)

// Chart layout, in pixels.
const (
	chartWidth  = 1400
	labelWidth  = 560
	valueWidth  = 330
	rowHeight   = 34
	barHeight   = 22
	headerSpace = 80
	footerSpace = 80
)

// WriteChart draws one horizontal bar per row, requests per second on a
// logarithmic axis (the rows span four orders of magnitude), each bar
// labelled with what ran and annotated with its throughput and latency.
func (r *Report) WriteChart(w io.Writer) error {
	h := headerSpace + len(r.Rows)*rowHeight + footerSpace
	img := image.NewRGBA(image.Rect(0, 0, chartWidth, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{colBackground}, image.Point{}, draw.Src)

	drawText(img, 20, 16, "coinop bench: successful requests per second (log scale)", 3, colText)
	drawText(img, 20, 48, fmt.Sprintf("%d x %s, loopback, closed loop, %s per row", r.Machine.Cores, r.Machine.CPU, r.Duration), 2, colMuted)

	maxT := 1.0
	for _, x := range r.Rows {
		maxT = math.Max(maxT, x.Throughput)
	}
	decades := math.Ceil(math.Log10(maxT))
	if decades < 1 {
		decades = 1
	}
	x0, x1 := labelWidth, chartWidth-valueWidth
	scale := func(v float64) int {
		if v < 1 {
			return x0
		}
		return x0 + int(float64(x1-x0)*math.Log10(v)/decades)
	}
	top, bottom := headerSpace, headerSpace+len(r.Rows)*rowHeight
	for d := 0.0; d <= decades; d++ {
		x := scale(math.Pow(10, d))
		for y := top - 4; y < bottom; y++ {
			img.Set(x, y, colGrid)
		}
		label := decadeLabel(d)
		drawText(img, x-textWidth(label, 2)/2, bottom+10, label, 2, colMuted)
	}
	for i, x := range r.Rows {
		y := top + i*rowHeight
		name := x.Name
		if x.Concurrency > 0 {
			name = fmt.Sprintf("%s, c=%d", name, x.Concurrency)
		}
		if fit := (labelWidth - 30) / (glyphW * 2); len([]rune(name)) > fit {
			name = string([]rune(name)[:fit-2]) + ".."
		}
		drawText(img, 20, y+(barHeight-14)/2+2, name, 2, colText)
		c, ok := targetColours[x.Target]
		if !ok {
			c = colMuted
		}
		end := scale(x.Throughput)
		draw.Draw(img, image.Rect(x0, y+2, max(end, x0+1), y+2+barHeight), &image.Uniform{c}, image.Point{}, draw.Src)
		val := fmt.Sprintf("%s/s  p50 %s ms", num(x.Throughput), ms(x.P50))
		drawText(img, end+8, y+(barHeight-14)/2+2, val, 2, colText)
	}
	x := x0
	for _, t := range []struct{ target, label string }{{"upstream", "upstream"}, {"nginx", "nginx"}, {"coinop", "coinop"}, {"x402-ts", "official x402 TS stack"}} {
		draw.Draw(img, image.Rect(x, bottom+44, x+16, bottom+60), &image.Uniform{targetColours[t.target]}, image.Point{}, draw.Src)
		drawText(img, x+24, bottom+46, t.label, 2, colText)
		x += 24 + textWidth(t.label, 2) + 30
	}
	return png.Encode(w, img)
}

func decadeLabel(d float64) string {
	switch v := math.Pow(10, d); {
	case v >= 1e6:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
