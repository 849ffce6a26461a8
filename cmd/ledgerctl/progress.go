package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress redraw rates: a terminal is redrawn often enough to look live; a log file or a
// pipe gets a plain line per tenth of the work, or every few seconds when it is slow, so a
// long rebuild neither floods a log nor looks stuck in it.
const (
	progressRedrawMin    = 100 * time.Millisecond
	progressLineEveryMax = 5 * time.Second
	progressBarWidth     = 30
)

// progress reports how far a long job is on stderr: a bar redrawn in place with \r when
// stderr is a terminal, plain periodic lines otherwise. It is safe for concurrent use.
type progress struct {
	w     io.Writer
	label string
	// unit names what done and total count ("events" on JetStream, where store positions
	// are event numbers).
	unit string
	tty  bool
	now  func() time.Time

	mu        sync.Mutex
	start     time.Time
	last      time.Time
	lastTenth int
	drawn     bool
}

func newProgress(w io.Writer, label, unit string) *progress {
	now := time.Now
	return &progress{w: w, label: label, unit: unit, tty: isTerminal(w), now: now, start: now(), lastTenth: -1}
}

// isTerminal reports whether w is a character device, such as a terminal. /dev/null is
// one too, which is harmless: redrawing into it costs nothing.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Update records that done of total events are processed.
func (p *progress) Update(done, total uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.tty {
		if !p.drawn || now.Sub(p.last) >= progressRedrawMin || done >= total {
			fmt.Fprintf(p.w, "\r%s", p.bar(done, total, now))
			p.last, p.drawn = now, true
		}
		return
	}
	tenth := int(fraction(done, total) * 10)
	if tenth > p.lastTenth || now.Sub(p.last) >= progressLineEveryMax {
		fmt.Fprintln(p.w, p.line(done, total, now))
		p.last, p.lastTenth, p.drawn = now, tenth, true
	}
}

// Done ends the report with the final figures on their own line.
func (p *progress) Done(done, total uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\n", p.bar(done, total, now))
		return
	}
	if p.lastTenth < 10 || !p.drawn {
		fmt.Fprintln(p.w, p.line(done, total, now))
	}
}

func (p *progress) bar(done, total uint64, now time.Time) string {
	f := fraction(done, total)
	filled := int(f * progressBarWidth)
	return fmt.Sprintf("%s [%s%s] %3.0f%% %d/%d %s %s ", p.label,
		strings.Repeat("#", filled), strings.Repeat(".", progressBarWidth-filled), f*100, done, total, p.unit, p.elapsed(now))
}

func (p *progress) line(done, total uint64, now time.Time) string {
	return fmt.Sprintf("%s: %3.0f%% %d/%d %s %s", p.label, fraction(done, total)*100, done, total, p.unit, p.elapsed(now))
}

func (p *progress) elapsed(now time.Time) string {
	return now.Sub(p.start).Round(100 * time.Millisecond).String()
}

// fraction is done/total in [0, 1]; an empty job is complete. Events appended while the
// job runs can make done pass the total it was given, hence the cap.
func fraction(done, total uint64) float64 {
	if total == 0 || done >= total {
		return 1
	}
	return float64(done) / float64(total)
}
