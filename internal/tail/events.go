package tail

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// Event is one trace event in the shape `wrangler tail` prints
// (wrangler's TailEventMessage).
type Event struct {
	WallTime                 float64           `json:"wallTime"`
	CPUTime                  float64           `json:"cpuTime"`
	Truncated                bool              `json:"truncated"`
	ExecutionModel           string            `json:"executionModel"`
	Outcome                  string            `json:"outcome"`
	ScriptName               string            `json:"scriptName"`
	ScriptVersion            *ScriptVersion    `json:"scriptVersion,omitempty"`
	DiagnosticsChannelEvents []json.RawMessage `json:"diagnosticsChannelEvents"`
	Exceptions               []Exception       `json:"exceptions"`
	Logs                     []Log             `json:"logs"`
	EventTimestamp           int64             `json:"eventTimestamp"`
	// Event is what triggered the invocation: {"request":{url,method,
	// headers,cf},"response":{status}} for fetch, {"cron",...} for
	// scheduled, ... Always a JSON object.
	Event json.RawMessage `json:"event"`

	// Account is the account of the script (not sent).
	Account string `json:"-"`
}

// ScriptVersion names the version that ran.
type ScriptVersion struct {
	ID      string `json:"id"`
	Tag     string `json:"tag,omitempty"`
	Message string `json:"message,omitempty"`
}

// Log is one console call.
type Log struct {
	// Message holds the console call's arguments.
	Message   []json.RawMessage `json:"message"`
	Level     string            `json:"level"`
	Timestamp int64             `json:"timestamp"`
}

// Exception is one uncaught exception.
type Exception struct {
	Name      string `json:"name"`
	Message   string `json:"message"`
	Timestamp int64  `json:"timestamp"`
	Stack     string `json:"stack,omitempty"`
}

// request is the part of a fetch event the filters look at.
type request struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// Request returns the fetch request of the event, or false for other kinds.
func (e *Event) request() (request, bool) {
	var ev struct {
		Request *request `json:"request"`
	}
	if json.Unmarshal(e.Event, &ev) != nil || ev.Request == nil {
		return request{}, false
	}
	return *ev.Request, true
}

// FromTraceItem maps one trace item, as the tail worker posts it
// (JSON.stringify of a workerd TraceItem), to an Event of script and
// versionID (either may be empty: then the item's own fields are kept).
func FromTraceItem(item json.RawMessage, account, script, versionID string) (Event, error) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(item, &f); err != nil {
		return Event{}, fmt.Errorf("trace item: %w", err)
	}
	if f == nil {
		return Event{}, fmt.Errorf("trace item is null")
	}
	ev := Event{
		WallTime:                 number(f["wallTime"]),
		CPUTime:                  number(f["cpuTime"]),
		ExecutionModel:           str(f["executionModel"]),
		Outcome:                  str(f["outcome"]),
		ScriptName:               str(f["scriptName"]),
		EventTimestamp:           int64(number(f["eventTimestamp"])),
		DiagnosticsChannelEvents: []json.RawMessage{},
		Exceptions:               []Exception{},
		Logs:                     []Log{},
		Event:                    eventObject(f["event"]),
		Account:                  account,
	}
	_ = json.Unmarshal(f["truncated"], &ev.Truncated)
	if ev.ExecutionModel == "" {
		ev.ExecutionModel = "stateless"
	}
	if ev.Outcome == "" {
		ev.Outcome = "unknown"
	}
	if script != "" {
		ev.ScriptName = script
	}
	var sv ScriptVersion
	if json.Unmarshal(f["scriptVersion"], &sv) == nil && sv.ID != "" {
		ev.ScriptVersion = &sv
	}
	if versionID != "" {
		if ev.ScriptVersion == nil || ev.ScriptVersion.ID != versionID {
			ev.ScriptVersion = &ScriptVersion{ID: versionID}
		}
	}
	var dce []json.RawMessage
	if json.Unmarshal(f["diagnosticsChannelEvents"], &dce) == nil && dce != nil {
		ev.DiagnosticsChannelEvents = dce
	}
	var logs []map[string]json.RawMessage
	_ = json.Unmarshal(f["logs"], &logs)
	for _, l := range logs {
		ev.Logs = append(ev.Logs, Log{Message: messageArray(l["message"]), Level: orDefault(str(l["level"]), "log"), Timestamp: int64(number(l["timestamp"]))})
	}
	var excs []map[string]json.RawMessage
	_ = json.Unmarshal(f["exceptions"], &excs)
	for _, x := range excs {
		ev.Exceptions = append(ev.Exceptions, Exception{
			Name: orDefault(str(x["name"]), "Error"), Message: str(x["message"]),
			Timestamp: int64(number(x["timestamp"])), Stack: str(x["stack"]),
		})
	}
	return ev, nil
}

// ParseTraceItems reads a tail worker's body: a JSON array of trace items
// (or one item).
func ParseTraceItems(body []byte) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '{' {
		return []json.RawMessage{body}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("tail body is not a JSON array of trace items: %w", err)
	}
	return items, nil
}

func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func number(raw json.RawMessage) float64 {
	var n float64
	if json.Unmarshal(raw, &n) != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0
	}
	return n
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// messageArray returns a log message as an array of values: workerd sends
// the console arguments as an array; anything else is wrapped.
func messageArray(raw json.RawMessage) []json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return []json.RawMessage{}
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) == nil {
		if arr == nil {
			arr = []json.RawMessage{}
		}
		return arr
	}
	return []json.RawMessage{raw}
}

// eventObject returns the trace item's event as a JSON object. wrangler's
// pretty printer tests `"cron" in event`, which throws on null. A fetch
// request gets headers and cf objects when missing.
func eventObject(raw json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return json.RawMessage(`{}`)
	}
	if reqRaw, ok := m["request"]; ok {
		var req map[string]json.RawMessage
		if json.Unmarshal(reqRaw, &req) == nil && req != nil {
			changed := false
			for _, k := range []string{"headers", "cf"} {
				var obj map[string]json.RawMessage
				if json.Unmarshal(req[k], &obj) != nil || obj == nil {
					req[k] = json.RawMessage(`{}`)
					changed = true
				}
			}
			if changed {
				if b, err := json.Marshal(req); err == nil {
					m["request"] = b
					if out, err := json.Marshal(m); err == nil {
						return out
					}
				}
			}
		}
	}
	return raw
}

// filters are the session filters wrangler sends when it creates a tail: sampling_rate,
// outcome, method, header, query, scriptVersion; client_ip is accepted and
// ignored (every client is local).
type filters struct {
	sampling float64 // < 1 samples; 1 keeps everything
	outcomes []string
	methods  []string
	headers  []headerFilter
	queries  []string
	versions []string
}

type headerFilter struct {
	key, query string
}

// parseFilters reads {"filters":[...]} or a bare [...] leniently: unknown
// and malformed entries are ignored.
func parseFilters(raw json.RawMessage) filters {
	f := filters{sampling: 1}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return f
	}
	var entries []map[string]json.RawMessage
	if raw[0] == '{' {
		var body struct {
			Filters []map[string]json.RawMessage `json:"filters"`
		}
		if json.Unmarshal(raw, &body) != nil {
			return f
		}
		entries = body.Filters
	} else if json.Unmarshal(raw, &entries) != nil {
		return f
	}
	for _, e := range entries {
		for k, v := range e {
			switch k {
			case "sampling_rate":
				var r float64
				if json.Unmarshal(v, &r) == nil && r >= 0 && r < 1 {
					f.sampling = r
				}
			case "outcome":
				f.outcomes = append(f.outcomes, stringList(v)...)
			case "method":
				for _, m := range stringList(v) {
					f.methods = append(f.methods, strings.ToUpper(m))
				}
			case "header":
				var h struct {
					Key   string `json:"key"`
					Query string `json:"query"`
				}
				if json.Unmarshal(v, &h) == nil && h.Key != "" {
					f.headers = append(f.headers, headerFilter{key: strings.ToLower(h.Key), query: h.Query})
				}
			case "query":
				if q := str(v); q != "" {
					f.queries = append(f.queries, q)
				}
			case "scriptVersion":
				f.versions = append(f.versions, stringList(v)...)
			}
		}
	}
	return f
}

// stringList reads a string or an array of strings.
func stringList(raw json.RawMessage) []string {
	var l []string
	if json.Unmarshal(raw, &l) == nil {
		return l
	}
	if s := str(raw); s != "" {
		return []string{s}
	}
	return nil
}

// match reports whether ev passes every filter but sampling.
func (f *filters) match(ev *Event) bool {
	if len(f.outcomes) > 0 && !contains(f.outcomes, ev.Outcome) {
		return false
	}
	if len(f.versions) > 0 && (ev.ScriptVersion == nil || !contains(f.versions, ev.ScriptVersion.ID)) {
		return false
	}
	if len(f.methods) > 0 || len(f.headers) > 0 {
		req, ok := ev.request()
		if !ok {
			return false
		}
		if len(f.methods) > 0 && !contains(f.methods, strings.ToUpper(req.Method)) {
			return false
		}
		for _, h := range f.headers {
			v, found := "", false
			for k, hv := range req.Headers {
				if strings.EqualFold(k, h.key) {
					v, found = hv, true
					break
				}
			}
			if !found || (h.query != "" && !strings.Contains(v, h.query)) {
				return false
			}
		}
	}
	if len(f.queries) > 0 {
		text := searchText(ev)
		for _, q := range f.queries {
			if !strings.Contains(text, q) {
				return false
			}
		}
	}
	return true
}

// searchText is what the query filter searches: console messages and
// exceptions.
func searchText(ev *Event) string {
	var b strings.Builder
	for _, l := range ev.Logs {
		for _, m := range l.Message {
			if s := str(m); s != "" {
				b.WriteString(s)
			} else {
				b.Write(m)
			}
			b.WriteByte(' ')
		}
		b.WriteByte('\n')
	}
	for _, x := range ev.Exceptions {
		b.WriteString(x.Name + ": " + x.Message + "\n")
	}
	return b.String()
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
