package benchkit

import (
	"fmt"
	"strings"

	"github.com/octohq/octo/internal/config"
	"github.com/octohq/octo/internal/daemon"
	"github.com/octohq/octo/internal/procstat"
)

// Memory is what an octo instance holds, in MB: resident set (RSS) and
// proportional set (PSS: pages shared between processes, such as the
// binary the daemon and its containerd child both map, counted once).
type Memory struct {
	DaemonRSS, ContainerdRSS, ShimsRSS, WorkerdRSS float64
	// PSS sums every process of the instance: daemon, containerd, shims,
	// pause and workerd processes.
	PSS float64
	// WorkerdPSS is the part of PSS in workerd processes.
	WorkerdPSS float64
	Shims      int
	Workerds   int
}

// MemoryOf measures the octo of cfg: its daemon, the daemon's containerd
// child, the shims (binaries in cfg.BinDir()), the pods' pause and workerd
// processes.
func MemoryOf(cfg config.Config) Memory {
	var m Memory
	pid, _ := daemon.RunningPID(cfg)
	m.DaemonRSS = ProcKB(pid, "VmRSS:")
	m.PSS = pss(pid)
	for _, proc := range processes() {
		p, args := proc.pid, proc.args
		switch {
		case len(args) > 1 && args[1] == "__containerd" && ppid(p) == pid:
			m.ContainerdRSS += ProcKB(p, "VmRSS:")
			m.PSS += pss(p)
		case strings.HasPrefix(args[0], cfg.BinDir()+"/"):
			m.Shims++
			m.ShimsRSS += ProcKB(p, "VmRSS:")
			m.PSS += pss(p)
		case args[0] == "/pause":
			m.PSS += pss(p)
		case isWorkerd(args):
			m.Workerds++
			m.WorkerdRSS += ProcKB(p, "VmRSS:")
			w := pss(p)
			m.WorkerdPSS += w
			m.PSS += w
		}
	}
	return m
}

// pss is the proportional set size of pid, in MB.
func pss(pid int) float64 {
	return kbField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}

func ppid(pid int) int {
	st, _ := procstat.Read(pid)
	return st.PPID
}
