package orm_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tallyorm/tally/internal/dbtest"
	"github.com/tallyorm/tally/orm"
)

// stderrDuring runs fn with the process's standard error (file descriptor
// 2, which a driver's package-level logger writes to whatever os.Stderr
// was at its init) redirected to a file, and returns what was written.
func stderrDuring(t *testing.T, fn func()) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(saved)
	if err := syscall.Dup3(int(f.Fd()), 2, 0); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if err := syscall.Dup3(saved, 2, 0); err != nil {
				t.Errorf("restore stderr: %v", err)
			}
		}()
		fn()
	}()
	out, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// syncBuffer is a bytes.Buffer a logger may write from any goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A connection the server killed: the driver's own complaint goes to the
// engine's logger (WithLogger), or nowhere without one, never to stderr;
// the error names the likely causes.
func TestKilledConnectionLogsThroughEngineLoggerNotStderr(t *testing.T) {
	eachServer(t, func(t *testing.T, tg dbtest.Target) {
		for _, withLogger := range []bool{true, false} {
			name := "without WithLogger"
			if withLogger {
				name = "with WithLogger"
			}
			t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
				var logged syncBuffer
				var opts []orm.Option
				if withLogger {
					opts = append(opts, orm.WithLogger(slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))))
				}
				eng := openEngine(t, tg, nil, opts...)
				admin := dbtest.Open(t, tg)
				ctx := context.Background()
				a := newAccount("log-"+name, 100)
				seedObjects(t, eng, a)
				s := eng.NewSession()
				defer s.Close()
				got, err := orm.Query[Account](s).Where("id = ?", a.ID).ForUpdate().One(ctx)
				if err != nil {
					t.Fatal(err)
				}
				killConn(t, admin, tg, sessionConnID(t, ctx, s, tg))
				got.Balance = 1
				var commitErr error
				printed := stderrDuring(t, func() { commitErr = s.Commit(ctx) })
				if printed != "" {
					t.Errorf("stderr: got %q, want nothing", printed)
				}
				if !errors.Is(commitErr, orm.ErrConnection) {
					t.Fatalf("Commit on a killed connection: got %v, want ErrConnection", commitErr)
				}
				if tg.Name == dbtest.MySQL {
					if !strings.Contains(commitErr.Error(), "KILL") || !strings.Contains(commitErr.Error(), "wait_timeout") {
						t.Errorf("error: got %q, want it to name KILL and wait_timeout as likely causes", commitErr)
					}
					if withLogger && !strings.Contains(logged.String(), "mysql driver") {
						t.Errorf("engine logger: got %q, want the driver's message", logged.String())
					}
				}
				t.Logf("error: %v; logged: %q", commitErr, logged.String())
			})
		}
	})
}
