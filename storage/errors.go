package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnavailable is wrapped by errors from WriteBatch and Ping caused by the
// database being unreachable or unable to take writes now: connection
// failures (no host of a multi-host URL accepting writes included), a
// connection reset or closed under us, the server shutting down or starting
// up (57P01, 57P02, 57P03, class 08), a node that is, or just became, a
// read-only standby (25006, as during a failover), no connection slot left
// (53300), or the caller's deadline passing while waiting for the pool or
// the server (a synchronous commit waiting for a standby included). The
// HTTP edge answers these with 503 and Retry-After; other errors
// (constraint violations, bad input) do not wrap it.
var ErrUnavailable = errors.New("storage: database unavailable")

// wrapErr wraps err as "op: err", adding ErrUnavailable when the database is
// unreachable.
func wrapErr(op string, err error) error {
	if isUnavailable(err) {
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// codeReadOnly is read_only_sql_transaction: a write sent to a standby, or
// to a primary demoted under the connection.
const codeReadOnly = "25006"

// closeOnReadOnly is pgconn's OnPgError for the pool: a connection that met
// a read-only server is closed, so that the pool's next connection looks
// for the primary again (target_session_attrs=read-write) instead of
// reusing a connection to a standby; other errors keep pgconn's default
// (close on FATAL).
func closeOnReadOnly(next pgconn.PgErrorHandler) pgconn.PgErrorHandler {
	return func(c *pgconn.PgConn, err *pgconn.PgError) bool {
		if err.Code == codeReadOnly {
			return false
		}
		return next == nil || next(c, err)
	}
}

// isUnavailable reports whether err means the database could not be reached
// or the connection was lost, as opposed to the server refusing a statement.
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	// Any failure to establish a connection, whatever its cause (refused,
	// timeout, DNS, TLS, authentication, missing database), means we cannot
	// reach the database now.
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server answered: only connection-class and shutdown/startup
		// states mean "unavailable".
		switch pgErr.Code {
		case "57P01", // admin_shutdown (also pg_terminate_backend)
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now (starting up, recovery)
			"57P05", // idle_session_timeout
			"53300", // too_many_connections
			codeReadOnly:
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	var netErr net.Error
	switch {
	case errors.Is(err, pgconn.ErrConnClosed),
		// The deadline passed while acquiring a connection or waiting for the
		// server: the database is not answering in time.
		errors.Is(err, context.DeadlineExceeded),
		pgconn.Timeout(err),
		errors.As(err, &netErr),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return true
	}
	return false
}
