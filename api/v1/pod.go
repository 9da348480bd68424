package v1

// SocketVolume names the emptyDir volume of a bundle's workerd pod that
// holds a unix socket per Worker (mounted at the image's socket directory).
// The gateway on the pod's node opens those sockets from the host, which
// skips the pod network (veth, bridge, conntrack) on every request.
const SocketVolume = "sockets"

// AnnotationBundleName is set on a bundle's workerd pods: the name of their
// WorkerBundle (the api.cf-worker/bundle label holds a shortened form of
// long names). The gateway uses it to ask for a surge replica of a stalled
// pod's bundle (AnnotationStalledPod).
const AnnotationBundleName = "api.cf-worker/bundle-name"

// AnnotationCPULimits is set on a bundle's workerd pods that serve versions
// with their own CPU limit (spec.limits.cpuMs): {"<version ID>": ms}, JSON.
// Versions not named have DefaultCPULimit. The gateway ends a stalled pod
// once a request in it has run for its version's limit.
const AnnotationCPULimits = "api.cf-worker/cpu-limits"
