package workerd

import (
	"cmp"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	apiv1 "github.com/octohq/octo/api/v1"
)

// Module is one module of a Worker. Path is the file holding its content,
// relative to the config file (the config embeds it with `embed "<path>"`).
type Module struct {
	Name string
	Type apiv1.ModuleType
	Path string
}

// BindingKind says what a Binding gives the Worker.
type BindingKind string

// Binding kinds.
const (
	// Text is a string: Binding.Text, or the content of the module named by
	// Binding.Module (text_blob).
	Text BindingKind = "text"
	// JSON is a parsed JSON value; Binding.JSON is its JSON text.
	JSON BindingKind = "json"
	// Data is an ArrayBuffer holding the content of the module named by
	// Binding.Module (data_blob).
	Data BindingKind = "data"
	// Wasm is a WebAssembly.Module compiled from the module named by
	// Binding.Module (wasm_module; service-worker syntax only).
	Wasm BindingKind = "wasm"
	// KV is a KV namespace served by the service Binding.Service (one of
	// Config.KV), over workerd's KV protocol.
	KV BindingKind = "kv"
	// FromEnv is a string read from the workerd process's environment
	// variable Binding.Env, or null when it is unset (secrets).
	FromEnv BindingKind = "fromEnv"
	// R2 is an R2 bucket served by the service Binding.Service (one of
	// Config.External), over workerd's R2 protocol.
	R2 BindingKind = "r2"
	// D1 is a D1 database: workerd's cloudflare-internal:d1-api module
	// wrapped around the fetcher Binding.Service (one of Config.External).
	D1 BindingKind = "d1"
	// Service is a service binding to the Worker Binding.Service of the same
	// config, at its Binding.Entrypoint (empty: the default export).
	Service BindingKind = "service"
	// Fetcher is a Fetcher of the external service Binding.Service (one of
	// Config.External): fetch() sends the request there.
	Fetcher BindingKind = "fetcher"
	// Loader is a workerLoader binding (cache LoaderID), which loads Workers
	// at run time; workerd needs --experimental for it.
	Loader BindingKind = "workerLoader"
	// DurableObject is the namespace of the Durable Object class
	// Binding.ClassName: one the Worker hosts (Worker.DurableObjects) when
	// Binding.Service is empty, else one the Worker Binding.Service hosts.
	DurableObject BindingKind = "durableObjectNamespace"
)

// D1Module is the workerd-internal module that gives a D1 binding its
// JavaScript API over a fetcher.
const D1Module = "cloudflare-internal:d1-api"

// Binding is one binding of a Worker: an env property (ES modules) or a
// global (service-worker syntax).
type Binding struct {
	Name string
	Kind BindingKind
	// Text is the value of a Text binding without Module.
	Text string
	// JSON is the JSON text of a JSON binding.
	JSON string
	// Module names the module of the Worker whose content is the value of a
	// Wasm or Data binding, or of a Text binding read from a file.
	Module string
	// Service is the external service (a Config.External name) of a KV, R2
	// or D1 binding, or the Worker (a Config.Workers name) of a Service
	// binding.
	Service string
	// Entrypoint is the named export a Service binding reaches; empty means
	// the default export.
	Entrypoint string
	// Env is the environment variable of a FromEnv binding.
	Env string
	// ClassName is the class of a DurableObject binding.
	ClassName string
}

// ObjectNamespace is a Durable Object class a Worker hosts: workerd runs
// its objects, one instance per ID, and keeps their storage under
// UniqueKey.
type ObjectNamespace struct {
	ClassName string
	// UniqueKey names the namespace's storage directory; it must not change
	// while its objects are kept.
	UniqueKey string
	// SQL gives the objects the SQL storage API (new_sqlite_classes).
	SQL bool
}

// DiskService is a directory workerd may read (and write, when Writable):
// the storage of hosted Durable Objects.
type DiskService struct {
	Name     string
	Path     string
	Writable bool
}

// Worker is one Worker served by workerd on its own socket.
type Worker struct {
	// Name is the service and socket name: unique in a Config, lowercase
	// letters, digits and '-'. `--socket-addr <Name>=<addr>` overrides Address.
	Name string
	// Modules are the Worker's modules, the main module first. For a
	// service-worker script, Modules[0] is the script and the other modules
	// only provide the content of Text/Data/Wasm bindings.
	Modules       []Module
	ServiceWorker bool
	// CompatibilityDate (YYYY-MM-DD, at most MaxCompatibilityDate) and flags.
	CompatibilityDate  string
	CompatibilityFlags []string
	Bindings           []Binding
	// Address is the socket address, e.g. "*:8081". Empty leaves it out of the
	// config; it must then be given with --socket-addr.
	Address string
	// UnixSocket is the path of a unix socket the Worker listens on besides
	// Address (UnixSocketPath): a gateway on the same host reaches it without
	// the pod network. Empty: none.
	UnixSocket string
	// Internal leaves the Worker without any socket: only the service
	// bindings of other Workers of the config reach it.
	Internal bool
	// Tail sends the Worker's trace events to Config.TailCollector (ignored
	// when the Config has no collector).
	Tail bool
	// TailName is the Worker name its trace events carry; empty means Name
	// (a traced twin carries the name of the Worker it copies).
	TailName string
	// Collector gives the Worker the tail Worker's bindings, COLLECTOR and
	// COLLECTOR_HOST, when the Config has a TailCollector: the loader host
	// forwards the trace events of the Workers it loads (tailForwardJS).
	Collector bool
	// DurableObjects are the Durable Object classes the Worker hosts.
	DurableObjects []ObjectNamespace
	// ObjectStorage is the disk service (one of Config.Disks) the hosted
	// objects are stored in; empty keeps them in memory.
	ObjectStorage string
}

// TracedSuffix ends the service name of a Worker's traced twin.
const TracedSuffix = "-traced"

// Traced returns the Worker's traced twin: the same code and bindings under
// the name <Name>-traced, with its trace events sent to the collector as the
// Worker's own, listening on port+TracedPortOffset. The Worker itself is left
// without a tail consumer.
func (w Worker) Traced(port int) Worker {
	t := w
	t.Name = w.Name + TracedSuffix
	t.Address = "*:" + strconv.Itoa(port+TracedPortOffset)
	if w.UnixSocket != "" {
		t.UnixSocket = UnixSocketPath(path.Dir(w.UnixSocket), port+TracedPortOffset)
	}
	t.Tail, t.TailName = true, w.Name
	return t.ObjectClient(w.Name)
}

// ObjectClient returns w without Durable Object classes of its own: its
// bindings to them reach the classes host hosts instead, so that the
// objects keep one live instance (a traced twin, a version that is not the
// script's active one).
func (w Worker) ObjectClient(host string) Worker {
	if len(w.DurableObjects) == 0 {
		return w
	}
	w.DurableObjects, w.ObjectStorage = nil, ""
	w.Bindings = slices.Clone(w.Bindings)
	for i, b := range w.Bindings {
		if b.Kind == DurableObject && b.Service == "" {
			w.Bindings[i].Service = host
		}
	}
	return w
}

// UnixSocketSuffix ends the socket name of a Worker's unix socket.
const UnixSocketSuffix = "-unix"

// UnixSocketPath is the unix socket, in dir, of the Worker whose TCP port is
// port: <dir>/<port>.sock. The builder names the sockets in the pod, the
// gateway the same files as the host sees them.
func UnixSocketPath(dir string, port int) string {
	return path.Join(dir, strconv.Itoa(port)+".sock")
}

// ExternalService is an HTTP service outside workerd that backs KV, R2
// and D1 bindings (octo's pod API); Headers are injected into every request,
// e.g. to name the namespace, bucket or database.
type ExternalService struct {
	Name    string
	Address string
	Headers map[string]string
}

// Config is one workerd process: Workers, the external services their
// bindings use, and where trace events go.
type Config struct {
	Workers  []Worker
	External []ExternalService
	// Disks are directories Workers store Durable Objects in.
	Disks []DiskService
	// TailCollector is the host:port of octo's trace collector. When set, a
	// tail Worker named TailWorkerName is added; every Worker with Tail set
	// names it in `tails`, and it POSTs the trace events it receives, as a
	// JSON array, to http://<TailCollector>/tail/<worker name> with header
	// x-octo-script: <worker name>.
	TailCollector string
	// TailHeaders are injected into every request to the collector, e.g.
	// the account and its pod credential (AccountHeader, AuthHeader).
	TailHeaders map[string]string
	// V8Flags are passed to V8 (the config's top-level v8Flags), e.g.
	// DefaultV8Flags.
	V8Flags []string
}

// DefaultV8Flags cap V8's young generation (semi-space) at 4 MiB. Without
// it a busy workerd grows from ~45 MB to ~545 MB RSS under sustained load
// (young-generation growth, not a leak) and a pod's memory limit kills it;
// with it RSS stays flat at ~133 MB with no measurable throughput cost
// (docs/benchmarks.md, "Memory under sustained load"). The old space is not
// capped: Workers get the 128 MB per isolate they get on Cloudflare.
var DefaultV8Flags = []string{"--max-semi-space-size=4"}

// Names of the services Render adds.
const (
	// TailWorkerName is the tail Worker that forwards trace events to octo.
	TailWorkerName = "octo-tail"
	// TailCollectorService is the external service the tail Worker posts to.
	TailCollectorService = "octo-tail-collector"
)

// The protocol between workerd pods and octo's pod-facing server: every part
// that writes or reads these names takes them from here.
const (
	// TailPath is the prefix of the collector URL the tail Worker POSTs to:
	// <TailPath><worker name>.
	TailPath = "/tail/"
	// TailHeader carries the name of the Worker the events belong to.
	TailHeader = "x-octo-script"
	// KVHeader carries "<accountID>/<namespaceID>" on every request of the
	// external service that backs a kv_namespace binding.
	KVHeader = "x-octo-kv"
	// R2Header carries "<accountID>/<bucket name>" on every request of the
	// external service that backs an r2_bucket binding (workerd's R2
	// protocol: cf-r2-request / cf-r2-metadata-size).
	R2Header = "x-octo-r2"
	// D1Header carries "<accountID>/<database UUID>" on every request of the
	// fetcher that backs a d1 binding (POST /query, /execute).
	D1Header = "x-octo-d1"
	// AssetsHeader carries "<accountID>/<manifest digest>" on every request
	// of the service that backs an assets binding (env.ASSETS.fetch), and
	// AssetsConfigHeader the JSON of how they are served (assets.Config).
	AssetsHeader       = "x-octo-assets"
	AssetsConfigHeader = "x-octo-assets-config"
	// AccountHeader names the account of the pod on every request of the
	// tail collector service.
	AccountHeader = "x-octo-account"
	// AuthHeader carries the pod credential of the account a request names
	// (in KVHeader, R2Header, D1Header or AccountHeader): the pod API refuses requests without
	// the right one.
	AuthHeader = "x-octo-auth"
)

// TracedPortOffset separates a Worker's traced twin from it: the twin (see
// Worker.Traced) listens on the Worker's port plus this offset. Tracing is
// attached only to twins, and the gateway sends a request to the twin only
// while someone tails the script: a tail consumer costs ~30 % of workerd's
// throughput and grows its memory even when it does nothing
// (docs/benchmarks.md), so untailed requests must not pass one.
const TracedPortOffset = 20000

// reservedNames are service names Render defines itself or workerd defines
// implicitly ("internet" backs global fetch(); octo leaves it at its default).
var reservedNames = map[string]bool{"internet": true, TailWorkerName: true, TailCollectorService: true}

// tailForwardJS posts a Worker's trace events to octo's collector: the
// function the tail Worker and the loader host (for the Workers it loads)
// share. script names the Worker whose events these are (workerd leaves
// scriptName null; it is filled in so that `wrangler tail` shows it).
const tailForwardJS = `async function forwardTrace(env, script, events) {
  try {
    // Trace items have read-only getters: copy them to set scriptName.
    const items = JSON.parse(JSON.stringify(events));
    for (const e of items) {
      if (e && e.scriptName == null) e.scriptName = script;
    }
    const res = await env.COLLECTOR.fetch("http://" + env.COLLECTOR_HOST + "` + TailPath + `" + encodeURIComponent(script), {
      method: "POST",
      headers: { "content-type": "application/json", "` + TailHeader + `": script },
      body: JSON.stringify(items),
    });
    await res.body?.cancel();
  } catch (err) {
    console.error("octo-tail: cannot forward trace events of " + script + ": " + err);
  }
}
`

// tailWorkerJS is the tail Worker. ctx.props.script names the Worker whose
// events these are.
const tailWorkerJS = `// octo-tail: forwards trace events to octo (generated by octo; see internal/workerd).
` + tailForwardJS + `
export default {
  async tail(events, env, ctx) {
    await forwardTrace(env, (ctx.props && ctx.props.script) || "unknown", events);
  },
};
`

var (
	serviceNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,126}[a-z0-9])?$`)
	bindingNameRE = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]{0,255}$`)
	envNameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)
	dateRE        = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
	flagRE        = regexp.MustCompile(`^[a-z0-9_]{1,128}$`)
	headerNameRE  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
	v8FlagRE      = regexp.MustCompile(`^--[a-z0-9-]{1,64}(=[A-Za-z0-9._-]{1,64})?$`)
	uniqueKeyRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// Render returns the text Cap'n Proto config (a `const config :Workerd.Config`)
// of c. The output is deterministic: Workers, services, sockets, bindings and
// headers are sorted by name; modules and flags keep their order (the first
// module is the main one).
func (c Config) Render() (string, error) {
	if err := c.validate(); err != nil {
		return "", err
	}
	workers := slices.Clone(c.Workers)
	sort.Slice(workers, func(i, j int) bool { return workers[i].Name < workers[j].Name })
	externals := slices.Clone(c.External)
	sort.Slice(externals, func(i, j int) bool { return externals[i].Name < externals[j].Name })

	var b strings.Builder
	b.WriteString("# workerd configuration generated by octo (internal/workerd). Do not edit.\n")
	b.WriteString("using Workerd = import \"/workerd/workerd.capnp\";\n\n")
	b.WriteString("const config :Workerd.Config = (\n  services = [\n")
	for _, w := range workers {
		renderWorker(&b, w, c.TailCollector)
	}
	for _, e := range externals {
		renderExternal(&b, e.Name, e.Address, e.Headers)
	}
	disks := slices.Clone(c.Disks)
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	for _, d := range disks {
		fmt.Fprintf(&b, "    (name = %s, disk = (path = %s, writable = %t)),\n", quote(d.Name), quote(d.Path), d.Writable)
	}
	if c.TailCollector != "" {
		fmt.Fprintf(&b, "    (name = %s, worker = (\n", quote(TailWorkerName))
		fmt.Fprintf(&b, "      modules = [(name = \"tail.js\", esModule = %s)],\n", quote(tailWorkerJS))
		fmt.Fprintf(&b, "      compatibilityDate = %s,\n", quote(MaxCompatibilityDate))
		fmt.Fprintf(&b, "      bindings = [(name = \"COLLECTOR\", service = %s), (name = \"COLLECTOR_HOST\", text = %s)],\n",
			quote(TailCollectorService), quote(c.TailCollector))
		b.WriteString("    )),\n")
		renderExternal(&b, TailCollectorService, c.TailCollector, c.TailHeaders)
	}
	b.WriteString("  ],\n  sockets = [\n")
	for _, w := range workers {
		if w.Internal {
			continue
		}
		fmt.Fprintf(&b, "    (name = %s, ", quote(w.Name))
		if w.Address != "" {
			fmt.Fprintf(&b, "address = %s, ", quote(w.Address))
		}
		fmt.Fprintf(&b, "http = (), service = %s),\n", quote(w.Name))
		if w.UnixSocket != "" {
			fmt.Fprintf(&b, "    (name = %s, address = %s, http = (), service = %s),\n",
				quote(w.Name+UnixSocketSuffix), quote("unix:"+w.UnixSocket), quote(w.Name))
		}
	}
	b.WriteString("  ],\n")
	if len(c.V8Flags) > 0 {
		fmt.Fprintf(&b, "  v8Flags = %s,\n", quoteList(c.V8Flags))
	}
	b.WriteString(");\n")
	return b.String(), nil
}

// renderExternal renders an external HTTP service that injects headers
// (sorted by name) into every request.
func renderExternal(b *strings.Builder, name, address string, headers map[string]string) {
	fmt.Fprintf(b, "    (name = %s, external = (address = %s, http = (", quote(name), quote(address))
	if len(headers) > 0 {
		names := make([]string, 0, len(headers))
		for n := range headers {
			names = append(names, n)
		}
		sort.Strings(names)
		b.WriteString("injectRequestHeaders = [")
		for i, n := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "(name = %s, value = %s)", quote(n), quote(headers[n]))
		}
		b.WriteString("]")
	}
	b.WriteString("))),\n")
}

func renderWorker(b *strings.Builder, w Worker, collector string) {
	tail := collector != ""
	if w.Collector && tail {
		w.Bindings = append(slices.Clone(w.Bindings),
			Binding{Name: "COLLECTOR", Kind: Fetcher, Service: TailCollectorService},
			Binding{Name: "COLLECTOR_HOST", Kind: Text, Text: collector})
	}
	paths := map[string]string{}
	for _, m := range w.Modules {
		paths[m.Name] = m.Path
	}
	fmt.Fprintf(b, "    (name = %s, worker = (\n", quote(w.Name))
	if w.ServiceWorker {
		fmt.Fprintf(b, "      serviceWorkerScript = embed %s,\n", quote(w.Modules[0].Path))
	} else {
		b.WriteString("      modules = [\n")
		for _, m := range w.Modules {
			fmt.Fprintf(b, "        (name = %s, %s),\n", quote(m.Name), moduleValue(m))
		}
		b.WriteString("      ],\n")
	}
	fmt.Fprintf(b, "      compatibilityDate = %s,\n", quote(w.CompatibilityDate))
	if len(w.CompatibilityFlags) > 0 {
		fmt.Fprintf(b, "      compatibilityFlags = %s,\n", quoteList(w.CompatibilityFlags))
	}
	if len(w.Bindings) > 0 {
		bindings := slices.Clone(w.Bindings)
		sort.Slice(bindings, func(i, j int) bool { return bindings[i].Name < bindings[j].Name })
		b.WriteString("      bindings = [\n")
		for _, bd := range bindings {
			fmt.Fprintf(b, "        (name = %s, %s),\n", quote(bd.Name), bindingValue(bd, paths))
		}
		b.WriteString("      ],\n")
	}
	if len(w.DurableObjects) > 0 {
		classes := slices.Clone(w.DurableObjects)
		sort.Slice(classes, func(i, j int) bool { return classes[i].ClassName < classes[j].ClassName })
		b.WriteString("      durableObjectNamespaces = [\n")
		for _, ns := range classes {
			fmt.Fprintf(b, "        (className = %s, uniqueKey = %s, enableSql = %t),\n", quote(ns.ClassName), quote(ns.UniqueKey), ns.SQL)
		}
		b.WriteString("      ],\n")
		if w.ObjectStorage != "" {
			fmt.Fprintf(b, "      durableObjectStorage = (localDisk = %s),\n", quote(w.ObjectStorage))
		} else {
			b.WriteString("      durableObjectStorage = (inMemory = void),\n")
		}
	}
	if w.Tail && tail {
		props, _ := json.Marshal(map[string]string{"script": cmp.Or(w.TailName, w.Name)})
		fmt.Fprintf(b, "      tails = [(name = %s, props = (json = %s))],\n", quote(TailWorkerName), quote(string(props)))
	}
	b.WriteString("    )),\n")
}

// moduleValue is the union member of a Worker.Module (types are validated).
func moduleValue(m Module) string {
	e := "embed " + quote(m.Path)
	switch m.Type {
	case apiv1.ModuleESModule:
		return "esModule = " + e
	case apiv1.ModuleCommonJS:
		return "commonJsModule = " + e
	case apiv1.ModuleText:
		return "text = " + e
	case apiv1.ModuleData:
		return "data = " + e
	case apiv1.ModuleWasm:
		return "wasm = " + e
	case apiv1.ModuleJSON:
		return "json = " + e
	case apiv1.ModulePython:
		return "pythonModule = " + e
	case apiv1.ModulePythonRequirement:
		return `pythonRequirement = ""`
	}
	panic("workerd: unvalidated module type " + string(m.Type))
}

// quoteList renders a Cap'n Proto list of text: ["a", "b"].
func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = quote(it)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// bindingValue is the union member of a Worker.Binding (validated).
func bindingValue(bd Binding, paths map[string]string) string {
	switch bd.Kind {
	case Text:
		if bd.Module != "" {
			return "text = embed " + quote(paths[bd.Module])
		}
		return "text = " + quote(bd.Text)
	case JSON:
		return "json = " + quote(bd.JSON)
	case Data:
		return "data = embed " + quote(paths[bd.Module])
	case Wasm:
		return "wasmModule = embed " + quote(paths[bd.Module])
	case KV:
		return "kvNamespace = " + quote(bd.Service)
	case R2:
		return "r2Bucket = " + quote(bd.Service)
	case D1:
		return fmt.Sprintf("wrapped = (moduleName = %s, innerBindings = [(name = \"fetcher\", service = %s)])", quote(D1Module), quote(bd.Service))
	case Service:
		if bd.Entrypoint != "" {
			return fmt.Sprintf("service = (name = %s, entrypoint = %s)", quote(bd.Service), quote(bd.Entrypoint))
		}
		return "service = " + quote(bd.Service)
	case FromEnv:
		return "fromEnvironment = " + quote(bd.Env)
	case Fetcher:
		return "service = " + quote(bd.Service)
	case Loader:
		return "workerLoader = (id = " + quote(LoaderID) + ")"
	case DurableObject:
		if bd.Service != "" {
			return fmt.Sprintf("durableObjectNamespace = (className = %s, serviceName = %s)", quote(bd.ClassName), quote(bd.Service))
		}
		return fmt.Sprintf("durableObjectNamespace = (className = %s)", quote(bd.ClassName))
	}
	panic("workerd: unvalidated binding kind " + string(bd.Kind))
}

// quote returns s as a Cap'n Proto text literal. Everything outside
// printable ASCII, and the quote and backslash, is escaped, byte by byte
// (\xNN sequences of UTF-8), so the config is plain ASCII.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c >= 0x7f {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// validate checks every name and reference, so that workerd never sees a
// config it cannot parse or resolve.
func (c Config) validate() error {
	if len(c.Workers) == 0 {
		return fmt.Errorf("workerd config: no workers")
	}
	for _, f := range c.V8Flags {
		if !v8FlagRE.MatchString(f) {
			return fmt.Errorf("workerd config: V8 flag %q is invalid: want --name or --name=value", f)
		}
	}
	services := map[string]string{} // name -> what
	claim := func(name, what string) error {
		if !serviceNameRE.MatchString(name) {
			return fmt.Errorf("workerd config: %s name %q is invalid: use lowercase letters, digits and '-' (at most 128)", what, name)
		}
		if reservedNames[name] {
			return fmt.Errorf("workerd config: %s name %q is reserved", what, name)
		}
		if prev, ok := services[name]; ok {
			return fmt.Errorf("workerd config: %s name %q is already used by a %s", what, name, prev)
		}
		services[name] = what
		return nil
	}
	for _, e := range c.External {
		if err := claim(e.Name, externalService); err != nil {
			return err
		}
		if err := validAddress(e.Address); err != nil {
			return fmt.Errorf("workerd config: external service %s: %w", e.Name, err)
		}
		for n := range e.Headers {
			if !headerNameRE.MatchString(n) {
				return fmt.Errorf("workerd config: external service %s: invalid header name %q", e.Name, n)
			}
		}
	}
	for _, d := range c.Disks {
		if err := claim(d.Name, diskService); err != nil {
			return err
		}
		if !path.IsAbs(d.Path) || path.Clean(d.Path) != d.Path || strings.ContainsAny(d.Path, "\"\\\n\x00") {
			return fmt.Errorf("workerd config: disk service %s: path %q is not a clean absolute path", d.Name, d.Path)
		}
	}
	classes := map[string]map[string]bool{} // worker → the classes it hosts
	for _, w := range c.Workers {
		if err := claim(w.Name, "worker"); err != nil {
			return err
		}
		classes[w.Name] = map[string]bool{}
		for _, ns := range w.DurableObjects {
			classes[w.Name][ns.ClassName] = true
		}
	}
	for _, w := range c.Workers {
		if err := w.validate(services); err != nil {
			return fmt.Errorf("workerd config: worker %s: %w", w.Name, err)
		}
		for _, bd := range w.Bindings {
			host := cmp.Or(bd.Service, w.Name)
			if bd.Kind == DurableObject && !classes[host][bd.ClassName] {
				return fmt.Errorf("workerd config: worker %s: binding %s: worker %s hosts no Durable Object class %q", w.Name, bd.Name, host, bd.ClassName)
			}
		}
	}
	if c.TailCollector != "" {
		if err := validAddress(c.TailCollector); err != nil {
			return fmt.Errorf("workerd config: tail collector: %w", err)
		}
		for n := range c.TailHeaders {
			if !headerNameRE.MatchString(n) {
				return fmt.Errorf("workerd config: tail collector: invalid header name %q", n)
			}
		}
	}
	return nil
}

func (w Worker) validate(services map[string]string) error {
	if len(w.Modules) == 0 {
		return fmt.Errorf("no modules")
	}
	if !dateRE.MatchString(w.CompatibilityDate) {
		return fmt.Errorf("compatibility date %q is not YYYY-MM-DD", w.CompatibilityDate)
	}
	for _, f := range w.CompatibilityFlags {
		if !flagRE.MatchString(f) {
			return fmt.Errorf("invalid compatibility flag %q", f)
		}
	}
	if w.Address != "" {
		if err := validAddress(w.Address); err != nil {
			return err
		}
	}
	if w.UnixSocket != "" && (!path.IsAbs(w.UnixSocket) || strings.ContainsAny(w.UnixSocket, "\"\\\n")) {
		return fmt.Errorf("unix socket %q is not a plain absolute path", w.UnixSocket)
	}
	modules := map[string]Module{}
	for i, m := range w.Modules {
		if m.Name == "" || !utf8.ValidString(m.Name) || strings.ContainsRune(m.Name, 0) {
			return fmt.Errorf("invalid module name %q", m.Name)
		}
		if _, dup := modules[m.Name]; dup {
			return fmt.Errorf("module %q is listed twice", m.Name)
		}
		modules[m.Name] = m
		if err := validPath(m.Path); err != nil {
			return fmt.Errorf("module %q: %w", m.Name, err)
		}
		switch {
		case w.ServiceWorker && i == 0:
			if m.Type != apiv1.ModuleServiceWorker && m.Type != apiv1.ModuleCommonJS {
				return fmt.Errorf("the script of a service worker must be JavaScript, not %s", m.Type)
			}
		case w.ServiceWorker:
			// Other modules of a service worker only back Text/Data/Wasm bindings.
		case i == 0 && m.Type != apiv1.ModuleESModule && m.Type != apiv1.ModuleCommonJS && m.Type != apiv1.ModulePython:
			return fmt.Errorf("main module %q must be JavaScript (or Python), not %s", m.Name, m.Type)
		default:
			switch m.Type {
			case apiv1.ModuleESModule, apiv1.ModuleCommonJS, apiv1.ModuleText, apiv1.ModuleData,
				apiv1.ModuleWasm, apiv1.ModuleJSON, apiv1.ModulePython, apiv1.ModulePythonRequirement:
			default:
				return fmt.Errorf("module %q has type %q, which workerd cannot load", m.Name, m.Type)
			}
		}
	}
	keys := map[string]bool{}
	for i, ns := range w.DurableObjects {
		if !bindingNameRE.MatchString(ns.ClassName) || !uniqueKeyRE.MatchString(ns.UniqueKey) {
			return fmt.Errorf("Durable Object class %q (key %q) is invalid", ns.ClassName, ns.UniqueKey)
		}
		if keys[ns.UniqueKey] || slices.ContainsFunc(w.DurableObjects[:i], func(o ObjectNamespace) bool { return o.ClassName == ns.ClassName }) {
			return fmt.Errorf("Durable Object class %q or its key %q is listed twice", ns.ClassName, ns.UniqueKey)
		}
		keys[ns.UniqueKey] = true
	}
	if w.ObjectStorage != "" && services[w.ObjectStorage] != diskService {
		return fmt.Errorf("Durable Object storage %q is not a disk service of the config", w.ObjectStorage)
	}
	names := map[string]bool{}
	for _, bd := range w.Bindings {
		if !bindingNameRE.MatchString(bd.Name) {
			return fmt.Errorf("invalid binding name %q", bd.Name)
		}
		if names[bd.Name] {
			return fmt.Errorf("binding %q is defined twice", bd.Name)
		}
		names[bd.Name] = true
		if err := bd.validate(modules, services); err != nil {
			return fmt.Errorf("binding %s: %w", bd.Name, err)
		}
	}
	return nil
}

// externalService and diskService are what validate calls an
// ExternalService and a DiskService.
const (
	externalService = "external service"
	diskService     = "disk service"
)

func (bd Binding) validate(modules map[string]Module, services map[string]string) error {
	needModule := func() error {
		if bd.Module == "" {
			return fmt.Errorf("%s binding names no module", bd.Kind)
		}
		if _, ok := modules[bd.Module]; !ok {
			return fmt.Errorf("module %q is not a module of the worker", bd.Module)
		}
		return nil
	}
	switch bd.Kind {
	case Text:
		if bd.Module != "" {
			return needModule()
		}
	case JSON:
		if !json.Valid([]byte(bd.JSON)) {
			return fmt.Errorf("json value %q is not valid JSON", bd.JSON)
		}
	case Data, Wasm:
		return needModule()
	case KV, R2, D1, Fetcher:
		if services[bd.Service] != externalService {
			return fmt.Errorf("%s service %q is not defined", bd.Kind, bd.Service)
		}
	case Service:
		if services[bd.Service] != "worker" {
			return fmt.Errorf("service binding to %q: no such worker in the config", bd.Service)
		}
		if bd.Entrypoint != "" && !bindingNameRE.MatchString(bd.Entrypoint) {
			return fmt.Errorf("invalid entrypoint %q", bd.Entrypoint)
		}
	case FromEnv:
		if !envNameRE.MatchString(bd.Env) {
			return fmt.Errorf("invalid environment variable name %q", bd.Env)
		}
	case Loader:
	case DurableObject:
		if !bindingNameRE.MatchString(bd.ClassName) {
			return fmt.Errorf("invalid Durable Object class %q", bd.ClassName)
		}
		if bd.Service != "" && services[bd.Service] != "worker" {
			return fmt.Errorf("Durable Object class %q: no worker %q in the config", bd.ClassName, bd.Service)
		}
	default:
		return fmt.Errorf("unknown binding kind %q", bd.Kind)
	}
	return nil
}

// validPath accepts clean relative paths that stay below the config's directory.
func validPath(p string) error {
	if p == "" || strings.ContainsRune(p, 0) || !utf8.ValidString(p) {
		return fmt.Errorf("invalid path %q", p)
	}
	if path.IsAbs(p) || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("path %q must be a clean relative path below the config file", p)
	}
	return nil
}

// validAddress checks a socket or service address loosely (workerd parses it).
func validAddress(a string) error {
	if a == "" || len(a) > 512 || strings.IndexFunc(a, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
		return fmt.Errorf("invalid address %q", a)
	}
	return nil
}
