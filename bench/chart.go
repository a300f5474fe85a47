package bench

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// libColors gives each library its colour in the charts, in Libraries order.
var libColors = []string{"#9e9e9e", "#d6d6d6", "#8d6e63", "#1e88e5", "#90caf9", "#43a047", "#e53935", "#ef9a9a"}

// chart draws one database's ratios to raw as a horizontal bar chart, one
// group of bars per operation, in plain SVG.
func chart(r *dbRun) string {
	const (
		left, right, top = 150.0, 70.0, 50.0
		width            = 760.0
		barH, gap        = 9.0, 10.0
	)
	maxRatio := 1.0
	for _, op := range Ops {
		for _, lib := range Libraries {
			if s, ok := summary(r.results[cell{r.name, lib.Name, op}]); ok {
				maxRatio = math.Max(maxRatio, s.Ratio)
			}
		}
	}
	// A ratio beyond axisMax would squash every other bar: such a bar
	// stops at the edge and its label carries the figure.
	const axisMax = 4.0
	maxRatio = math.Min(math.Ceil(maxRatio*2)/2, axisMax)
	plotW := width - left - right
	x := func(v float64) float64 { return left + plotW*v/maxRatio }
	var body strings.Builder
	y := top
	for _, op := range Ops {
		groupTop := y
		for i, lib := range Libraries {
			s, ok := summary(r.results[cell{r.name, lib.Name, op}])
			if !ok {
				continue
			}
			fmt.Fprintf(&body, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.2f× raw</title></rect>`+"\n",
				left, y, math.Max(x(math.Min(s.Ratio, maxRatio))-left, 1), barH, libColors[i%len(libColors)], html.EscapeString(lib.Name), op, s.Ratio)
			label := fmt.Sprintf("%.2f", s.Ratio)
			if s.Ratio > maxRatio {
				label += " →"
			}
			fmt.Fprintf(&body, `<text x="%.1f" y="%.1f" font-size="9">%s</text>`+"\n", x(math.Min(s.Ratio, maxRatio))+3, y+barH-1, label)
			y += barH + 1
		}
		fmt.Fprintf(&body, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n", left-6, (groupTop+y)/2+4, op)
		y += gap
	}
	height := y + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="14" font-weight="bold">%s: time per operation, ratio to raw database/sql (lower is faster)</text>`+"\n", left-140, html.EscapeString(r.name))
	// Legend.
	lx := left
	for i, lib := range Libraries {
		fmt.Fprintf(&b, `<rect x="%.0f" y="28" width="10" height="10" fill="%s"/><text x="%.0f" y="37" font-size="11">%s</text>`+"\n", lx, libColors[i%len(libColors)], lx+13, html.EscapeString(lib.Name))
		lx += 85
	}
	// Grid: every 0.5×, with raw's 1× line darker.
	for v := 0.0; v <= maxRatio+1e-9; v += 0.5 {
		stroke, w := "#e0e0e0", 1.0
		if v == 1 {
			stroke, w = "#424242", 1.5
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"/>`+"\n", x(v), top-4, x(v), height-20, stroke, w)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%.1f×</text>`+"\n", x(v), height-8, v)
	}
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return b.String()
}
