package store

import (
	"strings"
	"sync"
	"testing"

	apiv1 "github.com/octohq/octo/api/v1"
)

// TestScriptLocksAreDropped: a script's lock lives only while it is held or
// waited for, so the map does not grow with every script ever written.
func TestScriptLocksAreDropped(t *testing.T) {
	var l scriptLocks
	a := Account{ID: "acct"}
	var wg sync.WaitGroup
	counter := 0
	for range 50 {
		wg.Go(func() {
			unlock := l.lock(a, "x")
			counter++
			unlock()
		})
	}
	wg.Wait()
	for i := range 100 {
		l.lock(a, strings.Repeat("s", i+1))()
	}
	if counter != 50 || len(l.m) != 0 {
		t.Fatalf("counter %d, %d locks left", counter, len(l.m))
	}
}

func TestValidAnnotations(t *testing.T) {
	for _, tc := range []struct {
		ann map[string]string
		ok  bool
	}{
		{map[string]string{apiv1.AnnotationMessage: strings.Repeat("m", MaxMessageLength)}, true},
		{map[string]string{apiv1.AnnotationMessage: strings.Repeat("é", MaxMessageLength)}, true},
		{map[string]string{apiv1.AnnotationMessage: strings.Repeat("m", MaxMessageLength+1)}, false},
		{map[string]string{apiv1.AnnotationTag: strings.Repeat("t", MaxTagLength)}, true},
		{map[string]string{apiv1.AnnotationTag: strings.Repeat("t", MaxTagLength+1)}, false},
		{map[string]string{"other": strings.Repeat("o", 1000)}, true},
		{nil, true},
	} {
		err := ValidAnnotations(tc.ann)
		if (err == nil) != tc.ok {
			t.Errorf("ValidAnnotations(%d-byte values) = %v, want ok=%v", len(tc.ann[apiv1.AnnotationMessage])+len(tc.ann[apiv1.AnnotationTag]), err, tc.ok)
		}
		if err != nil && AsError(err).Code != CodeBadRequest {
			t.Errorf("code %d", AsError(err).Code)
		}
	}
}
