package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Timeouts of the API client. There is no limit on a whole request: a movements export
// may stream millions of rows.
const (
	dialTimeout           = 5 * time.Second
	responseHeaderTimeout = 30 * time.Second
	// errorBodyMax bounds how much of an error response is read.
	errorBodyMax = 64 << 10
)

// apiClient calls ledgerd's HTTP API (API.md sections 2 to 7).
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(g globals) (*apiClient, error) {
	u, err := url.Parse(g.apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--api-url must be an http(s) URL such as http://127.0.0.1:8080, got %q", g.apiURL)
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout}).DialContext,
		ResponseHeaderTimeout: responseHeaderTimeout,
	}
	return &apiClient{base: strings.TrimRight(g.apiURL, "/"), token: g.token, http: &http.Client{Transport: tr}}, nil
}

// apiError is an error answer of the API: {"error": {"code", "message"}}. It prints as
// "code: message", so ledgerctl reports "ledgerctl: code: message".
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// call sends a request with an optional JSON body and decodes a JSON answer into out (when
// out is not nil). It returns the HTTP status of a successful answer.
func (c *apiClient) call(ctx context.Context, method, path string, query url.Values, body, out any) (int, error) {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return 0, fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// send sends a request and returns a successful (2xx) response, whose body the caller
// closes; any other answer becomes an *apiError.
func (c *apiClient) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	req, err := c.request(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach ledgerd's API at %s: %v: is ledgerd running? (see --api-url)", c.base, unwrapURLError(err))
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, readAPIError(resp)
	}
	return resp, nil
}

func (c *apiClient) request(ctx context.Context, method, path string, query url.Values, body any) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", "ledgerctl")
	return req, nil
}

// readAPIError turns an error answer into an *apiError, also when it is not the API's
// JSON (a proxy in between, another service on the port).
func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyMax))
	var body struct {
		Error apiError `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		body.Error.Status = resp.StatusCode
		return &body.Error
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &apiError{Status: resp.StatusCode, Code: fmt.Sprintf("http_%d", resp.StatusCode), Message: msg}
}

// unwrapURLError drops the "Get "http://...":" prefix that the URL is already in our message.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// accountPath is /v1/accounts/{id} with the id escaped (ids are plain, but be safe).
func accountPath(id string, rest ...string) string {
	return "/v1/accounts/" + url.PathEscape(id) + strings.Join(rest, "")
}
