// Package ingest is the consumer of the platform's inbox: the JetStream stream USAGE,
// which captures usage.> and may hold garbage and duplicates. A durable pull consumer
// reads it in batches; each message is decoded and validated, charged through the writer
// exactly once, or recorded as a rejection with its reason and raw payload. A message is
// acknowledged only once its outcome is durable, so nothing accepted is ever lost.
package ingest
