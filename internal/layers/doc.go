// Package layers holds the rule of octo's house: which package may import
// which. Its test fails when a lower layer imports a higher one, when one
// HTTP front imports another, or when the domain layer speaks HTTP.
//
// The layers, lowest first (a package may import its own layer and lower):
//
//	0 foundation  api/v1, internal/config, version, logs, pki, kubeconfig,
//	              crds, embed/..., teardown, precheck, procstat
//	1 runtime     internal/workerd, internal/tail, internal/assets,
//	              internal/metrics, internal/workerlogs, internal/warmstart
//	2 domain      internal/store (accounts, records, S3 layout, KV)
//	3 engines     internal/builder, internal/gateway, internal/controller,
//	              internal/cron
//	4 fronts      internal/cfapi, internal/podapi, web, internal/edge
//	5 wiring      internal/platform, internal/envvars
//	6 daemon      internal/daemon
//	7 commands    internal/cli, cmd/..., scripts/..., e2e/...
package layers
