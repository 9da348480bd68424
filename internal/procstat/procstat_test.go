package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	// A command with spaces and a ')' of its own; utime 250 and stime 50
	// ticks.
	line := "4242 (odd) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 1 1 18446744073709551615\n"
	st, err := Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.State != 'S' || st.PPID != 17 || st.CPU != 3*time.Second {
		t.Fatalf("Parse = %+v, want state S, ppid 17, 3 s of CPU", st)
	}
	for _, bad := range []string{"", "1 (x) S 2 3", "1 (x) S p 3 4 5 6 7 8 9 10 11 12 13 14"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestReadSelf(t *testing.T) {
	st, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != os.Getppid() || st.State != 'R' && st.State != 'S' {
		t.Fatalf("Read(self) = %+v, want ppid %d, running or sleeping", st, os.Getppid())
	}
	if _, err := Read(-1); err == nil {
		t.Fatal("Read(-1) found a process")
	}
}
