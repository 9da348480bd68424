package v1_test

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1 "github.com/octohq/octo/api/v1"
)

// Valid objects of every kind, with every field set, as controllers and the API would write them.

const (
	exAccount  = "398803b74bcdb1b454434669bc634190"
	exVersion1 = "83a49508-9a56-4d11-9860-a13aae5a4d61"
	exVersion2 = "0f8a1d3e-2b7c-4e59-9a10-5c6d7e8f9012"
	exSHA      = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
)

var exTime = metav1.NewTime(time.Date(2026, 11, 26, 0, 47, 15, 0, time.UTC))

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1.GroupVersion.String(), Kind: kind}
}

func exampleAccount() *v1.WorkerAccount {
	return &v1.WorkerAccount{
		TypeMeta:   typeMeta("WorkerAccount"),
		ObjectMeta: metav1.ObjectMeta{Name: exAccount, Namespace: "octo-system", Labels: map[string]string{"accounts": exAccount}},
		Spec: v1.WorkerAccountSpec{
			WorkerBundleName:      "bundle-" + exAccount,
			WorkerReleaseSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"accounts": exAccount}},
			PodTemplate: v1.WorkerPodTemplate{
				ImagePullSecret: "registry-creds",
				Resources: &corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")},
				},
			},
			DisplayName: "Default account",
			Subdomain:   "octo",
		},
		Status: v1.WorkerAccountStatus{
			ObservedGeneration: 2,
			Conditions: []metav1.Condition{{
				Type: v1.ConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 2,
				LastTransitionTime: exTime, Reason: "BundleReady", Message: "bundle is ready",
			}},
			BundleName: "bundle-" + exAccount,
			Subdomain:  "octo",
		},
	}
}

func exampleVersion() *v1.WorkerVersion {
	return &v1.WorkerVersion{
		TypeMeta:   typeMeta("WorkerVersion"),
		ObjectMeta: metav1.ObjectMeta{Name: "hello-esm-2", Namespace: "octo-system"},
		Spec: v1.WorkerVersionSpec{
			AccountID:  exAccount,
			ScriptName: "hello-esm",
			VersionID:  exVersion1,
			Number:     2,
			Storage: v1.WorkerVersionStorage{
				Bucket:      "octo",
				Prefix:      exAccount + "/workers/hello-esm/versions/" + exVersion1 + "/",
				MetadataKey: exAccount + "/workers/hello-esm/versions/" + exVersion1 + "/metadata.json",
			},
			MainModule: "index.js",
			Modules: []v1.WorkerModule{
				{Name: "index.js", Type: v1.ModuleESModule, ContentType: "application/javascript+module", Size: 1234, SHA256: exSHA},
				{Name: "./69fba63fd4d3c9c1ea2f153579ff4d4fa7309fe8-banner.txt", Type: v1.ModuleText, ContentType: "text/plain", Key: "blobs/" + exSHA, Size: 12, SHA256: exSHA},
				{Name: "index.js.map", Type: v1.ModuleSourceMap, Size: 99, SHA256: exSHA},
			},
			Bindings: []v1.WorkerBinding{
				{Name: "GREETING", Type: v1.BindingPlainText, Text: "hello"},
				{Name: "CONF", Type: v1.BindingJSON, JSON: &apiextensionsv1.JSON{Raw: []byte(`{"a":1,"b":[true,null]}`)}},
				{Name: "LIST", Type: v1.BindingJSON, JSON: &apiextensionsv1.JSON{Raw: []byte(`[1,"two"]`)}},
				{Name: "MYKV", Type: v1.BindingKV, NamespaceID: "0123456789abcdef0123456789abcdef"},
				{Name: "API_KEY", Type: v1.BindingSecretText, SecretRef: &v1.SecretKeyRef{Name: "script-hello-esm", Key: "API_KEY"}},
				{Name: "OTHER", Type: v1.BindingService, Service: "other", Environment: "production", Entrypoint: "Api"},
				{Name: "BUCKET", Type: "r2_bucket", Extra: &apiextensionsv1.JSON{Raw: []byte(`{"bucket_name":"b"}`)}},
			},
			CompatibilityDate:  "2025-01-01",
			CompatibilityFlags: []string{"nodejs_compat"},
			Annotations: map[string]string{
				v1.AnnotationMessage: "second version", v1.AnnotationTag: "v2", v1.AnnotationTriggeredBy: "upload",
			},
			Source:        "wrangler",
			AuthorEmail:   "user@example.com",
			Handlers:      []string{"fetch"},
			CreatedAt:     exTime,
			StartupTimeMs: 12,
			Limits:        &v1.VersionLimits{CPUMs: 5000},
		},
		Status: v1.WorkerVersionStatus{
			ObservedGeneration: 1,
			Phase:              v1.WorkerVersionReady,
			Message:            "started in 12 ms",
			Conditions: []metav1.Condition{{
				Type: v1.ConditionValidated, Status: metav1.ConditionTrue, ObservedGeneration: 1,
				LastTransitionTime: exTime, Reason: "Started", Message: "",
			}},
		},
	}
}

func exampleRelease() *v1.WorkerRelease {
	return &v1.WorkerRelease{
		TypeMeta:   typeMeta("WorkerRelease"),
		ObjectMeta: metav1.ObjectMeta{Name: "hello-esm", Namespace: "octo-system"},
		Spec: v1.WorkerReleaseSpec{
			AccountID:  exAccount,
			ScriptName: "hello-esm",
			Deployments: []v1.ReleaseDeployment{
				{
					ID: "11111111-2222-4333-8444-555555555555", CreatedOn: metav1.NewTime(exTime.Add(time.Hour)),
					Source: "wrangler", AuthorEmail: "user@example.com",
					Annotations: map[string]string{v1.AnnotationTriggeredBy: "deployment"},
					Strategy:    v1.DeploymentStrategyPercentage,
					Versions: []v1.VersionTraffic{
						{VersionID: exVersion1, Percentage: 90},
						{VersionID: exVersion2, Percentage: 10},
					},
				},
				{
					ID: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", CreatedOn: exTime, Source: "api",
					Strategy: v1.DeploymentStrategyPercentage,
					Versions: []v1.VersionTraffic{{VersionID: exVersion2, Percentage: 100}},
				},
			},
		},
		Status: v1.WorkerReleaseStatus{
			ObservedGeneration: 3,
			ActiveDeploymentID: "11111111-2222-4333-8444-555555555555",
			URL:                "http://hello-esm.octo.workers.localhost:8787",
		},
	}
}

func exampleBundle() *v1.WorkerBundle {
	return &v1.WorkerBundle{
		TypeMeta:   typeMeta("WorkerBundle"),
		ObjectMeta: metav1.ObjectMeta{Name: "bundle-" + exAccount, Namespace: "octo-system"},
		Spec: v1.WorkerBundleSpec{
			AccountID: exAccount,
			Workers: []v1.BundleWorker{
				{ScriptName: "hello-esm", VersionID: exVersion2, VersionName: "hello-esm-1", Port: 8081},
				{ScriptName: "hello-esm", VersionID: exVersion1, VersionName: "hello-esm-2", Port: 8082},
			},
			PodTemplate: v1.WorkerPodTemplate{ImagePullSecret: "registry-creds"},
			Replicas:    ptr.To[int32](2),
		},
		Status: v1.WorkerBundleStatus{
			ObservedGeneration: 4,
			JobBuilderName:     "bundle-" + exAccount + "-abcdef",
			Image:              "127.0.0.1:5000/octo/" + exAccount + "@sha256:" + exSHA,
			Digest:             "sha256:" + exSHA,
			ReadyReplicas:      2,
			FailedWorkers:      []v1.FailedWorker{{ScriptName: "broken", VersionID: exVersion2, Message: "Uncaught SyntaxError"}},
		},
	}
}

func exampleJobBuilder() *v1.JobBuilder {
	return &v1.JobBuilder{
		TypeMeta:   typeMeta("JobBuilder"),
		ObjectMeta: metav1.ObjectMeta{Name: "bundle-" + exAccount + "-abcdef", Namespace: "octo-system"},
		Spec: v1.JobBuilderSpec{
			AccountID:  exAccount,
			BundleName: "bundle-" + exAccount,
			Inputs: []v1.BuildInput{
				{VersionName: "hello-esm-1", ScriptName: "hello-esm", VersionID: exVersion2, Digest: "sha256:" + exSHA, Port: 8081},
				{VersionName: "hello-esm-2", ScriptName: "hello-esm", VersionID: exVersion1, Digest: "sha256:" + exSHA, Port: 8082},
			},
			BaseImage:   "127.0.0.1:5000/octo/workerd@sha256:" + exSHA,
			TargetImage: "127.0.0.1:5000/octo/" + exAccount,
		},
		Status: v1.JobBuilderStatus{
			ObservedGeneration: 1,
			Phase:              v1.JobBuilderSucceeded,
			Digest:             "sha256:" + exSHA,
			Image:              "127.0.0.1:5000/octo/" + exAccount + "@sha256:" + exSHA,
			StartedAt:          &exTime,
			FinishedAt:         &exTime,
			Message:            "pushed",
			Conditions: []metav1.Condition{{
				Type: v1.ConditionBuilt, Status: metav1.ConditionTrue, ObservedGeneration: 1,
				LastTransitionTime: exTime, Reason: "Pushed", Message: "pushed",
			}},
		},
	}
}
