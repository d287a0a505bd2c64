package bench

import "syscall"

// childAttr puts a spawned provider in a process group of its own, so
// that Ctrl-C at the terminal reaches the bench alone (which then stops
// its providers in order), and has the kernel kill it if the bench dies
// without doing so. (The kernel sends that signal when the thread that
// started the child exits: Go keeps its threads, unless a goroutine ends
// while locked to one, which the bench does not do.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
