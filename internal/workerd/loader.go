package workerd

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	apiv1 "github.com/octohq/octo/api/v1"
)

// The loader is the fast path of a redeploy (docs/adr/0007): each bundle
// pod runs a host Worker with a workerLoader binding, and the gateway sends
// a request for a version that no pod serves yet to that host with the
// version in LoaderVersionHeader. The host fetches the version's code from
// the pod API (LoaderCodePath) once, loads it as a child isolate under the
// version's ID, and forwards the request to it; the usual build and rollout
// replace it within seconds.
const (
	// LoaderWorkerName is the host Worker's service name.
	LoaderWorkerName = "octo-loader"
	// LoaderCodeService is the external service (the pod API) the host
	// fetches code from, with the account and its credential as headers.
	LoaderCodeService = "octo-loader-code"
	// LoaderVersionHeader names, on a request to the host, the version to
	// run; the host removes it before the Worker sees the request.
	LoaderVersionHeader = "x-octo-version"
	// LoaderScriptHeader names the script of that version.
	LoaderScriptHeader = "x-octo-version-script"
	// LoaderAccountHeader names the account of that version, for a host
	// that serves several accounts (a warm-start host, see
	// internal/warmstart): the host passes it to its code service as
	// AccountHeader. A bundle pod's code service sets its own account.
	LoaderAccountHeader = "x-octo-version-account"
	// LoaderPreloadHeader, on a request to the host, only loads the
	// version (its modules evaluated, as a static Worker's are when its
	// process starts) and answers 204, or the host's 503 when it cannot:
	// no handler of the Worker runs.
	LoaderPreloadHeader = "x-octo-preload"
	// LoaderTraceHeader, on a request to the host, asks for the version's
	// traced twin: a second load of it whose trace events go to octo's
	// collector under the Worker name the header gives (ServiceName).
	// Versions the loader can run have no static twin (Loadable).
	LoaderTraceHeader = "x-octo-trace"
	// LoaderFailedHeader marks the host's own 503 when the version could
	// not be loaded (never a Worker's response: the host removes it from
	// those): the gateway may then retry on the previous deployment, or on
	// the untraced Worker for a traced request.
	LoaderFailedHeader = "x-octo-loader-failed"
	// LoaderCodePath is the pod API's prefix of a version's code:
	// GET <LoaderCodePath><script>/<version ID>, with AccountHeader and
	// AuthHeader, answers a LoaderCode as JSON.
	LoaderCodePath = "/code/"
	// LoaderID is the workerLoader cache shared by the host's requests.
	LoaderID = "octo"
	// LoaderCompatibilityDate is the host Worker's own date.
	LoaderCompatibilityDate = "2026-04-01"
)

// LoaderCode is what the host Worker needs to load one version: the fields
// of workerd's WorkerCode, in a form JSON carries (binary modules in
// base64, each binding with its kind).
type LoaderCode struct {
	CompatibilityDate  string          `json:"compatibilityDate"`
	CompatibilityFlags []string        `json:"compatibilityFlags,omitempty"`
	MainModule         string          `json:"mainModule"`
	Modules            []LoaderModule  `json:"modules"`
	Env                []LoaderBinding `json:"env,omitempty"`
}

// LoaderModule is one module: Type is the WorkerCode module kind (js, cjs,
// text, data, wasm, json); Text holds the source of js, cjs, text and json
// modules, Base64 the bytes of data and wasm modules.
type LoaderModule struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Text   string `json:"text,omitempty"`
	Base64 string `json:"base64,omitempty"`
}

// LoaderBinding is one env property: Text (vars and secrets) or JSON.
type LoaderBinding struct {
	Name string          `json:"name"`
	Text *string         `json:"text,omitempty"`
	JSON json.RawMessage `json:"json,omitempty"`
}

// loaderModuleTypes maps the module types the loader can run to WorkerCode's.
var loaderModuleTypes = map[apiv1.ModuleType]string{
	apiv1.ModuleESModule: "js", apiv1.ModuleCommonJS: "cjs", apiv1.ModuleText: "text",
	apiv1.ModuleData: "data", apiv1.ModuleWasm: "wasm", apiv1.ModuleJSON: "json",
}

// Loadable reports why the loader cannot run v, or nil when it can: an ES
// module Worker whose modules are JavaScript, text, data, WebAssembly or
// JSON, and whose bindings are vars, JSON and secrets only. KV, R2, D1 and
// service bindings cannot be handed to a child isolate (their objects do
// not cross into it), so such versions wait for their pod.
func Loadable(v *apiv1.WorkerVersion) error {
	s := &v.Spec
	if s.MainModule == "" {
		return fmt.Errorf("version %s is a service-worker script", s.VersionID)
	}
	for _, m := range s.Modules {
		if _, ok := loaderModuleTypes[m.Type]; !ok && m.Type != apiv1.ModuleSourceMap {
			return fmt.Errorf("version %s: module %q has type %s", s.VersionID, m.Name, m.Type)
		}
	}
	for _, b := range s.Bindings {
		switch b.Type {
		case apiv1.BindingPlainText, apiv1.BindingJSON, apiv1.BindingSecretText:
		default:
			return fmt.Errorf("version %s: binding %s has type %s", s.VersionID, b.Name, b.Type)
		}
	}
	if s.Assets != nil && s.Assets.Binding != "" {
		return fmt.Errorf("version %s: binding %s is an assets binding", s.VersionID, s.Assets.Binding)
	}
	if s.DurableObjects != nil && len(s.DurableObjects.Classes) > 0 {
		return fmt.Errorf("version %s: the script has Durable Object classes, which run in one pod only", s.VersionID)
	}
	return nil
}

// NewLoaderCode assembles the code of v from its modules' content (by
// module name) and its secrets' values (by binding name; a secret without
// a value is null, as in a static Worker).
func NewLoaderCode(v *apiv1.WorkerVersion, modules map[string][]byte, secrets map[string]string) (LoaderCode, error) {
	if err := Loadable(v); err != nil {
		return LoaderCode{}, err
	}
	s := &v.Spec
	c := LoaderCode{
		CompatibilityDate:  ClampCompatibilityDate(s.CompatibilityDate),
		CompatibilityFlags: s.CompatibilityFlags,
		MainModule:         s.MainModule,
	}
	for _, m := range s.Modules {
		if m.Type == apiv1.ModuleSourceMap {
			continue
		}
		data, ok := modules[m.Name]
		if !ok {
			return LoaderCode{}, fmt.Errorf("version %s: no content for module %q", s.VersionID, m.Name)
		}
		lm := LoaderModule{Name: m.Name, Type: loaderModuleTypes[m.Type]}
		if lm.Type == "data" || lm.Type == "wasm" {
			lm.Base64 = base64.StdEncoding.EncodeToString(data)
		} else {
			lm.Text = string(data)
		}
		c.Modules = append(c.Modules, lm)
	}
	for _, b := range s.Bindings {
		lb := LoaderBinding{Name: b.Name}
		switch b.Type {
		case apiv1.BindingPlainText:
			lb.Text = &b.Text
		case apiv1.BindingJSON:
			if b.JSON == nil || !json.Valid(b.JSON.Raw) {
				return LoaderCode{}, fmt.Errorf("version %s: json binding %s has no valid value", s.VersionID, b.Name)
			}
			lb.JSON = json.RawMessage(b.JSON.Raw)
		case apiv1.BindingSecretText:
			if value, ok := secrets[b.Name]; ok {
				lb.Text = &value
			} else {
				lb.JSON = json.RawMessage("null") // as an unset fromEnvironment binding
			}
		}
		c.Env = append(c.Env, lb)
	}
	return c, nil
}

// LoaderWorker is the host Worker, listening on address and unixSocket
// (see Worker), and its module's source; credential is what a scheduled
// run must carry (ScheduledAuthBinding). Its code service must be an
// ExternalService named LoaderCodeService of the same Config, and workerd
// must run with --experimental (workerLoader bindings are experimental).
func LoaderWorker(address, unixSocket, credential string) (Worker, string) {
	return Worker{
		Collector:         true,
		Name:              LoaderWorkerName,
		Modules:           []Module{{Name: "loader.js", Type: apiv1.ModuleESModule, Path: LoaderWorkerName + "/loader.js"}},
		CompatibilityDate: LoaderCompatibilityDate,
		// The scheduled() of loaded Workers' entrypoints (ScheduledPath).
		CompatibilityFlags: []string{ScheduledFlag},
		Bindings: []Binding{
			{Name: "LOADER", Kind: Loader},
			// The credential of scheduled runs (ScheduledPath).
			{Name: ScheduledAuthBinding, Kind: Text, Text: credential},
			{Name: "CODE", Kind: Fetcher, Service: LoaderCodeService},
		},
		Address:    address,
		UnixSocket: unixSocket,
	}, loaderJS
}

// loaderJS is the host Worker. A load that fails (the pod API could not
// answer) stays cached by workerd under its ID, so a request after
// loaderRetryMs tries again under a new one; until then requests get the
// host's 503 at once. The host removes LoaderFailedHeader from the Workers'
// own responses: only its own 503 carries it.
const loaderJS = `// octo-loader: runs versions that no static Worker of this pod serves yet (generated by octo; see internal/workerd).
import { WorkerEntrypoint } from "cloudflare:workers";
` + tailForwardJS + scheduledArgsJS + `
// The tail of a traced load: ctx.props.script is the Worker name its events carry.
export class ChildTail extends WorkerEntrypoint {
  async tail(events) {
    await forwardTrace(this.env, this.ctx.props.script, events);
  }
}

const attempts = new Map(); // script/version → { n: the load attempt to use, retryAt }
const failedLoads = new Set(); // load IDs whose code fetch failed
const loaderRetryMs = ` + "2000" + `;
const preloadProbe = "octoPreloadProbe_8c1f"; // a method no Worker has: its call only loads the Worker

function decode(code) {
  const modules = {};
  for (const m of code.modules) {
    switch (m.type) {
      case "data":
      case "wasm":
        modules[m.name] = { [m.type]: Uint8Array.from(atob(m.base64), (c) => c.charCodeAt(0)).buffer };
        break;
      case "json":
        modules[m.name] = { json: JSON.parse(m.text) };
        break;
      default:
        modules[m.name] = { [m.type]: m.text };
    }
  }
  const env = {};
  for (const b of code.env || []) env[b.name] = "json" in b ? b.json : b.text;
  return { compatibilityDate: code.compatibilityDate, compatibilityFlags: code.compatibilityFlags || [],
           mainModule: code.mainModule, modules, env };
}

function failed(message) {
  return new Response("octo: " + message + "\n", { status: 503, headers: {
    "content-type": "text/plain; charset=utf-8", "retry-after": "1", "` + LoaderFailedHeader + `": "1" } });
}

export default {
  async fetch(request, env, ctx) {
    const version = request.headers.get("` + LoaderVersionHeader + `");
    const script = request.headers.get("` + LoaderScriptHeader + `");
    if (!version || !script) return failed("the loader needs ` + LoaderVersionHeader + ` and ` + LoaderScriptHeader + `");
    const trace = env.COLLECTOR ? request.headers.get("` + LoaderTraceHeader + `") : null;
    const account = request.headers.get("` + LoaderAccountHeader + `");
    // A host of several accounts loads a version for its own account only.
    const key = (account ? account + "/" : "") + script + "/" + version + (trace ? "#traced" : "");
    const attempt = attempts.get(key) || { n: 0, retryAt: 0 };
    if (Date.now() < attempt.retryAt) return failed("cannot load " + script + " version " + version + " (retrying shortly)");
    const id = attempt.n ? key + "." + attempt.n : key;
    const worker = env.LOADER.get(id, async () => {
      try {
        const url = "http://code` + LoaderCodePath + `" + encodeURIComponent(script) + "/" + encodeURIComponent(version);
        const res = await env.CODE.fetch(url, account ? { headers: { "` + AccountHeader + `": account } } : undefined);
        if (!res.ok) throw new Error(res.status + " " + (await res.text()).trim());
        const code = decode(await res.json());
        if (trace) code.tails = [ctx.exports.ChildTail({ props: { script: trace } })];
        return code;
      } catch (err) {
        failedLoads.add(id);
        throw new Error("code of " + script + " version " + version + ": " + err.message);
      }
    });
    const headers = new Headers(request.headers);
    headers.delete("` + LoaderVersionHeader + `");
    headers.delete("` + LoaderScriptHeader + `");
    headers.delete("` + LoaderTraceHeader + `");
    headers.delete("` + LoaderAccountHeader + `");
    let res;
    try {
      if (request.headers.has("` + LoaderPreloadHeader + `")) {
        // Calling a method no Worker has makes workerd load the Worker
        // (and evaluate its modules) without running any of its handlers.
        try {
          await worker.getEntrypoint()[preloadProbe]();
        } catch (err) {
          if (failedLoads.has(id)) throw err;
        }
        return new Response(null, { status: 204 });
      }
      if (request.headers.has("` + ScheduledCronHeader + `")) {
        if (!scheduledAllowed(request, env)) {
          return new Response("octo-loader: scheduled runs need octo's credential\n", { status: 403 });
        }
        return Response.json(await worker.getEntrypoint().scheduled(scheduledArgs(request)));
      }
      res = await worker.getEntrypoint().fetch(new Request(request, { headers }));
    } catch (err) {
      if (failedLoads.has(id)) {
        if (attempts.size > 1000) attempts.clear();
        if (failedLoads.size > 1000) failedLoads.clear();
        attempts.set(key, { n: attempt.n + 1, retryAt: Date.now() + loaderRetryMs });
        return failed("cannot load " + script + " version " + version);
      }
      throw err;
    }
    if (res.headers.has("` + LoaderFailedHeader + `")) {
      res = new Response(res.body, res);
      res.headers.delete("` + LoaderFailedHeader + `");
    }
    return res;
  },
};
`
