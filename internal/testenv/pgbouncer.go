package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PgBouncer is a pgbouncer process of the test's own, in front of the
// tests' PostgreSQL server, in transaction mode and with PgBouncer's
// defaults for everything else: a pooler as an operator would first run it.
type PgBouncer struct {
	// Addr is host:port of the pooler.
	Addr string
}

// NewPgBouncer starts pgbouncer (the Debian package; `make services`
// installs it) on a free port with a generated configuration: every
// database of the tests' server, pool_mode = transaction, auth_type = trust
// with the server's password in its auth_file, for its own logins. It is
// stopped when the test ends; its log is shown when the test failed.
func NewPgBouncer(t testing.TB) *PgBouncer {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
			Unavailable(t, "pgbouncer", err)
			return nil
		}
		bin = "/usr/sbin/pgbouncer"
	}
	server := baseURL(t)
	password, _ := server.User.Password()
	port := freePort(t)
	// pgbouncer refuses to run as root: it drops to nobody, who must be
	// able to read its files, which t.TempDir's folders do not allow.
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		t.Fatalf("pgbouncer folder: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("pgbouncer folder: %v", err)
	}
	users := filepath.Join(dir, "users.txt")
	ini := filepath.Join(dir, "pgbouncer.ini")
	files := map[string]string{
		users: fmt.Sprintf("%q %q\n", server.User.Username(), password),
		ini: fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
`, server.Hostname(), cmpPort(server.Port()), port, users),
	}
	for name, body := range files {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	args := []string{ini}
	if os.Geteuid() == 0 {
		args = []string{"-u", "nobody", ini}
	}
	cmd := exec.Command(bin, args...)
	var log SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		Unavailable(t, "pgbouncer", err)
		return nil
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // shut down at once
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("pgbouncer log:\n%s", log.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("pgbouncer exited at start:\n%s", log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgbouncer did not listen on %s within 10s:\n%s", addr, log.String())
		}
	}
	return &PgBouncer{Addr: addr}
}

// URL returns the URL of database db through the pooler, as the tests'
// user. It sets no search_path: PgBouncer refuses such startup parameters.
func (b *PgBouncer) URL(t testing.TB, db string) string {
	t.Helper()
	u := baseURL(t)
	u.Host = b.Addr
	u.Path = "/" + db
	u.RawQuery = url.Values{"sslmode": {"disable"}}.Encode()
	return u.String()
}

// Database returns the name of p's database.
func (p *Postgres) Database(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatalf("parse %s: %v", p.URL, err)
	}
	return u.Path[1:]
}

func cmpPort(p string) string {
	if p == "" {
		return "5432"
	}
	return p
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
