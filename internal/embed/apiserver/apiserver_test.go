package apiserver

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestObjectNotFound(t *testing.T) {
	gr := schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}
	for _, tc := range []struct {
		what string
		err  error
		want bool
	}{
		{"the server's Status: no such object", apierrors.NewNotFound(gr, lastBootstrapObject), true},
		{"wrapped", fmt.Errorf("get: %w", apierrors.NewNotFound(gr, lastBootstrapObject)), true},
		{"another object", apierrors.NewNotFound(gr, "other"), false},
		// What client-go makes of a plain-text 404 of the path, as the
		// aggregator answers for a group it does not route yet.
		{"the path is not found", apierrors.NewGenericServerResponse(404, "GET", gr, lastBootstrapObject, "404 page not found", 0, true), false},
		{"another error", apierrors.NewServiceUnavailable("starting"), false},
		{"no Status", errors.New("connection refused"), false},
		{"nil", nil, false},
	} {
		if got := objectNotFound(tc.err, lastBootstrapObject); got != tc.want {
			t.Errorf("%s: objectNotFound = %v, want %v", tc.what, got, tc.want)
		}
	}
}
