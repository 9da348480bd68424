package v1

import (
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeploymentStrategy is how a deployment splits traffic between its versions.
// +kubebuilder:validation:Enum=percentage
type DeploymentStrategy string

// DeploymentStrategyPercentage splits requests between versions by percentage; the only
// strategy Cloudflare offers.
const DeploymentStrategyPercentage DeploymentStrategy = "percentage"

// WorkerReleaseSpec is the deployment history of one script. The first deployment is the
// active one; a rollback is a new deployment.
type WorkerReleaseSpec struct {
	// AccountID is the ID of the account that owns the script.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	AccountID string `json:"accountID"`

	// ScriptName is the name of the Worker script.
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9_-]{0,62}$`
	ScriptName string `json:"scriptName"`

	// Deployments are the script's deployments, newest first: deployments[0] is the active
	// one. At most 100 are kept; controllers drop the oldest. IDs are unique.
	// +optional
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=100
	Deployments []ReleaseDeployment `json:"deployments,omitempty"`

	// Schedules are the script's cron triggers, as `wrangler deploy` (triggers.crons)
	// and `wrangler triggers deploy` set them: the operators call the scheduled
	// handler of the active deployment at each time a cron names (UTC).
	// +optional
	// +listType=map
	// +listMapKey=cron
	// +kubebuilder:validation:MaxItems=10
	Schedules []CronTrigger `json:"schedules,omitempty"`

	// Observability is the script's Workers Logs setting (wrangler's [observability]): with
	// it enabled, the console output and outcome of a sample of its invocations are kept.
	// +optional
	Observability *Observability `json:"observability,omitempty"`
}

// Observability says whether, and for which share of its invocations, a script's logs are
// kept (Workers Logs).
type Observability struct {
	// Enabled keeps the logs (observability.enabled, and observability.logs.enabled unless
	// false).
	Enabled bool `json:"enabled"`

	// HeadSamplingRate is the share of invocations logged, from 0 to 1 (observability
	// head_sampling_rate, or logs.head_sampling_rate), as a decimal string; empty means 1.
	// +optional
	// +kubebuilder:validation:Pattern=`^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$`
	HeadSamplingRate string `json:"headSamplingRate,omitempty"`
}

// SamplingRate is the share of invocations to log: 0 when logs are off.
func (o *Observability) SamplingRate() float64 {
	if o == nil || !o.Enabled {
		return 0
	}
	if o.HeadSamplingRate == "" {
		return 1
	}
	r, err := strconv.ParseFloat(o.HeadSamplingRate, 64)
	if err != nil {
		return 1
	}
	return min(max(r, 0), 1)
}

// CronTrigger is one cron trigger of a script.
type CronTrigger struct {
	// Cron is the expression: five fields (minute, hour, day of month, month,
	// day of week) or a descriptor such as @daily, evaluated in UTC.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=100
	Cron string `json:"cron"`

	// CreatedOn is when the trigger was added: no time before it fires.
	CreatedOn metav1.Time `json:"createdOn"`
}

// ReleaseDeployment is one deployment of a script: which versions serve it, and in what share.
type ReleaseDeployment struct {
	// ID is the deployment's ID, a UUID.
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	ID string `json:"id"`

	// CreatedOn is when the deployment was made.
	CreatedOn metav1.Time `json:"createdOn"`

	// Source is what made the deployment, e.g. "wrangler", "api", "dashboard".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Source string `json:"source,omitempty"`

	// AuthorEmail is the e-mail address of the deployer, if known.
	// +optional
	// +kubebuilder:validation:MaxLength=320
	AuthorEmail string `json:"authorEmail,omitempty"`

	// Annotations are the Cloudflare deployment annotations, e.g. workers/message and
	// workers/triggered_by.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Annotations map[string]string `json:"annotations,omitempty"`

	// Strategy is how traffic is split; only "percentage".
	// +kubebuilder:default=percentage
	// +optional
	Strategy DeploymentStrategy `json:"strategy,omitempty"`

	// Versions are the versions that serve the script and their shares, which add up to 100.
	// Version IDs are unique.
	// +listType=map
	// +listMapKey=versionID
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:XValidation:rule="self.map(v, v.percentage).sum() == 100",message="percentages must add up to 100"
	Versions []VersionTraffic `json:"versions"`
}

// WorkerReleaseStatus is the observed state of a WorkerRelease.
type WorkerReleaseStatus struct {
	// ObservedGeneration is the metadata.generation the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready is True when the active deployment's versions are served.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// ActiveDeploymentID is the ID of the deployment the gateway serves now. It lags
	// spec.deployments[0].id while a new deployment rolls out.
	// +optional
	ActiveDeploymentID string `json:"activeDeploymentID,omitempty"`

	// URL is where the script is served, e.g. http://<script>.<subdomain>.workers.localhost:8787.
	// +optional
	URL string `json:"url,omitempty"`

	// Cron reports the script's scheduled runs.
	// +optional
	Cron *CronStatus `json:"cron,omitempty"`
}

// MaxCronRuns is how many runs CronStatus.Runs keeps.
const MaxCronRuns = 10

// CronStatus is what the operators' scheduler recorded of a script's cron triggers.
type CronStatus struct {
	// LastScheduledTime is the latest time the scheduler fired (or skipped) a run
	// for: no run of that time or before is fired again, after a restart too.
	// +optional
	LastScheduledTime *metav1.Time `json:"lastScheduledTime,omitempty"`

	// Runs are the latest runs, newest first.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	Runs []CronRun `json:"runs,omitempty"`
}

// CronRun is one call of a script's scheduled handler.
type CronRun struct {
	// Cron is the trigger's expression.
	Cron string `json:"cron"`

	// ScheduledTime is the time the run was scheduled for (the handler's
	// controller.scheduledTime).
	ScheduledTime metav1.Time `json:"scheduledTime"`

	// VersionID is the version whose handler ran; empty when none could be reached.
	// +optional
	VersionID string `json:"versionID,omitempty"`

	// Outcome is workerd's outcome of the handler ("ok", "exception",
	// "exceededCpu", ...), or "unreachable" when no pod could run it.
	Outcome string `json:"outcome"`

	// Message explains an unreachable run.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// DurationMillis is the wall time of the run in milliseconds.
	// +optional
	DurationMillis int64 `json:"durationMillis,omitempty"`
}

// WorkerRelease is the deployment history of one Worker script: its active deployment
// (versions with percentages) first, then the older ones.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=wr,categories=octo
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.spec.accountID`,priority=1
// +kubebuilder:printcolumn:name="Script",type=string,JSONPath=`.spec.scriptName`
// +kubebuilder:printcolumn:name="Deployment",type=string,JSONPath=`.spec.deployments[0].id`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WorkerRelease struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the deployment history.
	Spec WorkerReleaseSpec `json:"spec"`

	// Status is the observed state of the release.
	// +optional
	Status WorkerReleaseStatus `json:"status,omitempty"`
}

// WorkerReleaseList is a list of WorkerReleases.
//
// +kubebuilder:object:root=true
type WorkerReleaseList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the WorkerReleases.
	Items []WorkerRelease `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WorkerRelease{}, &WorkerReleaseList{})
}
