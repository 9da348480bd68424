package fakecf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	apiv1 "github.com/octohq/octo/internal/operators/api/v1"
	"github.com/octohq/octo/internal/workerd"
)

// Upload limits. Cloudflare allows 10 MB (compressed) per Worker on the paid
// plan; octo applies 10 MiB to the uncompressed modules, which is stricter
// and simpler to explain.
const (
	MaxScriptSize = 10 << 20
	// maxRequestSize bounds what is read of a request at all.
	maxRequestSize = MaxScriptSize + 1<<20
	maxModules     = 1000
	maxBindings    = 256
	// The CRD limits (WorkerVersion): compatibility flags, the text of a
	// plain_text binding, a KV namespace ID, a module's content type.
	maxFlags       = 128
	maxTextBinding = 64 << 10
	maxNamespaceID = 64
	maxContentType = 256
)

// MaxCompatibilityDate is the newest compatibility date the runtime octo
// ships supports (workerd 2026-04-26 accepts dates up to 2026-05-03).
const MaxCompatibilityDate = workerd.MaxCompatibilityDate

// Metadata is the "metadata" part of a script upload.
type Metadata struct {
	MainModule         string            `json:"main_module"`
	BodyPart           string            `json:"body_part"`
	Bindings           []Binding         `json:"bindings"`
	CompatibilityDate  string            `json:"compatibility_date"`
	CompatibilityFlags []string          `json:"compatibility_flags"`
	KeepBindings       []string          `json:"keep_bindings"`
	Annotations        map[string]string `json:"annotations"`
	Logpush            *bool             `json:"logpush"`
	// Fields octo does not support yet; a non-empty value is refused.
	Migrations json.RawMessage `json:"migrations"`
	Assets     json.RawMessage `json:"assets"`
	Containers json.RawMessage `json:"containers"`
}

// Binding is one entry of metadata.bindings, as wrangler sends it.
type Binding struct {
	Name        string          `json:"name"`
	Type        string          `json:"type"`
	Text        *string         `json:"text,omitempty"`
	JSON        json.RawMessage `json:"json,omitempty"`
	NamespaceID string          `json:"namespace_id,omitempty"`
	Part        string          `json:"part,omitempty"`
	Service     string          `json:"service,omitempty"`
	Environment string          `json:"environment,omitempty"`
	Entrypoint  string          `json:"entrypoint,omitempty"`
}

// supportedBindings are the binding types octo serves.
var supportedBindings = map[string]bool{
	apiv1.BindingPlainText: true, apiv1.BindingJSON: true, apiv1.BindingSecretText: true,
	apiv1.BindingKV: true, apiv1.BindingWasmModule: true, apiv1.BindingTextBlob: true,
	apiv1.BindingDataBlob: true, bindingInherit: true,
}

// bindingInherit asks the API to copy the binding of the previous version.
const bindingInherit = "inherit"

// Part is one module of an upload.
type Part struct {
	Name        string
	ContentType string
	Type        apiv1.ModuleType
	Data        []byte
}

// SHA256 is the hex digest of the part's content.
func (p Part) SHA256() string {
	sum := sha256.Sum256(p.Data)
	return hex.EncodeToString(sum[:])
}

// Upload is a parsed and validated script upload.
type Upload struct {
	Metadata Metadata
	Parts    []Part
	// Notes are messages for the client, e.g. a clamped compatibility date.
	Notes []string
}

// Main is the name of the entry module (main_module or body_part).
func (u *Upload) Main() string {
	if u.Metadata.MainModule != "" {
		return u.Metadata.MainModule
	}
	return u.Metadata.BodyPart
}

// Size is the total size of the modules.
func (u *Upload) Size() int {
	n := 0
	for _, p := range u.Parts {
		n += len(p.Data)
	}
	return n
}

// moduleTypes maps a part's media type to its module type (wrangler's moduleTypeMimeType).
var moduleTypes = map[string]apiv1.ModuleType{
	"application/javascript+module": apiv1.ModuleESModule,
	"text/javascript+module":        apiv1.ModuleESModule,
	"application/javascript":        apiv1.ModuleCommonJS,
	"text/javascript":               apiv1.ModuleCommonJS,
	"application/wasm":              apiv1.ModuleWasm,
	"application/octet-stream":      apiv1.ModuleData,
	"text/plain":                    apiv1.ModuleText,
	"application/json":              apiv1.ModuleJSON,
	"application/source-map":        apiv1.ModuleSourceMap,
	"text/x-python":                 apiv1.ModulePython,
	"text/x-python-requirement":     apiv1.ModulePythonRequirement,
}

var (
	scriptNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	dateRE       = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	flagRE       = regexp.MustCompile(`^[a-z0-9_]{1,128}$`)
	bindingRE    = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]{0,255}$`)
	// secretNameRE: a secret's name is also its key in the Kubernetes
	// Secret, which allows no '$' and at most 253 characters.
	secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,252}$`)
)

// validSecretName refuses secret names the Kubernetes Secret cannot hold.
func validSecretName(name string) error {
	if !secretNameRE.MatchString(name) {
		return Errorf(http.StatusBadRequest, CodeBadRequest,
			"invalid secret name %q: use at most 253 letters, digits and '_', not starting with a digit", name)
	}
	return nil
}

// ValidScriptName checks a script name as Cloudflare does: lowercase letters,
// digits, '-' and '_', at most 63 characters, starting with a letter or digit.
func ValidScriptName(name string) error {
	if !scriptNameRE.MatchString(name) {
		return Errorf(http.StatusBadRequest, CodeBadRequest,
			"invalid script name %q: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	return nil
}

// badUpload is a 400 with the script-validation code wrangler prints.
func badUpload(format string, args ...any) *APIError {
	return Errorf(http.StatusBadRequest, CodeScriptValidation, format, args...)
}

// ParseUpload reads a multipart script upload (PUT script, POST versions)
// and validates it fully. Nothing is stored.
func ParseUpload(r *http.Request) (*Upload, error) {
	mr, complete, err := multipartReader(r)
	if err != nil {
		return nil, err
	}
	u := &Upload{}
	var meta []byte
	seen := map[string]bool{}
	total := 0
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			if !complete() {
				return nil, Errorf(http.StatusBadRequest, CodeBadRequest,
					"malformed multipart body: it ends before the closing boundary (truncated upload, or a boundary other than the Content-Type's)")
			}
			break
		}
		if err != nil {
			return nil, Errorf(http.StatusBadRequest, CodeBadRequest, "malformed multipart body: %v", err)
		}
		name := p.FormName()
		data, err := io.ReadAll(io.LimitReader(p, MaxScriptSize+1-int64(total)))
		if err != nil {
			return nil, Errorf(http.StatusBadRequest, CodeBadRequest, "malformed multipart body: %v", err)
		}
		total += len(data)
		if total > MaxScriptSize {
			return nil, Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge,
				"script upload is larger than octo's limit of %d MiB (Cloudflare allows 10 MB compressed on paid plans)", MaxScriptSize>>20)
		}
		if name == "metadata" {
			if meta != nil {
				return nil, badUpload("the upload has two \"metadata\" parts")
			}
			meta = data
			continue
		}
		if err := validModuleName(name); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, badUpload("module %q is uploaded twice", name)
		}
		seen[name] = true
		ct := p.Header.Get("Content-Type")
		mt, _, _ := mime.ParseMediaType(ct)
		typ, ok := moduleTypes[mt]
		if !ok || len(ct) > maxContentType {
			return nil, badUpload("module %q has unsupported content type %q", name, ct)
		}
		u.Parts = append(u.Parts, Part{Name: name, ContentType: ct, Type: typ, Data: data})
	}
	if meta == nil {
		return nil, badUpload("the upload has no \"metadata\" part")
	}
	if err := decodeStrict(meta, &u.Metadata); err != nil {
		return nil, badUpload("metadata is not valid JSON: %v", err)
	}
	if err := u.validate(); err != nil {
		return nil, err
	}
	return u, nil
}

// multipartReader checks the content type and bounds the body. complete
// tells, once NextPart has answered io.EOF, whether the body really ended
// with the closing boundary: mime/multipart also answers io.EOF (or an error
// wrapping it) for a body cut short after any line, which would otherwise
// pass as an upload without its remaining parts.
func multipartReader(r *http.Request) (mr *multipart.Reader, complete func() bool, err error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return nil, nil, Errorf(http.StatusBadRequest, CodeBadRequest,
			"expected a multipart/form-data body with a boundary, got Content-Type %q", r.Header.Get("Content-Type"))
	}
	tr := &tailReader{r: http.MaxBytesReader(nil, r.Body, maxRequestSize)}
	closing := []byte("--" + params["boundary"] + "--")
	complete = func() bool {
		i := bytes.LastIndex(tr.tail, closing)
		return i == 0 && tr.total == int64(len(tr.tail)) || i > 0 && tr.tail[i-1] == '\n'
	}
	return multipart.NewReader(tr, params["boundary"]), complete, nil
}

// tailReader remembers the last bytes read: enough to hold the closing
// boundary line plus what mime/multipart's 4 KiB buffer reads past it.
type tailReader struct {
	r     io.Reader
	tail  []byte
	total int64
}

const tailSize = 8 << 10

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.total += int64(n)
	b := p[:n]
	if len(b) >= tailSize {
		t.tail = append(t.tail[:0], b[len(b)-tailSize:]...)
		return n, err
	}
	if keep := tailSize - len(b); len(t.tail) > keep {
		t.tail = t.tail[:copy(t.tail, t.tail[len(t.tail)-keep:])]
	}
	t.tail = append(t.tail, b...)
	return n, err
}

// decodeStrict decodes JSON, allowing unknown fields (wrangler sends many).
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// validModuleName refuses names that could escape a directory when the
// modules are written to disk or into an image.
func validModuleName(name string) error {
	if name == "" || len(name) > 1024 || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\\") {
		return badUpload("invalid module name %q", name)
	}
	clean := strings.TrimPrefix(name, "./")
	if strings.HasPrefix(clean, "/") || path.Clean(clean) != clean || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return badUpload("invalid module name %q: module names must be relative paths without '..'", name)
	}
	return nil
}

// validate checks the metadata against the parts.
func (u *Upload) validate() error {
	m := &u.Metadata
	if (m.MainModule == "") == (m.BodyPart == "") {
		return badUpload("metadata must set exactly one of main_module (ES modules) and body_part (service worker)")
	}
	if len(u.Parts) == 0 {
		return badUpload("the upload has no modules")
	}
	if len(u.Parts) > maxModules {
		return badUpload("too many modules (%d, at most %d)", len(u.Parts), maxModules)
	}
	main := u.part(u.Main())
	if main == nil {
		return badUpload("the main module %q is not among the uploaded parts", u.Main())
	}
	if m.BodyPart != "" {
		if main.Type != apiv1.ModuleCommonJS {
			return badUpload("body_part %q must be application/javascript", m.BodyPart)
		}
		main.Type = apiv1.ModuleServiceWorker
	} else if main.Type != apiv1.ModuleESModule && main.Type != apiv1.ModuleCommonJS {
		return badUpload("main_module %q must be a JavaScript module, not %s", m.MainModule, main.Type)
	}
	for _, raw := range [][]byte{m.Migrations, m.Assets, m.Containers} {
		if len(raw) > 0 && string(raw) != "null" {
			return Errorf(http.StatusBadRequest, CodeBadRequest,
				"Durable Object migrations, static assets and containers are not supported by octo yet")
		}
	}
	if err := u.validateCompatibility(); err != nil {
		return err
	}
	return u.validateBindings()
}

func (u *Upload) part(name string) *Part {
	for i := range u.Parts {
		if u.Parts[i].Name == name {
			return &u.Parts[i]
		}
	}
	return nil
}

// validateCompatibility checks the date and flags and clamps a date newer
// than the runtime supports.
func (u *Upload) validateCompatibility() error {
	m := &u.Metadata
	if m.CompatibilityDate != "" {
		if !dateRE.MatchString(m.CompatibilityDate) {
			return badUpload("compatibility_date %q is not a date (YYYY-MM-DD)", m.CompatibilityDate)
		}
		if _, err := time.Parse(time.DateOnly, m.CompatibilityDate); err != nil {
			return badUpload("compatibility_date %q is not a valid date", m.CompatibilityDate)
		}
		if m.CompatibilityDate > MaxCompatibilityDate {
			u.Notes = append(u.Notes, fmt.Sprintf(
				"compatibility_date %s is newer than octo's runtime supports; using %s", m.CompatibilityDate, MaxCompatibilityDate))
			m.CompatibilityDate = MaxCompatibilityDate
		}
	}
	if len(m.CompatibilityFlags) > maxFlags {
		return badUpload("too many compatibility flags (%d, at most %d)", len(m.CompatibilityFlags), maxFlags)
	}
	for _, f := range m.CompatibilityFlags {
		if !flagRE.MatchString(f) {
			return badUpload("invalid compatibility flag %q", f)
		}
	}
	return nil
}

// validateBindings checks names, types and the fields each type needs.
func (u *Upload) validateBindings() error {
	if len(u.Metadata.Bindings) > maxBindings {
		return badUpload("too many bindings (%d, at most %d)", len(u.Metadata.Bindings), maxBindings)
	}
	names := map[string]bool{}
	for _, b := range u.Metadata.Bindings {
		if !bindingRE.MatchString(b.Name) {
			return badUpload("invalid binding name %q", b.Name)
		}
		if names[b.Name] {
			return badUpload("binding %q is defined twice", b.Name)
		}
		names[b.Name] = true
		if !supportedBindings[b.Type] {
			return Errorf(http.StatusBadRequest, CodeBadRequest,
				"binding %q has type %q, which octo does not support yet (supported: plain_text, json, secret_text, kv_namespace, wasm_module, text_blob, data_blob, inherit)", b.Name, b.Type)
		}
		switch b.Type {
		case apiv1.BindingPlainText:
			if b.Text == nil {
				return badUpload("plain_text binding %q has no text", b.Name)
			}
			if len(*b.Text) > maxTextBinding {
				return badUpload("plain_text binding %q is too long (%d bytes, at most %d)", b.Name, len(*b.Text), maxTextBinding)
			}
		case apiv1.BindingSecretText:
			if b.Text != nil { // without text it inherits the existing secret
				if err := validSecretName(b.Name); err != nil {
					return badUpload("%s", err.(*APIError).Msg)
				}
			}
		case apiv1.BindingJSON:
			// null cannot be stored: the object would drop it.
			if len(b.JSON) == 0 || !json.Valid(b.JSON) || string(bytes.TrimSpace(b.JSON)) == "null" {
				return badUpload("json binding %q has no valid json value", b.Name)
			}
		case apiv1.BindingKV:
			if b.NamespaceID == "" || len(b.NamespaceID) > maxNamespaceID {
				return badUpload("kv_namespace binding %q has no namespace_id (or one over %d characters)", b.Name, maxNamespaceID)
			}
		case apiv1.BindingWasmModule, apiv1.BindingTextBlob, apiv1.BindingDataBlob:
			if u.part(b.Part) == nil {
				return badUpload("%s binding %q names part %q, which was not uploaded", b.Type, b.Name, b.Part)
			}
		}
	}
	return nil
}
