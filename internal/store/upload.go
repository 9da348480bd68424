package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/assets"
	"github.com/octohq/octo/internal/workerd"
)

// Upload limits. Cloudflare allows 10 MB (compressed) per Worker on the paid
// plan; octo applies 10 MiB to the uncompressed modules, which is stricter
// and simpler to explain.
const (
	MaxScriptSize = 10 << 20
	// MaxModules bounds the modules of an upload.
	MaxModules = 1000
	// MaxMetadataSize bounds the "metadata" part of an upload: 256 bindings
	// of Cloudflare's 5 KB variables fit many times over.
	MaxMetadataSize = 1 << 20
	maxBindings     = 256
	// The CRD limits (WorkerVersion): compatibility flags, the text of a
	// plain_text binding, a module's content type.
	maxFlags       = 128
	maxTextBinding = 64 << 10
	// MaxContentType bounds a module's media type.
	MaxContentType = 256
)

// Annotation limits (Cloudflare's): the workers/message of a version or
// deployment and the workers/tag of a version, in characters. Longer ones
// are refused, as Cloudflare does, rather than cut.
const (
	MaxMessageLength = 100
	MaxTagLength     = 25
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
	// Limits is metadata.limits, e.g. {"cpu_ms": 50} (wrangler's [limits]).
	Limits *Limits `json:"limits"`
	// Assets are the version's static assets: the completion token of
	// their upload and how they are served.
	Assets *UploadAssets `json:"assets"`
	// KeepAssets reuses the previous version's assets.
	KeepAssets bool `json:"keep_assets"`
	// Migrations change the script's Durable Object classes; only an upload
	// that deploys (PUT script) may carry them.
	Migrations *Migrations `json:"migrations"`
	// Containers octo does not support yet; a non-empty value is refused.
	Containers json.RawMessage `json:"containers"`
	// Observability is the script's Workers Logs setting; an upload that
	// deploys (PUT script) applies it.
	Observability *ObservabilitySettings `json:"observability"`
}

// UploadAssets is metadata.assets.
type UploadAssets struct {
	// JWT is the completion token of the assets upload.
	JWT    string        `json:"jwt"`
	Config *AssetsConfig `json:"config"`
}

// AssetsConfig is metadata.assets.config, as wrangler sends it.
type AssetsConfig struct {
	HTMLHandling     string `json:"html_handling"`
	NotFoundHandling string `json:"not_found_handling"`
	// RunWorkerFirst is a boolean or a list of route patterns.
	RunWorkerFirst json.RawMessage `json:"run_worker_first"`
	// Headers and Redirects are the texts of _headers and _redirects.
	Headers   string `json:"_headers"`
	Redirects string `json:"_redirects"`
}

// HasAssets reports whether the upload names assets (or keeps the previous ones).
func (m *Metadata) HasAssets() bool { return (m.Assets != nil && m.Assets.JWT != "") || m.KeepAssets }

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
	// BucketName and Jurisdiction are an r2_bucket binding's bucket.
	BucketName   string `json:"bucket_name,omitempty"`
	Jurisdiction string `json:"jurisdiction,omitempty"`
	// ID is a d1 binding's database UUID.
	ID string `json:"id,omitempty"`
	// ClassName and ScriptName are a durable_object_namespace binding's
	// class and the script that defines it (empty: this one).
	ClassName  string `json:"class_name,omitempty"`
	ScriptName string `json:"script_name,omitempty"`
}

// supportedBindings are the binding types octo serves.
var supportedBindings = map[string]bool{
	apiv1.BindingPlainText: true, apiv1.BindingJSON: true, apiv1.BindingSecretText: true,
	apiv1.BindingKV: true, apiv1.BindingWasmModule: true, apiv1.BindingTextBlob: true,
	apiv1.BindingDataBlob: true, BindingInherit: true,
	apiv1.BindingR2: true, apiv1.BindingD1: true, apiv1.BindingService: true,
	apiv1.BindingAssets: true, apiv1.BindingDurableObject: true,
}

// Limits is metadata.limits: the Worker's per-request limits. Only cpu_ms
// is used; other keys (subrequests) are ignored.
type Limits struct {
	// CPUMs is limits.cpu_ms as sent, checked by CPULimit: the CPU time one
	// request may use, in milliseconds.
	CPUMs json.RawMessage `json:"cpu_ms,omitempty"`
}

// maxCPUMs is the largest limits.cpu_ms, apiv1.MaxCPULimit in milliseconds.
const maxCPUMs = int64(apiv1.MaxCPULimit / time.Millisecond)

// CPULimits returns the metadata.limits of a version's limits (nil for none),
// as its derived versions carry them on.
func CPULimits(l *apiv1.VersionLimits) *Limits {
	if l == nil || l.CPUMs == 0 {
		return nil
	}
	return &Limits{CPUMs: json.RawMessage(strconv.FormatInt(l.CPUMs, 10))}
}

// CPULimit returns the version limits l asks for: nil without cpu_ms, and
// a refusal unless cpu_ms is an integer from 1 to 300000 (5 minutes).
func (l *Limits) CPULimit() (*apiv1.VersionLimits, error) {
	if l == nil || len(l.CPUMs) == 0 || string(bytes.TrimSpace(l.CPUMs)) == "null" {
		return nil, nil
	}
	raw := string(bytes.TrimSpace(l.CPUMs))
	ms, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || ms < 1 || ms > maxCPUMs {
		return nil, badUpload("limits.cpu_ms must be an integer number of milliseconds from 1 to %d (5 minutes), not %.32s", maxCPUMs, raw)
	}
	return &apiv1.VersionLimits{CPUMs: ms}, nil
}

// BindingInherit asks the API to copy the binding of the previous version.
const BindingInherit = "inherit"

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

// ModuleTypes maps a part's media type to its module type (wrangler's moduleTypeMimeType).
var ModuleTypes = map[string]apiv1.ModuleType{
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
	// secretNameRE: a secret's name starts its key in the Kubernetes
	// Secret (VersionSecretKey), which allows no '$' and at most 253
	// characters.
	secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// MaxSecretName is the longest secret name: its key "<name>.v<number>"
// (VersionSecretKey) must fit the 253 characters of a Secret's data key,
// with room for any version number.
const MaxSecretName = 253 - len(".v") - 19

// ValidSecretName refuses secret names the Kubernetes Secret cannot hold.
func ValidSecretName(name string) error {
	if len(name) > MaxSecretName || !secretNameRE.MatchString(name) {
		return invalid("invalid secret name %q: use at most %d letters, digits and '_', not starting with a digit", name, MaxSecretName)
	}
	return nil
}

// ValidScriptName checks a script name as Cloudflare does: lowercase letters,
// digits, '-' and '_', at most 63 characters, starting with a letter or digit.
func ValidScriptName(name string) error {
	if !scriptNameRE.MatchString(name) {
		return invalid("invalid script name %q: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit", name)
	}
	return nil
}

// ValidModuleName refuses names that could escape a directory when the
// modules are written to disk or into an image.
func ValidModuleName(name string) error {
	if name == "" || len(name) > 1024 || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\\") {
		return badUpload("invalid module name %q", name)
	}
	clean := strings.TrimPrefix(name, "./")
	if strings.HasPrefix(clean, "/") || path.Clean(clean) != clean || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return badUpload("invalid module name %q: module names must be relative paths without '..'", name)
	}
	return nil
}

// ValidAnnotations refuses a workers/message over MaxMessageLength or a
// workers/tag over MaxTagLength characters. Other annotations are ignored
// (and not stored).
func ValidAnnotations(annotations map[string]string) error {
	if m, ok := annotations[apiv1.AnnotationMessage]; ok && utf8.RuneCountInString(m) > MaxMessageLength {
		return invalid("the %s annotation is %d characters long, the limit is %d", apiv1.AnnotationMessage, utf8.RuneCountInString(m), MaxMessageLength)
	}
	if t, ok := annotations[apiv1.AnnotationTag]; ok && utf8.RuneCountInString(t) > MaxTagLength {
		return invalid("the %s annotation is %d characters long, the limit is %d", apiv1.AnnotationTag, utf8.RuneCountInString(t), MaxTagLength)
	}
	return nil
}

// Validate checks the metadata against the parts, as Cloudflare does before
// accepting a version; it sets the main part's type and clamps a
// compatibility date newer than the runtime supports (with a note).
func (u *Upload) Validate() error {
	m := &u.Metadata
	if err := m.validateAssets(); err != nil {
		return err
	}
	if m.MainModule == "" && m.BodyPart == "" && len(u.Parts) == 0 && m.HasAssets() {
		// An assets-only Worker: the gateway serves its files.
		if err := ValidAnnotations(m.Annotations); err != nil {
			return err
		}
		for _, b := range m.Bindings {
			if b.Type != apiv1.BindingAssets {
				return badUpload("binding %q: a Worker without code (assets only) has no bindings but its assets", b.Name)
			}
		}
		if !m.Migrations.empty() {
			return badUpload("a Worker without code (assets only) has no Durable Object classes: drop its migrations")
		}
		return u.validateCompatibility()
	}
	if (m.MainModule == "") == (m.BodyPart == "") {
		return badUpload("metadata must set exactly one of main_module (ES modules) and body_part (service worker)")
	}
	if len(u.Parts) == 0 {
		return badUpload("the upload has no modules")
	}
	if len(u.Parts) > MaxModules {
		return badUpload("too many modules (%d, at most %d)", len(u.Parts), MaxModules)
	}
	if err := ValidAnnotations(m.Annotations); err != nil {
		return err
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
	if len(m.Containers) > 0 && string(m.Containers) != "null" && string(bytes.TrimSpace(m.Containers)) != "[]" {
		return invalid("containers are not supported by octo yet")
	}
	if err := m.Migrations.validate(); err != nil {
		return err
	}
	if _, err := m.Observability.Observability(); err != nil {
		return err
	}
	if m.BodyPart != "" && (!m.Migrations.empty() || slices.ContainsFunc(m.Bindings, func(b Binding) bool { return b.Type == apiv1.BindingDurableObject })) {
		return badUpload("Durable Objects need an ES module Worker (main_module): a service-worker script cannot define or bind them")
	}
	if err := u.validateCompatibility(); err != nil {
		return err
	}
	if _, err := m.Limits.CPULimit(); err != nil {
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
			return invalid("binding %q has type %q, which octo does not support yet (supported: plain_text, json, secret_text, kv_namespace, r2_bucket, d1, service, durable_object_namespace, assets, wasm_module, text_blob, data_blob, inherit)", b.Name, b.Type)
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
				if err := ValidSecretName(b.Name); err != nil {
					return badUpload("%s", err.(*Error).Msg)
				}
			}
		case apiv1.BindingJSON:
			// null cannot be stored: the object would drop it.
			if len(b.JSON) == 0 || !json.Valid(b.JSON) || string(bytes.TrimSpace(b.JSON)) == "null" {
				return badUpload("json binding %q has no valid json value", b.Name)
			}
		case apiv1.BindingKV:
			if b.NamespaceID == "" {
				return badUpload("kv_namespace binding %q has no namespace_id", b.Name)
			}
			if !ValidKVNamespaceID(b.NamespaceID) {
				return Errorf(Invalid, CodeKVBadNamespaceID,
					"KV namespace '%.64s' is not valid: kv_namespace binding %q needs a namespace_id of 32 lowercase hex digits", b.NamespaceID, b.Name)
			}
		case apiv1.BindingR2:
			if b.BucketName == "" {
				return badUpload("r2_bucket binding %q has no bucket_name", b.Name)
			}
			if b.Jurisdiction != "" && b.Jurisdiction != "default" {
				return invalid("r2_bucket binding %q asks for jurisdiction %q: octo keeps every bucket on this machine (no jurisdictions)", b.Name, b.Jurisdiction)
			}
		case apiv1.BindingD1:
			if b.ID == "" {
				return badUpload("d1 binding %q has no id", b.Name)
			}
		case apiv1.BindingService:
			if err := ValidScriptName(b.Service); err != nil {
				return badUpload("service binding %q: %s", b.Name, err.(*Error).Msg)
			}
			if b.Entrypoint != "" && !bindingRE.MatchString(b.Entrypoint) {
				return badUpload("service binding %q: invalid entrypoint %q", b.Name, b.Entrypoint)
			}
		case apiv1.BindingDurableObject:
			if !bindingRE.MatchString(b.ClassName) {
				return badUpload("durable_object_namespace binding %q needs a class_name (a JavaScript class name), not %.64q", b.Name, b.ClassName)
			}
		case apiv1.BindingWasmModule, apiv1.BindingTextBlob, apiv1.BindingDataBlob:
			if u.part(b.Part) == nil {
				return badUpload("%s binding %q names part %q, which was not uploaded", b.Type, b.Name, b.Part)
			}
		}
	}
	return nil
}

// Values of metadata.assets.config.
var (
	htmlHandlings     = []string{"", "auto-trailing-slash", "force-trailing-slash", "drop-trailing-slash", "none"}
	notFoundHandlings = []string{"", "none", "404-page", "single-page-application"}
)

// MaxRunWorkerFirst bounds run_worker_first's route patterns.
const MaxRunWorkerFirst = 100

// validateAssets checks metadata.assets and an assets binding: at most one,
// and only with assets.
func (m *Metadata) validateAssets() error {
	n := 0
	for _, b := range m.Bindings {
		if b.Type == apiv1.BindingAssets {
			n++
		}
	}
	if n > 1 {
		return badUpload("a Worker has at most one assets binding, this upload has %d", n)
	}
	if n == 1 && !m.HasAssets() {
		return badUpload("the assets binding needs assets: set assets.directory in the Worker's configuration")
	}
	if m.Assets == nil {
		return nil
	}
	if m.Assets.JWT == "" && !m.KeepAssets {
		return badUpload("metadata.assets has no jwt: upload the assets first (wrangler deploy does)")
	}
	c := m.Assets.Config
	if c == nil {
		return nil
	}
	if !slices.Contains(htmlHandlings, c.HTMLHandling) {
		return badUpload("assets.config.html_handling %q is not one of auto-trailing-slash, force-trailing-slash, drop-trailing-slash, none", c.HTMLHandling)
	}
	if !slices.Contains(notFoundHandlings, c.NotFoundHandling) {
		return badUpload("assets.config.not_found_handling %q is not one of none, 404-page, single-page-application", c.NotFoundHandling)
	}
	if _, _, err := c.RunWorkerFirstRules(); err != nil {
		return err
	}
	if len(c.Redirects) > MaxAssetRulesText || len(c.Headers) > MaxAssetRulesText {
		return badUpload("_redirects and _headers are limited to %d KiB each", MaxAssetRulesText>>10)
	}
	if _, err := assets.ParseRedirects(c.Redirects); err != nil {
		return badUpload("%v", err)
	}
	if _, err := assets.ParseHeaders(c.Headers); err != nil {
		return badUpload("%v", err)
	}
	return nil
}

// MaxAssetRulesText bounds the text of _redirects and of _headers.
const MaxAssetRulesText = 128 << 10

// RunWorkerFirstRules reads run_worker_first: true/false, or a list of
// route patterns (a leading '!' excludes).
func (c *AssetsConfig) RunWorkerFirstRules() (bool, []string, error) {
	raw := bytes.TrimSpace(c.RunWorkerFirst)
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil, nil
	}
	var all bool
	if json.Unmarshal(raw, &all) == nil {
		return all, nil, nil
	}
	var rules []string
	if err := json.Unmarshal(raw, &rules); err != nil {
		return false, nil, badUpload("assets.config.run_worker_first must be true, false or a list of route patterns")
	}
	if len(rules) > MaxRunWorkerFirst {
		return false, nil, badUpload("assets.config.run_worker_first has %d patterns, at most %d", len(rules), MaxRunWorkerFirst)
	}
	for _, r := range rules {
		if !strings.HasPrefix(strings.TrimPrefix(r, "!"), "/") || len(r) > 256 {
			return false, nil, badUpload("assets.config.run_worker_first pattern %.100q must start with '/' (or '!/')", r)
		}
	}
	return false, rules, nil
}
