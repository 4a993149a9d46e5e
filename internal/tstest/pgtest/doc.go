// Package pgtest gives tests a fresh, throwaway PostgreSQL database on the
// development cluster named by TEST_DATABASE_URL.
//
// It owns nothing but test scaffolding: it talks to PostgreSQL with pgx
// directly (no database/sql) and must not import any package of this module,
// so that every package's tests can use it without import cycles.
package pgtest
