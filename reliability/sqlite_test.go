package reliability

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tallyorm/tally/orm"
)

// tmpfs mounts a tmpfs of size (mount's syntax: "1m") on a new directory
// for t, or skips t when mounting is not permitted (not root, no
// CAP_SYS_ADMIN). Cleanup unmounts it.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("reliability: cannot mount a tmpfs for a disk fault (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("unmount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// remount remounts the tmpfs at dir read-only or read-write.
func remount(t *testing.T, dir, mode string) {
	t.Helper()
	var out []byte
	var err error
	// EBUSY while a file is open for writing: the engine closes its
	// connections between requests in these tests, a moment after the
	// last one returns.
	for range 50 {
		if out, err = exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("remount %s %s: %v: %s", dir, mode, err, out)
}

// sqliteBank opens a bank in file name under dir, with DSN settings
// params ("_pragma=busy_timeout(300)").
func sqliteBank(t *testing.T, dir, params string, opts ...orm.Option) *bank {
	t.Helper()
	dsn := filepath.Join(dir, "bank.db")
	if params != "" {
		dsn += "?" + params
	}
	eng, err := orm.Open(context.Background(), "sqlite", dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return newBank(t, eng)
}

// tryTransfers runs n transfers one after the other, each one attempt,
// and returns how many succeeded and the first error.
func tryTransfers(b *bank, n int) (ok int, first error) {
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := b.transfer(ctx, b.ids[i%nAccounts], b.ids[(i+1)%nAccounts], 1, orm.MaxAttempts(1))
		cancel()
		if err == nil {
			ok++
		} else if first == nil {
			first = err
		}
	}
	return ok, first
}

// SQLite's disk fills up mid-run: the transfers that cannot be written
// fail with ErrConnection (the database cannot be written; nothing of
// them is kept), and once space is freed the next request succeeds.
func TestSQLiteDiskFullFailsTypedAndRecovers(t *testing.T) {
	longTest(t)
	dir := tmpfs(t, "2m")
	b := sqliteBank(t, dir, "")
	leaks := goroutineBaseline(t)
	applied, _ := tryTransfers(b, 20)

	// Fill the disk, leaving no room for the log to grow.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	filler.Close()
	ok, first := tryTransfers(b, 200)
	applied += ok
	t.Logf("disk full: %d of 200 transfers succeeded; first failure: %v", ok, first)
	if first == nil {
		t.Fatal("every transfer succeeded on a full disk")
	}
	if !errors.Is(first, orm.ErrConnection) {
		t.Errorf("a transfer on a full disk: got %v, want an error matching ErrConnection", first)
	}
	os.Remove(filepath.Join(dir, "filler"))
	ok, err = tryTransfers(b, 20)
	applied += ok
	if err != nil {
		t.Errorf("after the disk has room again: %d of 20 succeeded, first failure %v", ok, err)
	}
	if got := b.audit(t); got != applied {
		t.Errorf("journal holds %d transfers, want the %d that succeeded", got, applied)
	}
	checkIdle(t, b.eng)
	b.eng.Close()
	leaks()
}

// SQLite's directory becomes read-only between requests (the engine
// keeps no idle connection, so the filesystem can be remounted): the
// transfers fail with ErrConnection, and after it is writable again the
// next request succeeds.
func TestSQLiteReadOnlyFilesystemFailsTypedAndRecovers(t *testing.T) {
	longTest(t)
	dir := tmpfs(t, "8m")
	b := sqliteBank(t, dir, "", orm.WithMaxIdleConns(0))
	leaks := goroutineBaseline(t)
	applied, _ := tryTransfers(b, 20)
	remount(t, dir, "ro")
	ok, first := tryTransfers(b, 10)
	applied += ok
	t.Logf("read-only: %d of 10 transfers succeeded; first failure: %v", ok, first)
	if ok != 0 || !errors.Is(first, orm.ErrConnection) {
		t.Errorf("transfers on a read-only filesystem: %d succeeded, first failure %v; want none, failing with ErrConnection", ok, first)
	}
	remount(t, dir, "rw")
	ok, err := tryTransfers(b, 20)
	applied += ok
	if err != nil {
		t.Errorf("after the filesystem is writable again: %d of 20 succeeded, first failure %v", ok, err)
	}
	if got := b.audit(t); got != applied {
		t.Errorf("journal holds %d transfers, want the %d that succeeded", got, applied)
	}
	checkIdle(t, b.eng)
	b.eng.Close()
	leaks()
}

// Another connection (another process, as far as SQLite can tell) holds
// the write lock longer than the busy timeout: a single attempt fails
// with ErrRetryable once the timeout runs out, and Do's retries succeed
// once the lock is let go.
func TestSQLiteWriteLockHeldPastBusyTimeoutIsRetryable(t *testing.T) {
	longTest(t)
	dir := t.TempDir()
	b := sqliteBank(t, dir, "_pragma=busy_timeout(300)")
	leaks := goroutineBaseline(t)
	other, err := sql.Open("sqlite", filepath.Join(dir, "bank.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	hold := func() *sql.Conn {
		c, err := other.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	release := func(c *sql.Conn) {
		if _, err := c.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Error(err)
		}
		c.Close()
	}

	c := hold()
	start := time.Now()
	err = b.transfer(context.Background(), b.ids[0], b.ids[1], 1, orm.MaxAttempts(1))
	took := time.Since(start)
	t.Logf("write lock held elsewhere: failed after %v: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, orm.ErrRetryable) {
		t.Errorf("a write while another connection holds the lock: got %v, want ErrRetryable", err)
	}
	if took > 2*time.Second {
		t.Errorf("a 300 ms busy timeout took %v", took)
	}
	release(c)

	c = hold()
	time.AfterFunc(700*time.Millisecond, func() { release(c) })
	attempts := 0
	err = b.eng.Do(context.Background(), func(ctx context.Context, s *orm.Session) error {
		attempts++
		return b.transferIn(ctx, s, b.ids[0], b.ids[1], 1)
	})
	t.Logf("Do against a write lock held 700 ms: %v after %d attempts", err, attempts)
	if err != nil {
		t.Errorf("Do against a write lock held for 700 ms: got %v after %d attempts, want success", err, attempts)
	}
	if got := b.audit(t); got != 1 {
		t.Errorf("journal holds %d transfers, want 1", got)
	}
	b.checkServes(t)
	checkIdle(t, b.eng)
	b.eng.Close()
	leaks()
}
