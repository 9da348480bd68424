package v1

// Condition types used across the octo kinds. Each kind documents which ones it sets.
const (
	// ConditionReady is True when the object is fully reconciled and serving (WorkerAccount,
	// WorkerRelease, WorkerBundle) or usable (WorkerVersion).
	ConditionReady = "Ready"
	// ConditionValidated is True when a WorkerVersion started once in workerd without error.
	ConditionValidated = "Validated"
	// ConditionBuilt is True when an image holding the object's workers was built and pushed
	// (WorkerBundle, JobBuilder).
	ConditionBuilt = "Built"
	// ConditionAvailable is True when the workload of a WorkerBundle has ready replicas.
	ConditionAvailable = "Available"
)

// Validation patterns. The same expressions are written into the kubebuilder markers of the
// fields that use them (markers cannot reference constants); a unit test checks that the
// generated CRDs agree with these constants.
const (
	// AccountIDPattern matches an account ID: a DNS-1123 label (at most 63 characters),
	// so that it can be an object name and a label value. Cloudflare IDs are 32 lowercase hex digits.
	AccountIDPattern = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// ScriptNamePattern matches a Worker script name: lowercase letters, digits, '-' and '_',
	// starting with a letter or digit, at most 63 characters.
	ScriptNamePattern = `^[a-z0-9][a-z0-9_-]{0,62}$`
	// UUIDPattern matches a lowercase UUID such as a version or deployment ID.
	UUIDPattern = `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	// SHA256Pattern matches a lowercase hex SHA-256 sum.
	SHA256Pattern = `^[0-9a-f]{64}$`
	// DigestPattern matches an OCI content digest ("sha256:" and 64 lowercase hex digits).
	DigestPattern = `^sha256:[0-9a-f]{64}$`
	// CompatibilityDatePattern matches a workerd compatibility date (YYYY-MM-DD).
	CompatibilityDatePattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}$`
)

// Limits enforced by the CRD schemas.
const (
	// MaxVersionsPerDeployment is the number of versions one deployment may split traffic
	// between, as on Cloudflare.
	MaxVersionsPerDeployment = 2
	// MaxDeploymentHistory is the number of deployments a WorkerRelease keeps; controllers
	// drop the oldest ones beyond it.
	MaxDeploymentHistory = 100
)

// VersionTraffic is the share of a script's requests that one version receives.
type VersionTraffic struct {
	// VersionID is the ID (a UUID) of the WorkerVersion that receives the traffic.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	VersionID string `json:"versionID"`

	// Percentage of the script's requests, 0 to 100. The percentages of one deployment add up
	// to 100.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percentage int32 `json:"percentage"`
}

// SecretKeyRef points at one key of a Kubernetes Secret in the object's namespace. The value
// itself is never stored in an octo object.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key inside the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}
