package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress rewrites one status line on w every interval until stopped; the line ends
// with the final status and a newline, so a log of the run keeps one line per phase.
type progress struct {
	w        io.Writer
	status   func() string
	stopOnce sync.Once
	done     chan struct{}
	finished chan struct{}
	width    int
}

const progressInterval = 500 * time.Millisecond

func startProgress(w io.Writer, status func() string) *progress {
	p := &progress{w: w, status: status, done: make(chan struct{}), finished: make(chan struct{})}
	go func() {
		defer close(p.finished)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.print("")
			case <-p.done:
				p.print("\n")
				return
			}
		}
	}()
	return p
}

func (p *progress) print(end string) {
	line := p.status()
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s%s", line, pad, end)
}

// stop prints the last status and a newline.
func (p *progress) stop() {
	p.stopOnce.Do(func() {
		close(p.done)
		<-p.finished
	})
}

// rate formats events per second with thousands separators.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// thousands formats n with "," separators.
func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
