package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMeter measures a phase's CPU: what this process used (the ledger and the embedded
// server together) and what every other process on the machine used meanwhile. On a
// shared machine the second number says how much a figure was disturbed; CPU time per
// event is the figure that disturbance changes least.
type cpuMeter struct {
	start      time.Time
	self       time.Duration
	machine    time.Duration
	hasMachine bool
}

// cpuUsage is a phase's CPU accounting.
type cpuUsage struct {
	// SelfCores is this process's CPU time divided by the wall time.
	SelfCores float64 `json:"self_cores"`
	// OtherCores is the CPU time of every other process divided by the wall time
	// (0 when /proc/stat cannot be read).
	OtherCores float64 `json:"other_cores"`
	// SelfSeconds is this process's CPU time.
	SelfSeconds float64 `json:"self_cpu_seconds"`
}

func startCPU() cpuMeter {
	m := cpuMeter{start: time.Now(), self: selfCPU()}
	m.machine, m.hasMachine = machineBusy()
	return m
}

func (m cpuMeter) stop() cpuUsage {
	wall := time.Since(m.start).Seconds()
	self := selfCPU() - m.self
	u := cpuUsage{SelfSeconds: self.Seconds(), SelfCores: self.Seconds() / wall}
	if busy, ok := machineBusy(); ok && m.hasMachine {
		u.OtherCores = max(0, (busy-m.machine-self).Seconds()/wall)
	}
	return u
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy is the CPU time all processes used since boot, from /proc/stat (Linux).
func machineBusy() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 8 || fields[0] != "cpu" {
		return 0, false
	}
	var busy uint64
	// user nice system idle iowait irq softirq steal: everything but idle and iowait.
	for i, f := range fields[1:8] {
		if i == 3 || i == 4 {
			continue
		}
		v, _ := strconv.ParseUint(f, 10, 64)
		busy += v
	}
	// USER_HZ is 100 on every Linux this runs on.
	return time.Duration(busy) * 10 * time.Millisecond, true
}
