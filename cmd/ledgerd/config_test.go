package main

import (
	"os"
	"runtime/debug"
	"testing"
	"time"
)

// TestConfigFromEnvironment: every flag can come from LEDGER_ + its name; the command
// line wins over the environment.
func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv("LEDGER_DATA_DIR", "/tmp/from-env")
	t.Setenv("LEDGER_HTTP_ADDR", "127.0.0.1:9999")
	t.Setenv("LEDGER_TOP_UP_MAX_ATTEMPTS", "5")
	t.Setenv("LEDGER_TOP_UP_RETRY_BASE", "30s")
	t.Setenv("LEDGER_PAYMENT_GATEWAY", "sandbox")
	cfg, err := parseConfig([]string{"--http-addr", "127.0.0.1:7777"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/tmp/from-env" || cfg.HTTPAddr != "127.0.0.1:7777" || cfg.TopUpMaxAttempts != 5 || cfg.TopUpRetryBase != 30*time.Second {
		t.Fatalf("config %+v", cfg)
	}
	t.Setenv("LEDGER_GC_PERCENT", "200")
	if cfg, err = parseConfig(nil); err != nil || cfg.GCPercent != 200 {
		t.Fatalf("LEDGER_GC_PERCENT=200 gave %d, %v", cfg.GCPercent, err)
	}
	t.Setenv("LEDGER_GC_PERCENT", "10")
	if _, err := parseConfig(nil); err == nil {
		t.Fatal("--gc-percent 10 was accepted")
	}
	os.Unsetenv("LEDGER_GC_PERCENT") // t.Setenv restores it after the test
	t.Setenv("LEDGER_TOP_UP_MAX_ATTEMPTS", "many")
	if _, err := parseConfig(nil); err == nil {
		t.Fatal("a malformed LEDGER_TOP_UP_MAX_ATTEMPTS was accepted")
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "./data" || cfg.HTTPAddr != "127.0.0.1:8080" || cfg.NATSListen != "127.0.0.1:4222" || cfg.Store != "jetstream" ||
		cfg.PaymentGateway != "sandbox" || cfg.TopUpMaxAttempts != 3 || cfg.TopUpRetryBase != time.Minute || cfg.AutoTopUpDailyMax != 10 ||
		cfg.GCPercent != gcPercentDefault {
		t.Fatalf("defaults %+v", cfg)
	}
}

// TestGCPercentYieldsToGOGC: --gc-percent applies only when the environment sets no GOGC.
func TestGCPercentYieldsToGOGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150) // what the runtime did with GOGC=150 at start
	setGCPercent(400)
	if got := debug.SetGCPercent(150); got != 150 {
		t.Fatalf("with GOGC set, the collector target became %d, want GOGC's 150", got)
	}
	os.Unsetenv("GOGC") // t.Setenv restores it after the test
	setGCPercent(400)
	if got := debug.SetGCPercent(100); got != 400 {
		t.Fatalf("without GOGC, the collector target is %d, want --gc-percent's 400", got)
	}
}
