package proctest

import (
	"os"
	"syscall"
	"time"
)

// State is how the process ended; nil while it runs.
func (p *Proc) State() *os.ProcessState {
	select {
	case <-p.exited:
		return p.cmd.ProcessState
	default:
		return nil
	}
}

// Killed reports whether the process ended by SIGKILL, as a crash point
// ends it.
func (p *Proc) Killed() bool {
	st := p.State()
	if st == nil {
		return false
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// Terminate sends SIGTERM, as a service manager stops a provider, and
// waits up to limit for the process to exit by itself. It returns how
// long the process took and whether it exited within limit; if not, it is
// killed.
func (p *Proc) Terminate(limit time.Duration) (took time.Duration, exited bool) {
	began := time.Now()
	p.stopOnce.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			exited = true
		case <-time.After(limit):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return time.Since(began), exited
}

// LogFile is the path of this start's log.
func (p *Proc) LogFile() string { return p.log.Name() }
