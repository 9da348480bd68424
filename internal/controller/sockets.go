package controller

import (
	corev1 "k8s.io/api/core/v1"

	apiv1 "github.com/octohq/octo/api/v1"
	"github.com/octohq/octo/internal/builder"
)

// socketVolume is the pod's volume for workerd's unix sockets: an emptyDir
// (a plain directory under the kubelet's root, no mount to tear down). It
// outlives a container restart (octo-launch clears it), and the gateway on
// the node opens the sockets from the host, skipping the pod network. Only
// the pod's own container mounts it.
func socketVolume() corev1.Volume {
	return corev1.Volume{Name: apiv1.SocketVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

// socketMount mounts socketVolume where the image's workerd config puts the
// sockets (builder.SocketDir).
func socketMount() corev1.VolumeMount {
	return corev1.VolumeMount{Name: apiv1.SocketVolume, MountPath: builder.SocketDir}
}
