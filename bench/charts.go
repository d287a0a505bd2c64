package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Charts of a report, as PNG files: latency.png, the latency
// distribution of each message run (percentiles on a log scale, so the
// tail is as visible as the median), and throughput.png, messages sent
// and delivered each second; a join report has join.png instead, each
// join's latencies in order. An idle report has no chart.

// palette is one colour per run, told apart in print too.
var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

// WriteCharts writes the report's charts into dir (made if needed) and
// returns their paths.
func (rep *Report) WriteCharts(dir string) ([]string, error) {
	for _, r := range rep.Runs {
		if r.Join != nil && len(r.Join.PerJoin) > 0 {
			return writeJoinChart(dir, r)
		}
	}
	var runs []*Result
	for _, r := range rep.Runs {
		if r.Messages != nil && r.Messages.Latency.Count > 0 {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	title := rep.title()
	lat, err := latencyChart(runs, title)
	if err != nil {
		return nil, err
	}
	thr, err := throughputChart(runs, title)
	if err != nil {
		return nil, err
	}
	var paths []string
	for name, p := range map[string]*plot.Plot{"latency.png": lat, "throughput.png": thr} {
		path := filepath.Join(dir, name)
		if err := p.Save(9*vg.Inch, 5.5*vg.Inch, path); err != nil {
			return nil, fmt.Errorf("bench: writing %s: %w", path, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// title names the workload and load of the report.
func (rep *Report) title() string {
	s := rep.Settings
	what := s.Workload
	switch s.Workload {
	case WorkloadPairs:
		what = fmt.Sprintf("%d pairs", s.Pairs)
		if s.Cross {
			what += " across two providers"
		}
	case WorkloadGroup:
		what = fmt.Sprintf("group of %d over three providers", s.Members)
	}
	load := fmt.Sprintf("open loop at %g msg/s", s.Rate)
	if s.Mode == "saturation" {
		load = fmt.Sprintf("saturation, window %d", s.Window)
	}
	return fmt.Sprintf("%s, %s, %d-byte payloads, %gs", what, load, s.Size, s.Duration)
}

// percentileX places a percentile on the chart's x axis: 1/(1-p), so that
// 90, 99 and 99.9 are evenly spaced on a log scale.
func percentileX(p float64) float64 { return 1 / (1 - p/100) }

func latencyChart(runs []*Result, title string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "End-to-end latency by percentile\n" + title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms, log scale)"
	p.X.Scale = plot.LogScale{}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = ticks125{}
	var ticks []plot.Tick
	for _, t := range []struct {
		p     float64
		label string
	}{{0, "0%"}, {50, "50%"}, {90, "90%"}, {99, "99%"}, {99.9, "99.9%"}, {99.99, "99.99%"}, {99.999, "99.999%"}} {
		ticks = append(ticks, plot.Tick{Value: percentileX(t.p), Label: t.label})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Add(plotter.NewGrid())
	maxX := 1.0
	for i, r := range runs {
		var xys plotter.XYs
		for _, pc := range r.Messages.Percentiles {
			if pc.Percentile >= 100 {
				continue // the maximum has no place on this axis; the table has it
			}
			x := percentileX(pc.Percentile)
			maxX = max(maxX, x)
			xys = append(xys, plotter.XY{X: x, Y: math.Max(pc.Ms, 0.001)})
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		c := palette[i%len(palette)]
		l.Color, l.Width = c, vg.Points(2)
		pts.Color, pts.Shape = c, draw.CircleGlyph{}
		p.Add(l, pts)
		p.Legend.Add(fmt.Sprintf("%s (p99 %s, max %s)", r.Name(), fmtMs(r.Messages.Latency.P99), fmtMs(r.Messages.Latency.Max)), l)
	}
	p.X.Min, p.X.Max = 1, math.Max(maxX*1.5, 100)
	// The curves rise to the right: the legend goes below them.
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(10)
	return p, nil
}

func throughputChart(runs []*Result, title string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Messages per second\n" + title
	p.X.Label.Text = "seconds since the load started"
	p.Y.Label.Text = "messages per second"
	p.Add(plotter.NewGrid())
	top := 0.0
	for i, r := range runs {
		var sent, delivered plotter.XYs
		for _, s := range r.Messages.PerSecond {
			// Each second's count is plotted at its middle.
			x := float64(s.Second) + 0.5
			sent = append(sent, plotter.XY{X: x, Y: float64(s.Sent)})
			delivered = append(delivered, plotter.XY{X: x, Y: float64(s.Delivered)})
			top = max(top, float64(s.Sent), float64(s.Delivered))
		}
		c := palette[i%len(palette)]
		ld, err := plotter.NewLine(delivered)
		if err != nil {
			return nil, err
		}
		ld.Color, ld.Width = c, vg.Points(2)
		ls, err := plotter.NewLine(sent)
		if err != nil {
			return nil, err
		}
		ls.Color, ls.Width, ls.Dashes = c, vg.Points(1), []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(ld, ls)
		p.Legend.Add(r.Name()+" delivered", ld)
		p.Legend.Add(r.Name()+" sent (acknowledged)", ls)
	}
	// Room above the lines for the legend.
	p.Y.Min, p.Y.Max = 0, math.Max(top, 1)*(1.15+0.08*float64(len(runs)))
	p.Legend.Top = true
	return p, nil
}

// ticks125 labels a log axis at 1, 2 and 5 times each power of ten, so
// that a range within one decade still has labels.
type ticks125 struct{}

func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo && v <= hi {
				out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return out
}

// writeJoinChart writes join.png: for each join, in order (the room one
// device larger each time), the time until the committer merged, until
// the new device's first message was acknowledged and until every member
// had processed the commit (log scale: they differ tenfold and more).
func writeJoinChart(dir string, r *Result) ([]string, error) {
	f := r.Join
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Joining a room of %d over %d providers, one device at a time", f.Members, len(r.Providers))
	p.X.Label.Text = "join (the room has members + join - 1 devices before it)"
	p.Y.Label.Text = "ms since the Invite call (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = ticks125{}
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), 0.0
	for i, m := range []struct {
		name string
		v    func(JoinSample) float64
	}{
		{"committer merged", func(j JoinSample) float64 { return j.CommitMs }},
		{"new device joined and sent", func(j JoinSample) float64 { return j.JoinedSentMs }},
		{"every member processed it", func(j JoinSample) float64 { return j.AllMembersMs }},
	} {
		var xys plotter.XYs
		for _, j := range f.PerJoin {
			y := math.Max(m.v(j), 0.001)
			xys = append(xys, plotter.XY{X: float64(j.Join), Y: y})
			lo, hi = math.Min(lo, y), math.Max(hi, y)
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		c := palette[i%len(palette)]
		l.Color, l.Width = c, vg.Points(2)
		pts.Color, pts.Shape = c, draw.CircleGlyph{}
		p.Add(l, pts)
		p.Legend.Add(m.name, l)
	}
	// Room above the lines for the legend (a log axis: a factor).
	p.Y.Min, p.Y.Max = lo/1.5, hi*4
	p.Legend.Top = true
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "join.png")
	if err := p.Save(9*vg.Inch, 5.5*vg.Inch, path); err != nil {
		return nil, fmt.Errorf("bench: writing %s: %w", path, err)
	}
	return []string{path}, nil
}
