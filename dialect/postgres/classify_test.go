package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tallyorm/tally/dialect"
)

// wrapped wraps err twice, as the ORM and a caller might.
func wrapped(err error) error {
	return fmt.Errorf("orm: insert users: %w", fmt.Errorf("exec: %w", err))
}

func TestClassifyPostgres(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want dialect.Class
	}{
		{"nil", nil, dialect.ClassOther},
		{"unique", &pgconn.PgError{Code: "23505"}, dialect.ClassUnique},
		{"unique, wrapped", wrapped(&pgconn.PgError{Code: "23505"}), dialect.ClassUnique},
		{"foreign key", wrapped(&pgconn.PgError{Code: "23503"}), dialect.ClassForeignKey},
		{"serialization failure", wrapped(&pgconn.PgError{Code: "40001"}), dialect.ClassRetryable},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, dialect.ClassRetryable},
		{"lock not available", &pgconn.PgError{Code: "55P03"}, dialect.ClassRetryable},
		{"statement completion unknown (CockroachDB ambiguous result)", &pgconn.PgError{Code: "40003"}, dialect.ClassConnection},
		{"connection failure", &pgconn.PgError{Code: "08006"}, dialect.ClassConnection},
		{"connection exception", &pgconn.PgError{Code: "08000"}, dialect.ClassConnection},
		{"cannot establish", wrapped(&pgconn.PgError{Code: "08001"}), dialect.ClassConnection},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, dialect.ClassConnection},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, dialect.ClassConnection},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, dialect.ClassConnection},
		{"idle session timeout", &pgconn.PgError{Severity: "FATAL", Code: "57P05"}, dialect.ClassConnection},
		{"idle in transaction timeout", wrapped(&pgconn.PgError{Severity: "FATAL", Code: "25P03"}), dialect.ClassConnection},
		{"any FATAL ends the session", &pgconn.PgError{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "XX000"}, dialect.ClassConnection},
		{"PANIC", &pgconn.PgError{Severity: "PANIC", Code: "XX000"}, dialect.ClassConnection},
		{"localized FATAL", &pgconn.PgError{Severity: "SCHWERWIEGEND", SeverityUnlocalized: "FATAL", Code: "XX000"}, dialect.ClassConnection},
		{"ERROR severity stays other", &pgconn.PgError{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "XX000"}, dialect.ClassOther},
		{"query canceled", &pgconn.PgError{Code: "57014"}, dialect.ClassOther},
		{"not null", &pgconn.PgError{Code: "23502"}, dialect.ClassOther},
		{"check", &pgconn.PgError{Code: "23514"}, dialect.ClassOther},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, dialect.ClassOther},
		{"no code", &pgconn.PgError{}, dialect.ClassOther},
		{"short code in class 08", &pgconn.PgError{Code: "08"}, dialect.ClassOther},
		{"connect error", &pgconn.ConnectError{}, dialect.ClassConnection},
	}
	for _, tt := range tests {
		if got := dialect.PostgreSQL.Classify(tt.err); got != tt.want {
			t.Errorf("%s: Classify(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// refusedAddr returns a local address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no local TCP:", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// pgx's own error for a server that is not there is a connection error.
func TestClassifyRefusedConnection(t *testing.T) {
	addr := refusedAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	ctx := context.Background()

	_, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://u@%s:%s/db?connect_timeout=5&sslmode=disable", host, port))
	if err == nil {
		t.Fatal("pgconn.Connect succeeded")
	}
	if got := dialect.PostgreSQL.Classify(err); got != dialect.ClassConnection {
		t.Errorf("dialect.PostgreSQL.Classify(%v) = %v, want connection", err, got)
	}

}

func BenchmarkClassify(b *testing.B) {
	for name, err := range map[string]error{
		"unique": wrapped(&pgconn.PgError{Code: "23505"}),
		"other":  wrapped(errors.New("boom")),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				dialect.PostgreSQL.Classify(err)
			}
		})
	}
}
