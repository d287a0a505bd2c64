package diskfull_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// smallDisk mounts a tmpfs of size (as mount's size= option has it) on a
// new directory and unmounts it when the test ends, failed or not. It
// needs root: without it, or when mount is refused, the test is skipped,
// unless SWITCHBOARD_REQUIRE_SERVICES=1 and we are root, which makes a
// refused mount a failure (CI runs as root and must run this test).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	require := os.Getenv("SWITCHBOARD_REQUIRE_SERVICES") == "1"
	if os.Geteuid() != 0 {
		t.Skip("disk full needs root to mount a small tmpfs for the data directory; run the test as root")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := "mount -t tmpfs -o size=" + size + " refused: " + err.Error() + ": " + strings.TrimSpace(string(out))
		if require {
			t.Fatalf("%s (SWITCHBOARD_REQUIRE_SERVICES=1 and root: this test must run)", msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			// Something still holds a file there (a process the
			// test could not stop): detach it, so the machine is
			// not left with the mount.
			t.Logf("umount %s: %v: %s; detaching it", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// fill writes a file in dir until the filesystem has no space left, and
// returns its path and size.
func fill(t *testing.T, dir string) (string, int64) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("filling %s: %v", dir, err)
			}
		}
	}
	return path, n
}

// freeSpace is what the filesystem of dir has left, in bytes.
func freeSpace(dir string) int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}
