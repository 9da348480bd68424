// Package procstat reads the few fields octo needs from a process's
// /proc/<pid>/stat: its state, its parent and the CPU time it has used.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Stat is what octo reads of a process's /proc/<pid>/stat.
type Stat struct {
	// State is the process's state letter: R running, S sleeping, D in
	// an uninterruptible wait, Z a zombie, and so on (proc(5)).
	State byte
	// PPID is the parent's process ID.
	PPID int
	// CPU is the CPU time the process has used, user and system.
	CPU time.Duration
}

// userHZ is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const userHZ = 100

// Read reads the stat of process pid.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	st, err := Parse(b)
	if err != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// Parse parses the content of a /proc/<pid>/stat file.
func Parse(b []byte) (Stat, error) {
	// The command, in parentheses, may hold spaces and parentheses: the
	// fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("no command")
	}
	f := bytes.Fields(b[i+1:])
	// From the third field of proc(5) on: state, ppid, ..., utime (14th),
	// stime (15th).
	if len(f) < 13 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("%d fields after the command, want at least 13", len(f))
	}
	st := Stat{State: f[0][0]}
	var err error
	if st.PPID, err = strconv.Atoi(string(f[1])); err != nil {
		return Stat{}, fmt.Errorf("ppid: %w", err)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return Stat{}, fmt.Errorf("cpu time: %w", err)
		}
		ticks += n
	}
	st.CPU = time.Duration(ticks) * time.Second / userHZ
	return st, nil
}
