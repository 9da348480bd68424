package v1

import (
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModuleType is the kind of one module of a Worker version, named after workerd's
// Worker.Module variants.
// +kubebuilder:validation:Enum=esModule;commonJs;serviceWorker;text;data;wasm;json;pythonModule;pythonRequirement;sourceMap
type ModuleType string

// Module types. The Content-Type of the uploaded part decides the type (store.ModuleTypes).
const (
	// ModuleESModule is an ES module (application/javascript+module).
	ModuleESModule ModuleType = "esModule"
	// ModuleCommonJS is a CommonJS module (application/javascript, not the body part).
	ModuleCommonJS ModuleType = "commonJs"
	// ModuleServiceWorker is the script of a service-worker syntax Worker (the body part).
	ModuleServiceWorker ModuleType = "serviceWorker"
	// ModuleText is a text module (text/plain).
	ModuleText ModuleType = "text"
	// ModuleData is a binary data module (application/octet-stream).
	ModuleData ModuleType = "data"
	// ModuleWasm is a compiled WebAssembly module (application/wasm).
	ModuleWasm ModuleType = "wasm"
	// ModuleJSON is a JSON module (application/json).
	ModuleJSON ModuleType = "json"
	// ModulePython is a Python module (text/x-python).
	ModulePython ModuleType = "pythonModule"
	// ModulePythonRequirement is a Python requirement (text/x-python-requirement).
	ModulePythonRequirement ModuleType = "pythonRequirement"
	// ModuleSourceMap is a source map (application/source-map); stored, never loaded by workerd.
	ModuleSourceMap ModuleType = "sourceMap"
)

// WorkerVersionPhase summarises the state of a WorkerVersion.
// +kubebuilder:validation:Enum=Pending;Ready;Failed
type WorkerVersionPhase string

// WorkerVersion phases.
const (
	// WorkerVersionPending: the version is not yet validated.
	WorkerVersionPending WorkerVersionPhase = "Pending"
	// WorkerVersionReady: the version is validated and may be deployed.
	WorkerVersionReady WorkerVersionPhase = "Ready"
	// WorkerVersionFailed: the version failed validation; status.message says why.
	WorkerVersionFailed WorkerVersionPhase = "Failed"
)

// Well-known keys of WorkerVersionSpec.Annotations, as the Cloudflare API names them.
const (
	// AnnotationMessage is the version message (wrangler --message).
	AnnotationMessage = "workers/message"
	// AnnotationTag is the version tag (wrangler --tag).
	AnnotationTag = "workers/tag"
	// AnnotationTriggeredBy says what made the version: upload, secret, rollback, promotion...
	AnnotationTriggeredBy = "workers/triggered_by"
)

// WorkerVersionSpec is one uploaded version of a Worker script. It is immutable: a change is a
// new WorkerVersion.
//
// +kubebuilder:validation:XValidation:rule="has(self.mainModule) != has(self.bodyPart) || (!has(self.mainModule) && has(self.assets) && size(self.modules) == 0)",message="exactly one of mainModule and bodyPart must be set (neither only for an assets-only Worker without modules)"
// +kubebuilder:validation:XValidation:rule="!has(self.mainModule) || self.modules.exists(m, m.name == self.mainModule)",message="mainModule must name one of modules"
// +kubebuilder:validation:XValidation:rule="!has(self.bodyPart) || self.modules.exists(m, m.name == self.bodyPart)",message="bodyPart must name one of modules"
type WorkerVersionSpec struct {
	// AccountID is the ID of the account that owns the script.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	AccountID string `json:"accountID"`

	// ScriptName is the name of the Worker script.
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9_-]{0,62}$`
	ScriptName string `json:"scriptName"`

	// VersionID is the version's ID, a UUID.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	VersionID string `json:"versionID"`

	// Number is the version's number within its script, from 1, increasing with every upload.
	// +kubebuilder:validation:Minimum=1
	Number int64 `json:"number"`

	// Storage says where the version's metadata and modules are in S3.
	Storage WorkerVersionStorage `json:"storage"`

	// MainModule is the name of the entry module of an ES-module Worker (metadata main_module).
	// Exactly one of mainModule and bodyPart is set.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	MainModule string `json:"mainModule,omitempty"`

	// BodyPart is the name of the script module of a service-worker syntax Worker (metadata
	// body_part).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	BodyPart string `json:"bodyPart,omitempty"`

	// Modules are the version's modules, in upload order. Names are unique.
	// +listType=map
	// +listMapKey=name
	// An assets-only Worker (Assets set, no main module) has none.
	// +kubebuilder:validation:MaxItems=1000
	Modules []WorkerModule `json:"modules"`

	// Bindings are the version's bindings, without secret values. Names are unique.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Bindings []WorkerBinding `json:"bindings,omitempty"`

	// CompatibilityDate is the workerd compatibility date (YYYY-MM-DD), after any clamping to
	// what the runtime supports. Empty for a draft Worker.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`
	CompatibilityDate string `json:"compatibilityDate,omitempty"`

	// CompatibilityFlags are the workerd compatibility flags.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:items:MaxLength=128
	CompatibilityFlags []string `json:"compatibilityFlags,omitempty"`

	// Annotations are the Cloudflare version annotations: workers/message, workers/tag,
	// workers/triggered_by.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Annotations map[string]string `json:"annotations,omitempty"`

	// Source is what uploaded the version, e.g. "wrangler", "api", "dashboard".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Source string `json:"source,omitempty"`

	// AuthorEmail is the e-mail address of the uploader, if known.
	// +optional
	// +kubebuilder:validation:MaxLength=320
	AuthorEmail string `json:"authorEmail,omitempty"`

	// Handlers are the event handlers the main module exports, e.g. ["fetch"].
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	Handlers []string `json:"handlers,omitempty"`

	// CreatedAt is when the version was uploaded.
	CreatedAt metav1.Time `json:"createdAt"`

	// StartupTimeMs is how long the version took to start in workerd when it was validated at
	// upload, in milliseconds.
	// +optional
	// +kubebuilder:validation:Minimum=0
	StartupTimeMs int64 `json:"startupTimeMs,omitempty"`

	// Limits are the version's runtime limits (metadata limits). Unset, the defaults apply
	// (CPULimit).
	// +optional
	Limits *VersionLimits `json:"limits,omitempty"`

	// Assets are the version's static assets (metadata assets): the gateway serves them.
	// +optional
	Assets *VersionAssets `json:"assets,omitempty"`

	// DurableObjects are the script's Durable Object classes as of this version: the state its
	// migrations left. A version only records them; the pod that runs the script's active
	// version hosts them.
	// +optional
	DurableObjects *VersionDurableObjects `json:"durableObjects,omitempty"`
}

// VersionDurableObjects are a script's Durable Object classes and the migration tag that
// produced them.
type VersionDurableObjects struct {
	// MigrationTag is the tag of the last migration applied (metadata migrations.new_tag).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	MigrationTag string `json:"migrationTag,omitempty"`

	// Classes are the script's Durable Object classes, sorted by className.
	// +optional
	// +listType=map
	// +listMapKey=className
	// +kubebuilder:validation:MaxItems=256
	Classes []DurableObjectClass `json:"classes,omitempty"`
}

// DurableObjectClass is one Durable Object class of a script: its namespace keeps its ID (and
// so its objects' storage) through renames.
type DurableObjectClass struct {
	// ClassName is the exported class that implements the objects.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	ClassName string `json:"className"`

	// NamespaceID is the namespace's ID, 32 hex digits: the directory of its objects' storage.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{32}$`
	NamespaceID string `json:"namespaceID"`

	// SQLite says the class was created by a new_sqlite_classes migration: its objects have
	// the SQL storage API.
	// +optional
	SQLite bool `json:"sqlite,omitempty"`
}

// Class returns the class named name, or nil.
func (d *VersionDurableObjects) Class(name string) *DurableObjectClass {
	if d == nil {
		return nil
	}
	for i := range d.Classes {
		if d.Classes[i].ClassName == name {
			return &d.Classes[i]
		}
	}
	return nil
}

// VersionAssets are the static assets of a version (Workers Static Assets): the files of its
// manifest, stored once by hash in S3, and how they are served.
type VersionAssets struct {
	// Manifest is the SHA-256 (hex) of the version's asset manifest, stored in S3 under
	// accounts/<account>/assets/manifests/<manifest>.json: each path with its file's hash and size.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	Manifest string `json:"manifest"`

	// Files is how many files the manifest lists.
	// +kubebuilder:validation:Minimum=0
	Files int32 `json:"files"`

	// HTMLHandling is html_handling: auto-trailing-slash (default), force-trailing-slash,
	// drop-trailing-slash or none.
	// +optional
	// +kubebuilder:validation:Enum=auto-trailing-slash;force-trailing-slash;drop-trailing-slash;none
	HTMLHandling string `json:"htmlHandling,omitempty"`

	// NotFoundHandling is not_found_handling: none (default), 404-page or single-page-application.
	// +optional
	// +kubebuilder:validation:Enum="none";"404-page";"single-page-application"
	NotFoundHandling string `json:"notFoundHandling,omitempty"`

	// RunWorkerFirst sends every request to the Worker first (run_worker_first = true); the
	// assets are then reached through the Worker's assets binding.
	// +optional
	RunWorkerFirst bool `json:"runWorkerFirst,omitempty"`

	// RunWorkerFirstPaths are run_worker_first's route patterns (a list): requests whose path
	// matches one go to the Worker first; a pattern starting with '!' excludes.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	RunWorkerFirstPaths []string `json:"runWorkerFirstPaths,omitempty"`

	// Redirects is the text of the assets' _redirects file.
	// +optional
	// +kubebuilder:validation:MaxLength=131072
	Redirects string `json:"redirects,omitempty"`

	// Headers is the text of the assets' _headers file.
	// +optional
	// +kubebuilder:validation:MaxLength=131072
	Headers string `json:"headers,omitempty"`

	// Binding is the name of the Worker's assets binding (e.g. ASSETS), if any.
	// +optional
	Binding string `json:"binding,omitempty"`
}

// CPU time limits of one request, as on Cloudflare.
const (
	// DefaultCPULimit is the CPU time a request of a version without limits.cpu_ms may use:
	// Cloudflare's default on paid plans.
	DefaultCPULimit = 30 * time.Second
	// MaxCPULimit is the largest limits.cpu_ms a version may set (Cloudflare's maximum).
	MaxCPULimit = 5 * time.Minute
)

// VersionLimits are the runtime limits of a version, as in the upload's metadata.limits.
type VersionLimits struct {
	// CPUMs is the CPU time one request may use, in milliseconds (metadata limits.cpu_ms),
	// at most MaxCPULimit. Unset (0), DefaultCPULimit applies.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300000
	CPUMs int64 `json:"cpuMs,omitempty"`
}

// WorkerVersionStorage says where a version's files are in S3.
type WorkerVersionStorage struct {
	// Bucket is the S3 bucket.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket"`

	// Prefix is the key prefix under which the version's objects are stored, e.g.
	// "<account>/workers/<script>/versions/<versionID>/". Immutable content.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Prefix string `json:"prefix"`

	// MetadataKey is the key of the upload's metadata JSON. Defaults to Prefix + "metadata.json".
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	MetadataKey string `json:"metadataKey,omitempty"`
}

// WorkerModule is one module (one uploaded part) of a version.
type WorkerModule struct {
	// Name is the module name as uploaded (the multipart part name), e.g. "index.js" or
	// "./69fb…-banner.txt".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Name string `json:"name"`

	// Type is the module type.
	Type ModuleType `json:"type"`

	// ContentType is the Content-Type of the uploaded part.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ContentType string `json:"contentType,omitempty"`

	// Key is the S3 key of the module's content. Defaults to storage.prefix + "modules/" + name.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Key string `json:"key,omitempty"`

	// Size is the content length in bytes.
	// +kubebuilder:validation:Minimum=0
	Size int64 `json:"size"`

	// SHA256 is the hex SHA-256 of the content.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	SHA256 string `json:"sha256"`
}

// Binding types that WorkerBinding models with dedicated fields. Other Cloudflare binding types
// keep their non-secret fields in WorkerBinding.Extra.
const (
	// BindingPlainText is a string variable; its value is in Text.
	BindingPlainText = "plain_text"
	// BindingJSON is a JSON variable; its value is in JSON.
	BindingJSON = "json"
	// BindingSecretText is a secret string; its value is in the Secret named by SecretRef.
	BindingSecretText = "secret_text"
	// BindingSecretKey is a secret crypto key; its material is in the Secret named by SecretRef.
	BindingSecretKey = "secret_key"
	// BindingKV is a KV namespace; its ID is in NamespaceID.
	BindingKV = "kv_namespace"
	// BindingWasmModule is a Wasm module global (service-worker syntax); the module is Part.
	BindingWasmModule = "wasm_module"
	// BindingTextBlob is a text global (service-worker syntax); the module is Part.
	BindingTextBlob = "text_blob"
	// BindingDataBlob is an ArrayBuffer global (service-worker syntax); the module is Part.
	BindingDataBlob = "data_blob"
	// BindingService is a binding to another script: Service, Environment, Entrypoint.
	BindingService = "service"
	// BindingR2 is an R2 bucket of the account; its name is in BucketName.
	BindingR2 = "r2_bucket"
	// BindingD1 is a D1 database of the account; its UUID is in DatabaseID.
	BindingD1 = "d1"
	// BindingAssets is the binding to the version's static assets; a version records it in
	// Assets.Binding, not among its bindings.
	BindingAssets = "assets"
	// BindingDurableObject is a Durable Object namespace of the script: ClassName, and the
	// namespace's ID in NamespaceID.
	BindingDurableObject = "durable_object_namespace"
)

// WorkerBinding is one binding of a version, as in the upload's metadata.bindings, without any
// secret value.
type WorkerBinding struct {
	// Name is the binding name the Worker sees (a global or an env property).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`

	// Type is the Cloudflare binding type: plain_text, json, secret_text, kv_namespace,
	// wasm_module, text_blob, data_blob, service, ...
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z0-9_]+$`
	Type string `json:"type"`

	// Text is the value of a plain_text binding. Never set for secret_text.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Text string `json:"text,omitempty"`

	// JSON is the value of a json binding: any JSON value.
	// +optional
	JSON *apiextensionsv1.JSON `json:"json,omitempty"`

	// NamespaceID is the KV namespace ID of a kv_namespace binding, or the namespace ID of a
	// durable_object_namespace binding.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	NamespaceID string `json:"namespaceID,omitempty"`

	// BucketName is the R2 bucket of an r2_bucket binding.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	BucketName string `json:"bucketName,omitempty"`

	// DatabaseID is the D1 database UUID of a d1 binding.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	DatabaseID string `json:"databaseID,omitempty"`

	// ClassName is the Durable Object class of a durable_object_namespace binding.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ClassName string `json:"className,omitempty"`

	// Part names the module holding the content of a wasm_module, text_blob or data_blob
	// binding (service-worker syntax).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Part string `json:"part,omitempty"`

	// Service is the target script of a service binding.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Service string `json:"service,omitempty"`

	// Environment is the target environment of a service binding.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Environment string `json:"environment,omitempty"`

	// Entrypoint is the named entrypoint of a service binding.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Entrypoint string `json:"entrypoint,omitempty"`

	// SecretRef points at the Kubernetes Secret key holding the value of a secret_text or
	// secret_key binding.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`

	// Extra holds the other non-secret fields of the binding verbatim (an object), for types
	// without dedicated fields, e.g. r2_bucket's bucket_name.
	// +optional
	Extra *apiextensionsv1.JSON `json:"extra,omitempty"`
}

// WorkerVersionStatus is the observed state of a WorkerVersion.
type WorkerVersionStatus struct {
	// ObservedGeneration is the metadata.generation the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase summarises the conditions: Pending, Ready or Failed.
	// +optional
	Phase WorkerVersionPhase `json:"phase,omitempty"`

	// Message explains the phase, e.g. workerd's startup error.
	// +optional
	Message string `json:"message,omitempty"`

	// Conditions: Validated (the version started in workerd), Built (an image containing it
	// was built), Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// WorkerVersion is one uploaded version of a Worker script: where its code is in S3, its
// modules, bindings (never secret values) and compatibility settings. Its spec is immutable.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=wv,categories=octo
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.spec.accountID`,priority=1
// +kubebuilder:printcolumn:name="Script",type=string,JSONPath=`.spec.scriptName`
// +kubebuilder:printcolumn:name="Number",type=integer,JSONPath=`.spec.number`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.versionID`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkerVersion struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the version. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable"
	Spec WorkerVersionSpec `json:"spec"`

	// Status is the observed state of the version.
	// +optional
	Status WorkerVersionStatus `json:"status,omitempty"`
}

// WorkerVersionList is a list of WorkerVersions.
//
// +kubebuilder:object:root=true
type WorkerVersionList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the WorkerVersions.
	Items []WorkerVersion `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WorkerVersion{}, &WorkerVersionList{})
}
