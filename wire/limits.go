package wire

import (
	"math"
	"time"
)

// Size limits. Storage sizes its columns to match; every limit counts
// characters (Unicode code points), as PostgreSQL's VARCHAR(n) does.
const (
	// MaxRecordBytes bounds one record body as the single-record endpoints
	// receive it. DecodeAudit rejects a larger body; batch items are bounded
	// by MaxBatchBytes instead (a record that an older agent re-encoded, or a
	// direct batch writer encoded, may differ in size from its client's body).
	MaxRecordBytes = 64 << 10
	// MaxBatchRecords bounds the number of records in one batch.
	MaxBatchRecords = 1000
	// MaxBatchBytes bounds a batch body after decompression.
	MaxBatchBytes = 16 << 20

	// MaxNameLen bounds remediationRequestID, alertName, namespace, cluster,
	// actionType, workflowID and stepName (VARCHAR(255)).
	MaxNameLen = 255
	// MaxStatusLen bounds status, stepStatus and priority (VARCHAR(50)).
	MaxStatusLen = 50
	// MaxTargetResourceLen bounds targetResource (VARCHAR(512)).
	MaxTargetResourceLen = 512
	// MaxTextLen bounds reasoning and errorMessage (TEXT, capped).
	MaxTextLen = 32768

	// MaxIDLen bounds a record ID (VARCHAR(255)).
	MaxIDLen = 255
	// MaxIdempotencyKeyLen bounds the Idempotency-Key header.
	MaxIdempotencyKeyLen = 255

	// MaxDurationMillis is the largest duration, in milliseconds, that the
	// INT duration_ms column holds.
	MaxDurationMillis = math.MaxInt32
	// MaxFutureSkew is how far after the server's clock a timestamp may be
	// before it is refused as impossible.
	MaxFutureSkew = 24 * time.Hour
)
