package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/telephony/creditledger/consumers/ingest"
	"github.com/telephony/creditledger/ledger"
)

// The fuzz targets of the ledger's untrusted inputs (issue 7): HTTP JSON bodies, HTTP
// paths and query parameters, the ledger.authorize request, the usage message as it
// arrives on NATS. Their seeds run with every `go test`; CI runs each for a short while
// with -fuzz (see RELIABILITY.md), e.g.
//
//	go test -run '^$' -fuzz '^FuzzHTTPBodies$' -fuzztime 20s ./api

// bodyEndpoints are the requests that carry a JSON body; %s is the fuzzed path segment.
var bodyEndpoints = []struct{ method, path string }{
	{"PUT", "/v1/accounts/%s"},
	{"POST", "/v1/usage"},
	{"POST", "/v1/accounts/%s/adjustments"},
	{"PUT", "/v1/accounts/%s/alert-settings"},
	{"PUT", "/v1/accounts/%s/auto-top-up"},
	{"POST", "/v1/accounts/%s/top-ups"},
	{"POST", "/v1/rejections/%s/retry"},
}

// queryEndpoints are the GET requests; the first %s is the fuzzed path segment, the
// second the fuzzed query (or a second path segment for a top-up id).
var queryEndpoints = []string{
	"/v1/accounts/%s?%s",
	"/v1/accounts/%s/movements?%s",
	"/v1/accounts/%s/movements.csv?%s",
	"/v1/accounts/%s/usage-summary?%s",
	"/v1/accounts/%s/top-ups?%s",
	"/v1/accounts/%s/top-ups/%s",
	"/v1/accounts/%s/authorize?%s",
	"/v1/rejections?account_id=%s&%s",
}

// fuzzServer opens the account the seeds use.
func fuzzServer(f *testing.F) *testServer {
	ts := newTestServer(f, Options{})
	if r := ts.mustServe(f, "PUT", "/v1/accounts/acme", `{"currency":"USD"}`); r.status != http.StatusCreated {
		f.Fatalf("open acme: %d %s", r.status, r.body)
	}
	if r := ts.mustServe(f, "POST", "/v1/accounts/acme/adjustments", `{"adjustment_id":"welcome","amount":"50","reason":"welcome"}`); r.status != http.StatusCreated {
		f.Fatalf("credit acme: %d %s", r.status, r.body)
	}
	return ts
}

// segment escapes a fuzzed string into one path segment, as a client would.
func segment(s string) string { return url.PathEscape(s) }

// checkFuzzAnswer is checkContract, plus the redirect that Go's router answers for a path
// with dot segments ("/v1/accounts/.."), which no handler sees.
func checkFuzzAnswer(t *testing.T, what string, r result) {
	t.Helper()
	if r.status == http.StatusMovedPermanently || r.status == http.StatusTemporaryRedirect || r.status == http.StatusPermanentRedirect {
		if r.header.Get("Location") == "" {
			t.Fatalf("%s: redirect without Location", what)
		}
		return
	}
	checkContract(t, what, r)
}

func FuzzHTTPBodies(f *testing.F) {
	seeds := []struct {
		endpoint uint8
		segment  string
		body     string
	}{
		{0, "acme", `{"currency":"USD","low_balance_threshold":"10"}`},
		{0, "new-1", `{"currency":"EUR"}`},
		{0, "x", `{"currency":"USD","low_balance_threshold":10}`},
		{0, strings.Repeat("a", 65), `{"currency":"USD"}`},
		{0, "a b", `{"currency":"USD"}`},
		{0, "acme", `{"currency":"USD"}{"currency":"USD"}`},
		{0, "acme", `{"currency":"US"}`},
		{0, "acme", `{"currency":"USD","low_balance_threshold":"1e400"}`},
		{1, "", `{"usage_id":"call-8f2c","account_id":"acme","type":"call","reason":"fup_exceeded","occurred_at":"2026-11-24T10:15:00Z","amount":"0.42","currency":"USD","user_id":"u-7","quantity":"21","unit":"minute","destination":"+447911123456"}`},
		{1, "", `[{"usage_id":"s1","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0.05","currency":"USD"}]`},
		{1, "", `[]`},
		{1, "", `[1,2,3]`},
		{1, "", `{"usage_id":"s1","account_id":"acme","type":"sms","occurred_at":"yesterday","amount":"-0.05","currency":"USD"}`},
		{1, "", `{"usage_id":"s1","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0.00001","currency":"USD"}`},
		{1, "", "\x00\xff"},
		{2, "acme", `{"adjustment_id":"adj-1","amount":"0.42","reason":"refund of disputed call","usage_id":"call-8f2c"}`},
		{2, "acme", `{"adjustment_id":"adj-2","amount":"-999999999999999.9999","reason":"r"}`},
		{2, "acme", `{"adjustment_id":"adj-3","amount":"1000000000000000","reason":"r"}`},
		{2, "nobody", `{"adjustment_id":"adj-1","amount":"1","reason":"r"}`},
		{3, "acme", `{"low_balance_threshold":"25"}`},
		{3, "acme", `{"low_balance_threshold":"-1"}`},
		{4, "acme", `{"enabled":true,"threshold":"20","amount":"100"}`},
		{4, "acme", `{"enabled":"yes","threshold":"20","amount":"100"}`},
		{5, "acme", `{"top_up_id":"tu-1","amount":"50"}`},
		{5, "acme", `{"top_up_id":"tu-1","amount":"51"}`},
		{5, "acme", `{"top_up_id":"tu-2","amount":"0"}`},
		{6, "rj-1", ``},
		{6, strings.Repeat("r", 100), ``},
	}
	for _, s := range seeds {
		f.Add(s.endpoint, s.segment, []byte(s.body))
	}
	ts := fuzzServer(f)
	f.Fuzz(func(t *testing.T, endpoint uint8, seg string, body []byte) {
		e := bodyEndpoints[int(endpoint)%len(bodyEndpoints)]
		target := strings.Replace(e.path, "%s", segment(seg), 1)
		r, ok := ts.serve(e.method, target, string(body), http.Header{"Content-Type": {"application/json"}})
		if !ok {
			t.Skip()
		}
		checkFuzzAnswer(t, e.method+" "+target, r)
	})
}

func FuzzHTTPQuery(f *testing.F) {
	seeds := []struct {
		endpoint uint8
		segment  string
		query    string
	}{
		{0, "acme", ""},
		{0, "nobody", ""},
		{1, "acme", "limit=100"},
		{1, "acme", "limit=0"},
		{1, "acme", "limit=1001"},
		{1, "acme", "limit=-1&cursor=abc"},
		{1, "acme", "from=2026-11-24T00:00:00Z&to=2026-11-25T00:00:00Z&cause=messaging&type=usage&user_id=u-7"},
		{1, "acme", "from=yesterday"},
		{1, "acme", "cause=free_lunch"},
		{1, "acme", "cursor=djE6MTg0NDY3NDQwNzM3MDk1NTE2MTU"},
		{2, "acme", "cursor=not-a-cursor"},
		{2, "acme", "type=top_up"},
		{3, "acme", "from=2026-11-24T00:00:00Z"},
		{3, "acme", "to=2026-13-45T99:00:00Z"},
		{4, "acme", ""},
		{5, "acme", "tu-1"},
		{5, "acme", strings.Repeat("t", 70)},
		{6, "acme", "direction=outbound&number_type=standard"},
		{6, "acme", "direction=inbound&number_type=toll_free"},
		{6, "acme", "direction=sideways"},
		{6, "nobody", "direction=outbound&number_type=standard"},
		{7, "acme", "limit=1000"},
		{7, "", "limit=abc"},
		{7, "a%zz", "limit=5"},
	}
	for _, s := range seeds {
		f.Add(s.endpoint, s.segment, s.query)
	}
	ts := fuzzServer(f)
	f.Fuzz(func(t *testing.T, endpoint uint8, seg, query string) {
		pattern := queryEndpoints[int(endpoint)%len(queryEndpoints)]
		second := query
		if strings.HasSuffix(pattern, "/%s") {
			second = segment(query)
		}
		target := strings.Replace(strings.Replace(pattern, "%s", segment(seg), 1), "%s", second, 1)
		r, ok := ts.serve("GET", target, "", nil)
		if !ok {
			t.Skip()
		}
		checkFuzzAnswer(t, "GET "+target, r)
	})
}

func FuzzAuthorizeRequest(f *testing.F) {
	for _, s := range []string{
		`{"account_id":"acme","direction":"outbound","number_type":"standard"}`,
		`{"account_id":"acme","direction":"inbound","number_type":"toll_free"}`,
		`{"account_id":"nobody","direction":"inbound","number_type":"standard"}`,
		`{"account_id":"acme","direction":"outbound"}`,
		`{"account_id":"acme","direction":"outbound","number_type":"standard","extra":1}`,
		`{"account_id":"` + strings.Repeat("a", 65) + `","direction":"outbound","number_type":"standard"}`,
		`{"account_id":7}`, `null`, `[]`, `"x"`, ``, `{`, "\xff\xfe",
		strings.Repeat(" ", authorizeRequestBytesMax+1),
	} {
		f.Add([]byte(s))
	}
	ts := fuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := json.Marshal(ts.authorizeMsg(data))
		if err != nil {
			t.Fatalf("reply does not marshal: %v", err)
		}
		var reply struct {
			Allowed *bool
			Reason  string
			Balance *string
			Alert   string
			Error   *errorDetail
		}
		if err := json.Unmarshal(b, &reply); err != nil || reply.Allowed == nil {
			t.Fatalf("reply %s: %v", b, err)
		}
		var req ledger.AuthorizeRequest
		valid := len(data) <= authorizeRequestBytesMax && json.Unmarshal(data, &req) == nil && req.Validate() == nil
		switch {
		case !valid && (*reply.Allowed || reply.Reason != "invalid_request" || reply.Error == nil || reply.Error.Code == "" || reply.Error.Message == ""):
			t.Fatalf("invalid request %q answered %s", data, b)
		case valid && reply.Reason == "invalid_request":
			t.Fatalf("valid request %q refused: %s", data, b)
		case valid && *reply.Allowed && reply.Reason != "":
			t.Fatalf("allowed with a reason: %s", b)
		case valid && !*reply.Allowed && reply.Reason == "":
			t.Fatalf("denied without a reason: %s", b)
		case valid && req.AccountID != "acme" && reply.Reason != "account_not_found":
			t.Fatalf("unknown account %q answered %s", req.AccountID, b)
		}
	})
}

// FuzzUsageMessage feeds the decoder of the USAGE consumer (subject and payload as they
// arrive from NATS). Whatever it is given, it returns a usage the ledger may charge
// (valid ids, the subject's account, an amount >= 0 with at most 4 decimals, a known
// cause) or an invalid-input error with a reason for the rejection record.
func FuzzUsageMessage(f *testing.F) {
	ok := `{"usage_id":"call-8f2c","account_id":"acme","type":"call","reason":"fup_exceeded","occurred_at":"2026-11-24T10:15:00Z","amount":"0.42","currency":"USD","user_id":"u-7","quantity":"21","unit":"minute","destination":"+447911123456"}`
	for _, s := range []struct{ subject, data string }{
		{"usage.acme", ok},
		{"usage.other", ok},
		{"usage.acme", `{"usage_id":"s1","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0","currency":"USD"}`},
		{"usage.acme", `{"usage_id":"s1","account_id":"acme","type":"call","occurred_at":"2026-11-24T10:15:00Z","amount":"1","currency":"USD"}`},
		{"usage.acme", `{"usage_id":"s1","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"1E+3","currency":"USD"}`},
		{"usage.acme", `{"usage_id":"s1","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"NaN","currency":"USD"}`},
		{"usage.acme", `{"usage_id":"s1","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0.1","currency":"USD","quantity":"-1"}`},
		{"usage.a.b", `{"usage_id":"s1","account_id":"a.b","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0.1","currency":"USD"}`},
		{"usage.acme", `{"usage_id":"s1","usage_id":"s2","account_id":"acme","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0.1","currency":"USD"}`},
		{"usage.acme", ok + ok},
		{"usage.acme", "not json"},
		{"usage.acme", "\x00\x01\xff"},
		{"usage.", `{}`},
		{"usage.~.000", `{"usage_id":"s1","account_id":".000","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0.1","currency":"USD"}`},
		{"usage..000", `{"usage_id":"s1","account_id":".000","type":"sms","occurred_at":"2026-11-24T10:15:00Z","amount":"0.1","currency":"USD"}`},
	} {
		f.Add(s.subject, []byte(s.data))
	}
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		// The consumer only receives subjects of usage.>.
		if !strings.HasPrefix(subject, ingest.UsageSubjectPrefix) {
			subject = ingest.UsageSubjectPrefix + subject
		}
		u, err := ingest.Decode(subject, data)
		if err != nil {
			if ledger.ErrorCode(err) != ledger.EINVALID || ledger.ErrorReason(err) == "" {
				t.Fatalf("error %v: code %q reason %q, want an invalid-input reason", err, ledger.ErrorCode(err), ledger.ErrorReason(err))
			}
			return
		}
		c := u.Charge
		switch {
		case subject != ingest.Subject(u.AccountID):
			t.Fatalf("usage of %q accepted on subject %q", u.AccountID, subject)
		case !ledger.ValidID(u.AccountID) || !ledger.ValidID(c.UsageID):
			t.Fatalf("invalid ids accepted: %q %q", u.AccountID, c.UsageID)
		case c.Amount.IsNegative() || -c.Amount.Exponent() > ledger.AmountScaleMax:
			t.Fatalf("amount %s accepted", c.Amount)
		case !slices.Contains(ledger.Causes, c.Cause):
			t.Fatalf("cause %q", c.Cause)
		case c.ContentHash == "" || c.Currency == "":
			t.Fatalf("incomplete usage %+v", c)
		}
		again, err := ingest.Decode(subject, data)
		if err != nil || again.Charge.ContentHash != c.ContentHash {
			t.Fatalf("decoding twice differs: %v %q %q", err, again.Charge.ContentHash, c.ContentHash)
		}
	})
}
