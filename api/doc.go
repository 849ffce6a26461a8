// Package api is the ledger's public interface of API.md: the HTTP API under /v1 for the
// billing dashboard and operators, the operational endpoints (/healthz, /readyz,
// /metrics), and the NATS responder of ledger.authorize for the telephony platform.
//
// Handlers validate everything they are given and answer errors as
// {"error": {"code", "message"}}; domain errors (*ledger.Error) map to HTTP statuses in
// one place, writeError.
package api
