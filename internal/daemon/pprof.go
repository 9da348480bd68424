package daemon

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// PprofEnv names the environment variable that, set to a loopback address
// (e.g. 127.0.0.1:6060) when `octo up` runs, makes the daemon serve Go's
// profiles there: for profiling the gateway under `make bench-load`.
const PprofEnv = "OCTO_PPROF"

// servePprof serves /debug/pprof/ on addr if it is a loopback address.
func servePprof(addr string, log *slog.Logger) {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Warn("not serving profiles: "+PprofEnv+" must be a loopback host:port", "value", addr)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		log.Info("serving Go profiles", "url", "http://"+addr+"/debug/pprof/")
		if err := srv.ListenAndServe(); err != nil {
			log.Warn("profiles", "err", err)
		}
	}()
}
